package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shrike-cep/shrike/rules"
)

// RulesetSetter runs a set of compiled rulesets in place of the running
// ones: *Engine.
type RulesetSetter interface {
	SetRulesets(ctx context.Context, rs []*rules.Compiled) error
}

// DefaultSwapTimeout bounds how long a Reloader waits for every partition
// worker to switch to a new set.
const DefaultSwapTimeout = 30 * time.Second

// ReloaderOptions configure a Reloader. Zero values are the documented
// defaults.
type ReloaderOptions struct {
	// Registry is where the rulesets come from. Required.
	Registry *Registry
	// Engine runs them. Required.
	Engine RulesetSetter
	// Check, when set, vets every compiled ruleset before it may run
	// (Engine.CheckRuleset); one it refuses is treated like one that does
	// not compile.
	Check func(*rules.Compiled) error
	// SwapTimeout bounds the wait for every partition worker to switch.
	// Default DefaultSwapTimeout. The switch still happens after it; the
	// reload is only reported as slow.
	SwapTimeout time.Duration
	// Logger receives a line per reload and per ruleset that fails. Default:
	// discard.
	Logger *slog.Logger
	// Registerer registers the reload metrics. Nil keeps them
	// unregistered.
	Registerer prometheus.Registerer
}

// Reloader keeps an engine running the registry's rulesets (docs/design.md#hot-reload):
// it watches the registry, compiles each changed ruleset, and hands the
// complete set to the engine. A ruleset that fails to compile (or that
// Check refuses) never reaches the engine: its previous version keeps
// running, or, new, it does not run; the failure is logged and counted
// once per version. Compiled rulesets are reused while their version does
// not change, so that a reload compiles only what changed.
type Reloader struct {
	reg     *Registry
	engine  RulesetSetter
	check   func(*rules.Compiled) error
	timeout time.Duration
	log     *slog.Logger
	m       reloadMetrics

	// mu guards the fields below: Initial and the Watch callback may both
	// use them.
	mu sync.Mutex
	// byName holds, per ruleset, the last version seen and what became of
	// it, and the version that runs (nil when none).
	byName map[string]*reloadEntry
	// running is the set last handed to the engine, by name.
	running []*rules.Compiled
	applied bool
}

type reloadEntry struct {
	version int64
	source  []byte
	err     error // the last version's failure, nil when it compiled
	good    *rules.Compiled
	goodVer int64
}

type reloadMetrics struct {
	reloads    *prometheus.CounterVec // result
	versions   *prometheus.GaugeVec   // ruleset
	errors     *prometheus.CounterVec // ruleset
	successful prometheus.Gauge
}

func newReloadMetrics(reg prometheus.Registerer) (reloadMetrics, error) {
	m := reloadMetrics{
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "shrike", Subsystem: "rules", Name: "reloads_total",
			Help: "Registry changes handled, by result: failure when some ruleset of the registry cannot run at its current version (its previous version stays) or the engine did not take the set.",
		}, []string{"result"}),
		versions: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "shrike", Subsystem: "rules", Name: "ruleset_version",
			Help: "Registry version of each running ruleset.",
		}, []string{"ruleset"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "shrike", Subsystem: "rules", Name: "ruleset_errors_total",
			Help: "Ruleset versions from the registry that failed to compile or were refused by the engine.",
		}, []string{"ruleset"}),
		successful: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "shrike", Subsystem: "rules", Name: "last_reload_successful",
			Help: "1 when every ruleset of the registry runs at its current version.",
		}),
	}
	m.reloads.WithLabelValues("success")
	m.reloads.WithLabelValues("failure")
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.reloads, m.versions, m.errors, m.successful} {
		if err := reg.Register(c); err != nil {
			return m, fmt.Errorf("register metrics: %w", err)
		}
	}
	return m, nil
}

// NewReloader checks opts. It reads nothing yet.
func NewReloader(opts ReloaderOptions) (*Reloader, error) {
	if opts.Registry == nil {
		return nil, errors.New("reloader: no registry")
	}
	if opts.Engine == nil {
		return nil, errors.New("reloader: no engine")
	}
	if opts.SwapTimeout <= 0 {
		opts.SwapTimeout = DefaultSwapTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	m, err := newReloadMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("reloader: %w", err)
	}
	return &Reloader{
		reg:     opts.Registry,
		engine:  opts.Engine,
		check:   opts.Check,
		timeout: opts.SwapTimeout,
		log:     opts.Logger,
		m:       m,
		byName:  map[string]*reloadEntry{},
	}, nil
}

