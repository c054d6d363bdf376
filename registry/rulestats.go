package registry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Per-rule running figures (docs/operations.md#rule-figures): every serve
// instance publishes what its engine's rules do, and the API sums them for
// the whole cluster, whichever instances own the partitions.
//
// Layout, under one hash tag of its own so that a publication is one
// transaction on one Cluster slot:
//
//	<prefix>:{stats}:alerts:<minute>      HASH   rule field → alerts produced in that minute
//	<prefix>:{stats}:suppressed:<minute>  HASH   rule field → alerts suppressed in that minute
//	<prefix>:{stats}:open:<instance>      HASH   rule field → partial matches open on the instance
//	<prefix>:{stats}:instances            ZSET   instance → time of its last publication (Unix ms)
//
// <minute> is Unix time in minutes. A rule field is "<ruleset>/<rule>",
// with "shadow:" in front for a shadow version's rule (a ruleset name holds
// neither '/' nor ':'). Counts by minute are shared: an instance adds what
// its rules gained since its last publication to the current minute, so
// that a rule's count stays whole when its partitions move to another
// instance or an instance stops; the minute hashes expire after two
// hours. Open partial matches are a gauge of each instance: its hash is
// replaced at each publication and expires after three intervals, and a
// reader sums the instances published within that time.

// Defaults of StatsPublisherOptions.
const (
	// DefaultStatsInterval is how often an instance publishes its figures.
	DefaultStatsInterval = 5 * time.Second
	// statsHorizon is how many minutes of counts RuleStats sums: the
	// current minute and the 59 before it.
	statsHorizon = 60
	// statsMinuteTTL keeps a minute's counts past the horizon.
	statsMinuteTTL = 2 * time.Hour
	// statsStaleIntervals is how many intervals an instance's open
	// partial matches count after its last publication.
	statsStaleIntervals = 3
	// statsFinalTimeout bounds the last publication and the withdrawal
	// of a stopping instance, which holds up its shutdown.
	statsFinalTimeout = 2 * time.Second
)

// RuleCounts are one rule's figures on one instance: its alerts and
// suppressed alerts since the instance started, which only grow, and its
// partial matches open now (cep.RuleActivity).
type RuleCounts struct {
	Ruleset, Rule      string
	Shadow             bool
	Alerts, Suppressed uint64
	OpenPartialMatches int
}

// RuleRef names a rule whose figures RuleStats returns.
type RuleRef struct {
	Ruleset, Rule string
	Shadow        bool
}

func (r RuleRef) field() string {
	if r.Shadow {
		return "shadow:" + r.Ruleset + "/" + r.Rule
	}
	return r.Ruleset + "/" + r.Rule
}

// RuleFigures are one rule's figures summed over the instances.
type RuleFigures struct {
	// AlertsLastHour and SuppressedLastHour count the current minute and
	// the 59 before it.
	AlertsLastHour, SuppressedLastHour int64
	// OpenPartialMatches sums the instances' last publications.
	OpenPartialMatches int64
}

// RuleStatsReport is what RuleStats read.
type RuleStatsReport struct {
	// Rules are the figures of the rules asked for, in their order.
	Rules []RuleFigures
	// Instances counts the instances that published within
	// statsStaleIntervals intervals; GatherTime is the oldest of their
	// publications, zero without any.
	Instances  int
	GatherTime time.Time
}

func (r *Registry) statsKeys() (alerts, suppressed, open, instances string) {
	tag := "{" + r.prefix + ":stats}"
	return tag + ":alerts:", tag + ":suppressed:", tag + ":open:", tag + ":instances"
}

// RuleStats sums the figures the instances published for rules: counts of
// the last hour, and open partial matches of the instances that published
// within three DefaultStatsInterval.
func (r *Registry) RuleStats(ctx context.Context, rules []RuleRef) (RuleStatsReport, error) {
	alertsKey, suppressedKey, openKey, instancesKey := r.statsKeys()
	now := r.clock()
	live, err := r.client.ZRangeByScoreWithScores(ctx, instancesKey, &redis.ZRangeBy{
		Min: strconv.FormatInt(now.Add(-statsStaleIntervals*DefaultStatsInterval).UnixMilli(), 10),
		Max: "+inf",
	}).Result()
	if err != nil {
		return RuleStatsReport{}, fmt.Errorf("registry: rule stats: %w", err)
	}
	rep := RuleStatsReport{Rules: make([]RuleFigures, len(rules)), Instances: len(live)}
	for _, z := range live {
		at := time.UnixMilli(int64(z.Score))
		if rep.GatherTime.IsZero() || at.Before(rep.GatherTime) {
			rep.GatherTime = at
		}
	}
	if len(rules) == 0 {
		return rep, nil
	}
	fields := make([]string, len(rules))
	for i, ref := range rules {
		fields[i] = ref.field()
	}
	minute := now.Unix() / 60
	cmds, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for m := minute - statsHorizon + 1; m <= minute; m++ {
			p.HMGet(ctx, alertsKey+strconv.FormatInt(m, 10), fields...)
			p.HMGet(ctx, suppressedKey+strconv.FormatInt(m, 10), fields...)
		}
		for _, z := range live {
			p.HMGet(ctx, openKey+z.Member.(string), fields...)
		}
		return nil
	})
	if err != nil {
		return RuleStatsReport{}, fmt.Errorf("registry: rule stats: %w", err)
	}
	for i, c := range cmds {
		vals := c.(*redis.SliceCmd).Val()
		for j, v := range vals {
			s, _ := v.(string)
			n, _ := strconv.ParseInt(s, 10, 64)
			fig := &rep.Rules[j]
			switch {
			case i >= 2*statsHorizon:
				fig.OpenPartialMatches += n
			case i%2 == 0:
				fig.AlertsLastHour += n
			default:
				fig.SuppressedLastHour += n
			}
		}
	}
	return rep, nil
}

