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
//
// Each shadow (ShadowRecord) runs beside its live ruleset, compiled with
// rules.Compiled.Shadow set, and never at the live rulesets' expense: a
// shadow that does not compile, that Check refuses, or whose set the
// engine refuses is left out (the engine gets the set without the shadows
// it did not run already, or without any), logged and counted once in
// shrike_rules_shadow_errors_total;
// a shadow whose live ruleset does not run on this instance is left out
// too, as it would have nothing to be compared with.
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
	// byShadow holds, per ruleset with a shadow, the last shadow seen and
	// what became of it.
	byShadow map[string]*shadowEntry
	// running is the set last handed to the engine, by name, each shadow
	// after its live ruleset.
	running []*rules.Compiled
	applied bool
}

// shadowEntry is what became of a shadow: a shadow is compiled once per
// source and start, so that an unchanged shadow stays the same
// *rules.Compiled and keeps its partial matches.
type shadowEntry struct {
	start  time.Time
	source []byte
	// compiled is set once the shadow was compiled; err and good say what
	// came of it.
	compiled bool
	err      error           // why it cannot run; nil when it can
	good     *rules.Compiled // nil when it cannot run
	// alone is set once it was logged that its live ruleset does not run
	// here, so that this is logged once.
	alone bool
}

type reloadEntry struct {
	version int64
	source  []byte
	err     error // the last version's failure, nil when it compiled
	good    *rules.Compiled
	goodVer int64
}

type reloadMetrics struct {
	reloads      *prometheus.CounterVec // result
	versions     *prometheus.GaugeVec   // ruleset
	errors       *prometheus.CounterVec // ruleset
	shadowErrors *prometheus.CounterVec // ruleset
	successful   prometheus.Gauge
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
		shadowErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "shrike", Subsystem: "rules", Name: "shadow_errors_total",
			Help: "Shadow versions from the registry that failed to compile or were refused by the engine: they do not run, the live versions do.",
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
	for _, c := range []prometheus.Collector{m.reloads, m.versions, m.errors, m.shadowErrors, m.successful} {
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
		reg:      opts.Registry,
		engine:   opts.Engine,
		check:    opts.Check,
		timeout:  opts.SwapTimeout,
		log:      opts.Logger,
		m:        m,
		byName:   map[string]*reloadEntry{},
		byShadow: map[string]*shadowEntry{},
	}, nil
}

