package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/shrike-cep/shrike/cep"
	"github.com/shrike-cep/shrike/config"
	"github.com/shrike-cep/shrike/registry"
	"github.com/shrike-cep/shrike/rules"
	"github.com/shrike-cep/shrike/state"
)

// registryStartTimeout bounds the registry calls at start (the folder's
// sync and the first read): a Redis that does not answer in time is not
// fatal, the folder's rulesets then run until it does.
const registryStartTimeout = 5 * time.Second

// rulesServer is serve's rules registry and hot reload (docs/operations.md): the
// registry in serve's Redis, the Reloader that keeps the engine on the
// registry's rulesets, and, with rules.dir, the DirSync that keeps the
// registry on the folder's files.
type rulesServer struct {
	// registry and compile are what the API serves and compiles with.
	registry *registry.Registry
	compile  rules.CompileOptions

	client   interface{ Close() error } // the registry's Redis client
	reloader *registry.Reloader
	// lists keeps compile.Lists, the managed lists every compiled ruleset
	// reads, on the registry's.
	lists *registry.ListSync
	dir   *registry.DirSync // nil without rules.dir
	// stats publishes the engine's per-rule figures for the API's
	// GetRulesetStats, summed over the instances.
	stats *registry.StatsPublisher
	log   *slog.Logger
}

// loadRulesDir reads and compiles the rulesets of dir before anything
// starts, so that a broken file stops serve at once with every error as
// `shrike check` prints them (on a running serve, a broken file only
// keeps the running version). No dir is no ruleset.
func loadRulesDir(dir string, stderr *output) ([]*rules.Compiled, error) {
	if dir == "" {
		return nil, nil
	}
	if _, err := os.ReadDir(dir); err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	files, err := registry.RulesetFiles(dir)
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	results, ok := loadRulesets(files, stderr, nil)
	out := make([]*rules.Compiled, 0, len(results))
	for _, r := range results {
		if r.compiled == nil {
			continue
		}
		// What check and run take, serve cannot run without its topic.
		if list := registry.RequireTopic(r.compiled); list != nil {
			fmt.Fprintln(stderr, list)
			ok = false
		}
		out = append(out, r.compiled)
	}
	if !ok {
		return nil, errReported
	}
	return out, nil
}

// rulesDeps are what the rules part uses of the rest of serve.
type rulesDeps struct {
	// redis are the connection options of serve's Redis.
	redis  state.Options
	engine *cep.Engine
	// local are the folder's rulesets as loadRulesDir compiled them: the
	// engine starts with them when the registry cannot be read at start.
	local []*rules.Compiled
	log   *slog.Logger
	reg   prometheus.Registerer
	clock func() time.Time
}

// startRules opens the registry, brings it up to the folder, and gives the
// engine the registry's rulesets to start with; run then keeps all three
// in step.
func startRules(ctx context.Context, cfg config.Config, d rulesDeps) (_ *rulesServer, err error) {
	client := registry.NewClient(d.redis)
	r := &rulesServer{client: client, log: d.log, compile: rules.CompileOptions{Lists: rules.NewManagedLists()}}
	defer func() {
		if err != nil {
			r.close()
		}
	}()
	r.registry, err = registry.New(registry.Options{
		Client:         client,
		KeyPrefix:      cfg.Redis.KeyPrefix,
		Logger:         d.log,
		Clock:          d.clock,
		CompileOptions: r.compile,
		MaxVersions:    cfg.Rules.MaxVersions,
	})
	if err != nil {
		return nil, err
	}
	r.lists = r.registry.NewListSync(r.compile.Lists)
	r.lists.OnApply = func(name string, version int64, items, skipped int) {
		d.log.Info("managed list updated", "list", name, "version", version, "items", items)
		if skipped > 0 {
			d.log.Warn("managed list holds items its cidr declaration cannot read; they are left out", "list", name, "version", version, "skipped", skipped)
		}
	}
	if cfg.Rules.Dir != "" {
		r.dir, err = registry.NewDirSync(registry.DirSyncOptions{Dir: cfg.Rules.Dir, Registry: r.registry, Logger: d.log, Registerer: d.reg})
		if err != nil {
			return nil, err
		}
	}
	r.stats, err = registry.NewStatsPublisher(registry.StatsPublisherOptions{
		Registry: r.registry,
		Gather:   func() []registry.RuleCounts { return ruleCounts(d.engine.RuleActivity()) },
		Logger:   d.log,
	})
	if err != nil {
		return nil, err
	}
	r.reloader, err = registry.NewReloader(registry.ReloaderOptions{
		Registry:   r.registry,
		Engine:     d.engine,
		Check:      d.engine.CheckRuleset,
		Logger:     d.log,
		Registerer: d.reg,
	})
	if err != nil {
		return nil, err
	}

	sctx, cancel := context.WithTimeout(ctx, registryStartTimeout)
	defer cancel()
	initial, err := r.initial(sctx)
	if err != nil {
		d.log.Warn("rules registry unreachable at start: running the rules folder's rulesets until it answers", "err", err)
		initial = d.local
	}
	if err := d.engine.SetRulesets(ctx, initial); err != nil {
		return nil, err
	}
	for _, c := range initial {
		d.log.Info("ruleset loaded", "ruleset", c.Name, "rules", len(c.Rules), "topic", c.Stream.Topic)
	}
	if len(initial) == 0 {
		d.log.Warn("no rulesets yet: upload one (shrike rules push FILE, or PUT /v1/rulesets/NAME) or add a file to --rules DIR")
	}
	return r, nil
}

// initial syncs the folder into the registry, reads the managed lists
// (so that the rulesets start with their items) and reads the registry's
// rulesets that can run.
func (r *rulesServer) initial(ctx context.Context) ([]*rules.Compiled, error) {
	if r.dir != nil {
		if _, err := r.dir.Sync(ctx); err != nil {
			return nil, err
		}
	}
	if err := r.lists.Load(ctx); err != nil {
		return nil, err
	}
	return r.reloader.Initial(ctx)
}

// run keeps the engine on the registry (rulesets and managed lists) and
// the registry on the folder, and publishes the engine's per-rule figures,
// until ctx ends.
func (r *rulesServer) run(ctx context.Context) error {
	var g errgroup.Group
	g.Go(func() error { return r.reloader.Run(ctx) })
	g.Go(func() error { return r.lists.Run(ctx) })
	g.Go(func() error { return r.stats.Run(ctx) })
	if r.dir != nil {
		g.Go(func() error { return r.dir.Run(ctx) })
	}
	return g.Wait()
}

// close releases the registry's Redis client.
func (r *rulesServer) close() {
	if err := r.client.Close(); err != nil && !errors.Is(err, context.Canceled) {
		r.log.Warn("close the registry's redis client", "err", err)
	}
}

// ruleCounts converts the engine's figures for the registry.
func ruleCounts(acts []cep.RuleActivity) []registry.RuleCounts {
	out := make([]registry.RuleCounts, len(acts))
	for i, a := range acts {
		out[i] = registry.RuleCounts{
			Ruleset: a.Ruleset, Rule: a.Rule, Shadow: a.Shadow,
			Alerts: a.Alerts, Suppressed: a.Suppressed, OpenPartialMatches: a.OpenPartialMatches,
		}
	}
	return out
}

// rulesetTopics are the topics rs read, sorted, once each.
func rulesetTopics(rs []*rules.Compiled) []string {
	var topics []string
	for _, c := range rs {
		if t := c.Stream.Topic; t != "" {
			topics = append(topics, t)
		}
	}
	slices.Sort(topics)
	return slices.Compact(topics)
}
