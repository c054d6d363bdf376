package registry

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// settableClock is a clock the test sets.
type settableClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *settableClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *settableClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// TestRuleStats: the figures two instances publish are summed, counts of
// the last hour by minute whatever instance produced them, open partial
// matches of the instances that published lately; a withdrawn or silent
// instance's open partial matches stop counting, its counts stay until
// they are an hour old.
func TestRuleStats(t *testing.T) {
	for _, tg := range redisTargets(t) {
		t.Run(tg.name, func(t *testing.T) {
			ctx := context.Background()
			clock := &settableClock{now: clockStart}
			r := newTestRegistry(t, tg, clock.Now)
			var mu sync.Mutex
			counts := map[string][]RuleCounts{}
			publisher := func(instance string) *StatsPublisher {
				p, err := NewStatsPublisher(StatsPublisherOptions{
					Registry: r, Instance: instance,
					Gather: func() []RuleCounts {
						mu.Lock()
						defer mu.Unlock()
						return counts[instance]
					},
				})
				if err != nil {
					t.Fatal(err)
				}
				return p
			}
			a, b := publisher("a"), publisher("b")
			publish := func(ps ...*StatsPublisher) {
				t.Helper()
				for _, p := range ps {
					if err := p.Publish(ctx); err != nil {
						t.Fatal(err)
					}
				}
			}
			refs := []RuleRef{{Ruleset: "pay", Rule: "big"}, {Ruleset: "pay", Rule: "small"}, {Ruleset: "pay", Rule: "big", Shadow: true}}
			check := func(step string, want RuleStatsReport) {
				t.Helper()
				got, err := r.RuleStats(ctx, refs)
				if err != nil {
					t.Fatal(err)
				}
				if d := cmp.Diff(want, got, recordCmp); d != "" {
					t.Errorf("%s: stats (-want +got):\n%s", step, d)
				}
			}
			check("nothing published", RuleStatsReport{Rules: make([]RuleFigures, 3)})

			mu.Lock()
			counts["a"] = []RuleCounts{
				{Ruleset: "pay", Rule: "big", Alerts: 3, Suppressed: 1, OpenPartialMatches: 5},
				{Ruleset: "pay", Rule: "big", Shadow: true, Alerts: 7},
			}
			counts["b"] = []RuleCounts{
				{Ruleset: "pay", Rule: "big", Alerts: 2, OpenPartialMatches: 4},
				{Ruleset: "pay", Rule: "small", OpenPartialMatches: 1},
				{Ruleset: "other", Rule: "big", Alerts: 100},
			}
			mu.Unlock()
			publish(a)
			clock.Add(time.Second)
			publish(b)
			check("both published", RuleStatsReport{
				Rules:     []RuleFigures{{AlertsLastHour: 5, SuppressedLastHour: 1, OpenPartialMatches: 9}, {OpenPartialMatches: 1}, {AlertsLastHour: 7}},
				Instances: 2, GatherTime: clockStart,
			})

			// Published again, only what the counts gained is added.
			clock.Add(2 * time.Minute)
			mu.Lock()
			counts["a"][0].Alerts, counts["a"][0].OpenPartialMatches = 4, 0
			mu.Unlock()
			publish(a, b)
			check("published again", RuleStatsReport{
				Rules:     []RuleFigures{{AlertsLastHour: 6, SuppressedLastHour: 1, OpenPartialMatches: 4}, {OpenPartialMatches: 1}, {AlertsLastHour: 7}},
				Instances: 2, GatherTime: clockStart.Add(121 * time.Second),
			})

			// b stops: its open partial matches go, its alerts stay.
			if err := b.Withdraw(ctx); err != nil {
				t.Fatal(err)
			}
			check("b withdrawn", RuleStatsReport{
				Rules:     []RuleFigures{{AlertsLastHour: 6, SuppressedLastHour: 1}, {}, {AlertsLastHour: 7}},
				Instances: 1, GatherTime: clockStart.Add(121 * time.Second),
			})

			// An hour after the first publication its counts are out of the
			// window; a fell silent long ago.
			clock.Add(59 * time.Minute)
			check("an hour later", RuleStatsReport{Rules: []RuleFigures{{AlertsLastHour: 1}, {}, {}}})
		})
	}
}

func TestStatsPublisherOptions(t *testing.T) {
	tg := redisTargets(t)[0]
	r := newTestRegistry(t, tg, nil)
	if _, err := NewStatsPublisher(StatsPublisherOptions{Registry: r}); err == nil {
		t.Error("no Gather: no error")
	}
	if _, err := NewStatsPublisher(StatsPublisherOptions{Registry: r, Gather: func() []RuleCounts { return nil }, Interval: time.Minute}); err == nil {
		t.Error("an interval over DefaultStatsInterval: no error")
	}
	p, err := NewStatsPublisher(StatsPublisherOptions{Registry: r, Gather: func() []RuleCounts { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	if p.Instance() == "" {
		t.Error("no default instance name")
	}
}