// Initial reads the registry once and returns the rulesets that can run,
// for the engine to start with (EngineOptions.Rulesets). Shadows are left
// out, so that the engine starts on live rulesets whatever the shadows
// hold: Run's first reload adds them. Run then starts from this set: its
// first reload hands the engine nothing new unless the registry changed
// in between or there are shadows.
func (r *Reloader) Initial(ctx context.Context) ([]*rules.Compiled, error) {
	set, _, err := r.reg.snapshot(ctx)
	if err != nil {
		return nil, fmt.Errorf("reloader: read the registry: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	live, _, _ := r.compile(Set{Rulesets: set.Rulesets})
	r.running, r.applied = live, true
	r.gauge(set.Rulesets)
	return slices.Clone(live), nil
}

// Run keeps the engine on the registry's rulesets until ctx ends, then
// returns nil.
func (r *Reloader) Run(ctx context.Context) error {
	return r.reg.Watch(ctx, func(set Set) { r.reload(ctx, set) })
}

// reload compiles what changed in the registry's set and hands the engine
// the rulesets that can run with their shadows; should the engine refuse
// that, the rulesets without their shadows.
func (r *Reloader) reload(ctx context.Context, reg Set) {
	r.mu.Lock()
	defer r.mu.Unlock()
	live, set, failed := r.compile(reg)
	if r.applied && sameSet(set, r.running) {
		if failed {
			// Only failures changed: nothing to swap, but say so.
			r.m.reloads.WithLabelValues("failure").Inc()
		}
		r.gauge(reg.Rulesets)
		return
	}
	err := r.swap(ctx, set)
	if err != nil && ctx.Err() == nil && len(set) > len(live) {
		// A set the engine refuses because of a shadow must not stop the
		// live rulesets. The shadows the engine runs already are not to
		// blame: first without the others, then without any shadow. The
		// shadows left out stay out until they change.
		for _, fallback := range [][]*rules.Compiled{r.withRunningShadows(set), live} {
			if len(fallback) == len(set) {
				continue
			}
			if ferr := r.swap(ctx, fallback); ferr == nil {
				r.refuseShadows(set, fallback, err)
				set, err = fallback, nil
				break
			}
		}
	}
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return // shutting down
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
	r.gauge(reg.Rulesets)
}

// swap hands the engine set. A switch slower than the timeout is no
// error: the engine took the set.
func (r *Reloader) swap(ctx context.Context, set []*rules.Compiled) error {
	sctx, cancel := context.WithTimeout(ctx, r.timeout)
	err := r.engine.SetRulesets(sctx, set)
	cancel()
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		// The engine took the set; some worker is slow to switch (a Store
		// call in flight, a long batch). It switches at its next batch.
		r.log.Warn("rulesets reloaded, but not every partition switched yet", "timeout", r.timeout)
		return nil
	}
	return err
}

// withRunningShadows is set without the shadows the engine does not run
// already.
func (r *Reloader) withRunningShadows(set []*rules.Compiled) []*rules.Compiled {
	out := make([]*rules.Compiled, 0, len(set))
	for _, c := range set {
		if !c.Shadow || slices.Contains(r.running, c) {
			out = append(out, c)
		}
	}
	return out
}

// refuseShadows records that the engine refused the shadows of set that
// taken lacks, with err: each is counted and logged once and stays out
// until it changes.
func (r *Reloader) refuseShadows(set, taken []*rules.Compiled, err error) {
	for _, c := range set {
		if !c.Shadow || slices.Contains(taken, c) {
			continue
		}
		e := r.byShadow[c.Name]
		if e == nil || e.good != c {
			continue
		}
		e.good, e.err = nil, err
		r.m.shadowErrors.WithLabelValues(c.Name).Inc()
		r.log.Error("shadow refused by the engine; the live rulesets run without it", "ruleset", c.Name, "err", err)
	}
}

// compile brings byName and byShadow up to reg and returns the rulesets
// that can run, by name; the same with each shadow that can run after its
// live ruleset; and whether some ruleset of reg cannot run at its current
// version (shadows aside).
func (r *Reloader) compile(reg Set) (live, set []*rules.Compiled, failed bool) {
	shadows := make(map[string]ShadowRecord, len(reg.Shadows))
	for _, sh := range reg.Shadows {
		shadows[sh.Name] = sh
	}
	names := make(map[string]bool, len(reg.Rulesets))
	for _, rec := range reg.Rulesets {
		names[rec.Name] = true
		e := r.byName[rec.Name]
		if e == nil {
			e = &reloadEntry{}
			r.byName[rec.Name] = e
			// At zero from the start, so that rate() and alerting
			// rules see the ruleset before its first error.
			r.m.errors.WithLabelValues(rec.Name)
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
		if e.good == nil {
			continue
		}
		live = append(live, e.good)
		set = append(set, e.good)
		if sh, ok := shadows[rec.Name]; ok {
			if c := r.compileShadow(sh); c != nil {
				set = append(set, c)
			}
		}
	}
	for name := range r.byName {
		if !names[name] {
			// A deleted ruleset's error count goes with it, so that the
			// series do not grow with every name ever used.
			delete(r.byName, name)
			r.m.errors.DeleteLabelValues(name)
		}
	}
	for name := range r.byShadow {
		if _, ok := shadows[name]; !ok || !names[name] {
			delete(r.byShadow, name)
			r.m.shadowErrors.DeleteLabelValues(name)
		}
	}
	for name, sh := range shadows {
		if e := r.byName[name]; e != nil && e.good == nil {
			r.shadowAlone(sh)
		}
	}
	return live, set, failed
}

// compileShadow brings byShadow up to sh and returns the shadow compiled,
// or nil when it cannot run.
func (r *Reloader) compileShadow(sh ShadowRecord) *rules.Compiled {
	e := r.byShadow[sh.Name]
	if e != nil && e.compiled && e.start.Equal(sh.StartTime) && bytes.Equal(e.source, sh.Source) {
		return e.good
	}
	e = &shadowEntry{start: sh.StartTime, source: sh.Source, compiled: true}
	r.byShadow[sh.Name] = e
	r.m.shadowErrors.WithLabelValues(sh.Name) // at zero, as errors
	c, err := r.reg.Compile(sh.Name, sh.Source)
	if err == nil {
		c.Shadow = true
		if r.check != nil {
			err = r.check(c)
		}
	}
	if err != nil {
		// Once per shadow: the next reload finds it in byShadow.
		e.err = err
		r.m.shadowErrors.WithLabelValues(sh.Name).Inc()
		r.log.Error("shadow cannot run; the live version runs alone", "ruleset", sh.Name, "live_version", sh.LiveVersion, "err", err)
		return nil
	}
	e.good = c
	return c
}

// shadowAlone notes, once per shadow, that it is left out because its
// live ruleset does not run on this instance.
func (r *Reloader) shadowAlone(sh ShadowRecord) {
	e := r.byShadow[sh.Name]
	if e == nil || e.compiled || !e.start.Equal(sh.StartTime) || !bytes.Equal(e.source, sh.Source) {
		// A shadow compiled while its live ruleset ran is compiled again
		// when it runs again: the engine dropped it meanwhile.
		e = &shadowEntry{start: sh.StartTime, source: sh.Source}
		r.byShadow[sh.Name] = e
	}
	if !e.alone {
		e.alone = true
		r.log.Warn("shadow left out: its live ruleset does not run here, so there is nothing to compare it with", "ruleset", sh.Name)
	}
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
	type id struct {
		name   string
		shadow bool
	}
	old := make(map[id]*rules.Compiled, len(r.running))
	for _, c := range r.running {
		old[id{c.Name, c.Shadow}] = c
	}
	var added, changed, removed []string
	for _, c := range set {
		k := id{c.Name, c.Shadow}
		prev, ok := old[k]
		delete(old, k)
		label := fmt.Sprintf("%s@%d", c.Name, r.byName[c.Name].goodVer)
		if c.Shadow {
			label = c.Name + "@shadow"
		}
		switch {
		case !ok:
			added = append(added, label)
		case prev != c:
			changed = append(changed, label)
		}
	}
	for k := range old {
		label := k.name
		if k.shadow {
			label += "@shadow"
		}
		removed = append(removed, label)
	}
	slices.Sort(removed)
	r.log.Info("rulesets reloaded", "rulesets", len(set),
		"added", strings.Join(added, " "), "changed", strings.Join(changed, " "), "removed", strings.Join(removed, " "))
}

func sameSet(a, b []*rules.Compiled) bool {
	return slices.Equal(a, b)
}