// StatsPublisherOptions configure NewStatsPublisher.
type StatsPublisherOptions struct {
	// Registry is where the figures go. Required.
	Registry *Registry
	// Gather returns the instance's figures (cep.Engine.RuleActivity).
	// Required.
	Gather func() []RuleCounts
	// Instance names the instance, unique in the cluster. Default: the
	// host name, the process id and a random suffix.
	Instance string
	// Interval is how often Run publishes. Default and maximum
	// DefaultStatsInterval, which readers count on (Registry.RuleStats).
	Interval time.Duration
	// Logger receives publication failures. Default: discard.
	Logger *slog.Logger
}

// StatsPublisher publishes an instance's per-rule figures to the registry
// for Registry.RuleStats.
type StatsPublisher struct {
	opts StatsPublisherOptions
	// last are the counts of the last publication, to add what they
	// gained since.
	last map[RuleRef]RuleCounts
	// failing is true while publications fail, so that only the first
	// failure of a run of them is logged.
	failing bool
}

// NewStatsPublisher checks opts.
func NewStatsPublisher(opts StatsPublisherOptions) (*StatsPublisher, error) {
	if opts.Registry == nil || opts.Gather == nil {
		return nil, errors.New("stats publisher: registry and gather are required")
	}
	if opts.Instance == "" {
		host, _ := os.Hostname()
		var b [4]byte
		_, _ = rand.Read(b[:])
		opts.Instance = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
	}
	switch {
	case opts.Interval <= 0:
		opts.Interval = DefaultStatsInterval
	case opts.Interval > DefaultStatsInterval:
		return nil, fmt.Errorf("stats publisher: interval %v: at most %v, as readers count an instance as gone after %d of them", opts.Interval, DefaultStatsInterval, statsStaleIntervals)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &StatsPublisher{opts: opts, last: map[RuleRef]RuleCounts{}}, nil
}

// Instance is the name the publisher publishes under.
func (p *StatsPublisher) Instance() string { return p.opts.Instance }

// Run publishes every interval until ctx ends, then once more, and
// withdraws the instance's open partial matches so that they stop
// counting at once. A failed publication is logged and retried at the
// next interval, with the counts gained meanwhile.
func (p *StatsPublisher) Run(ctx context.Context) error {
	tick := time.NewTicker(p.opts.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			end, cancel := context.WithTimeout(context.WithoutCancel(ctx), statsFinalTimeout)
			defer cancel()
			p.publish(end)
			if err := p.Withdraw(end); err != nil {
				p.opts.Logger.Warn("rule stats: withdraw the instance's figures", "err", err)
			}
			return nil
		case <-tick.C:
			p.publish(ctx)
		}
	}
}