// Initial reads the registry once and returns the rulesets that can run,
// for the engine to start with (EngineOptions.Rulesets). Run then starts
// from this set: its first reload hands the engine nothing new unless the
// registry changed in between.
func (r *Reloader) Initial(ctx context.Context) ([]*rules.Compiled, error) {
	recs, _, err := r.reg.snapshot(ctx)
	if err != nil {
		return nil, fmt.Errorf("reloader: read the registry: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	set, _ := r.compile(recs)
	r.running, r.applied = set, true
	r.gauge(recs)
	return slices.Clone(set), nil
}

// Run keeps the engine on the registry's rulesets until ctx ends, then
// returns nil.
func (r *Reloader) Run(ctx context.Context) error {
	return r.reg.Watch(ctx, func(recs []RulesetRecord) { r.reload(ctx, recs) })
}

// reload compiles what changed in recs and hands the engine the set.
func (r *Reloader) reload(ctx context.Context, recs []RulesetRecord) {
	r.mu.Lock()
	defer r.mu.Unlock()
	set, failed := r.compile(recs)
	if r.applied && sameSet(set, r.running) {
		if failed {
			// Only failures changed: nothing to swap, but say so.
			r.m.reloads.WithLabelValues("failure").Inc()
		}
		r.gauge(recs)
		return
	}
	sctx, cancel := context.WithTimeout(ctx, r.timeout)
	err := r.engine.SetRulesets(sctx, set)
	cancel()
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return // shutting down
	case errors.Is(err, context.DeadlineExceeded):
		// The engine took the set; some worker is slow to switch (a Store
		// call in flight, a long batch). It switches at its next batch.
		r.log.Warn("rulesets reloaded, but not every partition switched yet", "timeout", r.timeout)
	default:
		r.m.reloads.WithLabelValues("failure").Inc()
		r.m.successful.Set(0)
		r.log.Error("reload rulesets: the engine refused the set; the running set stays", "err", err)
		return
	}
	r.logChanges(set)
	r.running, r.applied = set, true
	if failed {
		r.m.reloads.WithLabelValues("failure").Inc()
	} else {
		r.m.reloads.WithLabelValues("success").Inc()
	}
	r.gauge(recs)
}

// compile brings byName up to recs and returns the set that can run, by
// name, and whether some ruleset of recs cannot run at its current
// version.
func (r *Reloader) compile(recs []RulesetRecord) ([]*rules.Compiled, bool) {
	live := make(map[string]bool, len(recs))
	var set []*rules.Compiled
	failed := false
	for _, rec := range recs {
		live[rec.Name] = true
		e := r.byName[rec.Name]
		if e == nil {
			e = &reloadEntry{}
			r.byName[rec.Name] = e
		}
		if e.version != rec.Version || !bytes.Equal(e.source, rec.Source) {
			e.version, e.source, e.err = rec.Version, rec.Source, nil
			c, err := r.reg.Compile(rec.Name, rec.Source)
			if err == nil && r.check != nil {
				err = r.check(c)
			}
			if err != nil {
				// Once per version: the next reload finds it in byName.
				e.err = err
				r.m.errors.WithLabelValues(rec.Name).Inc()
				attrs := []any{"ruleset", rec.Name, "version", rec.Version, "err", err}
				if e.good != nil {
					attrs = append(attrs, "running_version", e.goodVer)
				}
				r.log.Error("ruleset version cannot run; its previous version stays", attrs...)
			} else {
				e.good, e.goodVer = c, rec.Version
			}
		}
		if e.err != nil {
			failed = true
		}
		if e.good != nil {
			set = append(set, e.good)
		}
	}
	for name := range r.byName {
		if !live[name] {
			// A deleted ruleset's error count goes with it, so that the
			// series do not grow with every name ever used.
			delete(r.byName, name)
			r.m.errors.DeleteLabelValues(name)
		}
	}
	return set, failed
}

// gauge sets the version gauge to what runs, and the success gauge.
func (r *Reloader) gauge(recs []RulesetRecord) {
	r.m.versions.Reset()
	ok := true
	for _, rec := range recs {
		e := r.byName[rec.Name]
		if e == nil || e.err != nil {
			ok = false
		}
		if e != nil && e.good != nil {
			r.m.versions.WithLabelValues(rec.Name).Set(float64(e.goodVer))
		}
	}
	if ok {
		r.m.successful.Set(1)
	} else {
		r.m.successful.Set(0)
	}
}

// logChanges logs what the new set changes against the running one.
func (r *Reloader) logChanges(set []*rules.Compiled) {
	old := make(map[string]*rules.Compiled, len(r.running))
	for _, c := range r.running {
		old[c.Name] = c
	}
	var added, changed, removed []string
	for _, c := range set {
		prev, ok := old[c.Name]
		delete(old, c.Name)
		label := fmt.Sprintf("%s@%d", c.Name, r.byName[c.Name].goodVer)
		switch {
		case !ok:
			added = append(added, label)
		case prev != c:
			changed = append(changed, label)
		}
	}
	for name := range old {
		removed = append(removed, name)
	}
	slices.Sort(removed)
	r.log.Info("rulesets reloaded", "rulesets", len(set),
		"added", strings.Join(added, " "), "changed", strings.Join(changed, " "), "removed", strings.Join(removed, " "))
}

func sameSet(a, b []*rules.Compiled) bool {
	return slices.Equal(a, b)
}