func (p *StatsPublisher) publish(ctx context.Context) {
	err := p.Publish(ctx)
	switch {
	case err != nil && !p.failing:
		p.opts.Logger.Warn("rule stats: publish to the registry failed; retrying", "err", err)
	case err == nil && p.failing:
		p.opts.Logger.Info("rule stats: publishing again")
	}
	p.failing = err != nil
}

// Publish publishes the instance's figures once: the counts gained since
// the last publication go to the current minute, the open partial matches
// replace the instance's last ones.
func (p *StatsPublisher) Publish(ctx context.Context) error {
	r := p.opts.Registry
	alertsKey, suppressedKey, openKey, instancesKey := r.statsKeys()
	now := r.clock()
	minute := strconv.FormatInt(now.Unix()/60, 10)
	counts := p.opts.Gather()
	next := make(map[RuleRef]RuleCounts, len(counts))
	type fieldCount struct {
		field string
		n     int64
	}
	var alerts, suppressed []fieldCount
	var open []any // field, count, …: HSet's arguments
	for _, c := range counts {
		ref := RuleRef{Ruleset: c.Ruleset, Rule: c.Rule, Shadow: c.Shadow}
		next[ref] = c
		last := p.last[ref]
		if n := gained(c.Alerts, last.Alerts); n > 0 {
			alerts = append(alerts, fieldCount{ref.field(), int64(n)})
		}
		if n := gained(c.Suppressed, last.Suppressed); n > 0 {
			suppressed = append(suppressed, fieldCount{ref.field(), int64(n)})
		}
		if c.OpenPartialMatches > 0 {
			open = append(open, ref.field(), c.OpenPartialMatches)
		}
	}
	instanceOpen := openKey + p.opts.Instance
	ttl := statsStaleIntervals * p.opts.Interval
	_, err := r.client.TxPipelined(ctx, func(tx redis.Pipeliner) error {
		for _, k := range []struct {
			key    string
			counts []fieldCount
		}{{alertsKey + minute, alerts}, {suppressedKey + minute, suppressed}} {
			for _, c := range k.counts {
				tx.HIncrBy(ctx, k.key, c.field, c.n)
			}
			if len(k.counts) > 0 {
				tx.Expire(ctx, k.key, statsMinuteTTL)
			}
		}
		tx.Del(ctx, instanceOpen)
		if len(open) > 0 {
			tx.HSet(ctx, instanceOpen, open...)
			tx.PExpire(ctx, instanceOpen, ttl)
		}
		tx.ZAdd(ctx, instancesKey, redis.Z{Score: float64(now.UnixMilli()), Member: p.opts.Instance})
		// Instances gone for a day are forgotten; those stale for less are
		// only left out by readers.
		tx.ZRemRangeByScore(ctx, instancesKey, "-inf", "("+strconv.FormatInt(now.Add(-24*time.Hour).UnixMilli(), 10))
		return nil
	})
	if err != nil {
		return fmt.Errorf("registry: publish rule stats: %w", err)
	}
	p.last = next
	return nil
}

// Withdraw removes the instance's open partial matches and its entry, as
// a stopping instance does; its counts stay.
func (p *StatsPublisher) Withdraw(ctx context.Context) error {
	_, _, openKey, instancesKey := p.opts.Registry.statsKeys()
	_, err := p.opts.Registry.client.TxPipelined(ctx, func(tx redis.Pipeliner) error {
		tx.Del(ctx, openKey+p.opts.Instance)
		tx.ZRem(ctx, instancesKey, p.opts.Instance)
		return nil
	})
	if err != nil {
		return fmt.Errorf("registry: withdraw rule stats: %w", err)
	}
	return nil
}

// gained is what a count gained since last; a count that went down (its
// rule left the rulesets and came back) gained all it holds.
func gained(cur, last uint64) uint64 {
	if cur < last {
		return cur
	}
	return cur - last
}
