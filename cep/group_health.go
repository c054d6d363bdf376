package cep

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// groupCheckInterval is how often the engine asks the broker whether every
// partition of its topics has an owner in the group (groupCoverage). The
// same check also runs at once after each assignment, revocation or loss.
const groupCheckInterval = time.Second

// groupCheckStale is the age past which the last group check no longer
// counts: a broker that stops answering makes the engine not ready.
const groupCheckStale = 5 * groupCheckInterval

// groupHealth is the outcome of the last group check, kept under
// Engine.mu.
type groupHealth struct {
	at     time.Time // when the check began; zero before the first answer
	reason string    // empty: every partition has an owner
	// warned is set once a failing check made the last answer stale and
	// was logged at Warn, so that a broker that keeps refusing is logged
	// once, not every second.
	warned bool
}

// watchGroup checks the group's coverage every groupCheckInterval, and on
// every kick, until ctx ends. A member killed without leaving still holds
// its partitions until its session times out (EngineOptions.SessionTimeout);
// from then until the partitions are assigned again the check fails, and
// so does readiness, on every instance of the group.
func (e *Engine) watchGroup(ctx context.Context, cl *kgo.Client) {
	adm := kadm.NewClient(cl)
	t := time.NewTicker(groupCheckInterval)
	defer t.Stop()
	for {
		e.checkGroup(ctx, adm)
		if ctx.Err() != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-e.groupKick:
		}
	}
}

// CheckGroup asks the broker now whether every partition of the engine's
// topics has an owner in the group, so that the next Status reflects the
// group as it is rather than as it was up to groupCheckInterval ago.
// /readyz calls it; ctx bounds the wait. Calls run one at a time, so a
// flood of probes costs the broker one check per round trip; a call that
// cannot get its turn before ctx ends leaves the last check. It does
// nothing before Run or after it returns.
func (e *Engine) CheckGroup(ctx context.Context) {
	e.mu.Lock()
	cl, stopped := e.cl, e.stopped
	e.mu.Unlock()
	if cl == nil || stopped {
		return
	}
	select {
	case e.groupTurn <- struct{}{}:
		defer func() { <-e.groupTurn }()
	case <-ctx.Done():
		return
	}
	e.checkGroup(ctx, kadm.NewClient(cl))
}

// checkGroup runs groupCoverage and keeps its outcome unless a check that
// began later has already been kept. A failed check keeps the last one,
// which groupReason stops trusting once it is older than groupCheckStale.
func (e *Engine) checkGroup(ctx context.Context, adm *kadm.Client) {
	began := time.Now()
	reason, err := e.groupCoverage(ctx, adm)
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		e.mu.Lock()
		warn := !e.group.warned && time.Since(e.group.at) > groupCheckStale
		e.group.warned = e.group.warned || warn
		e.mu.Unlock()
		if warn {
			e.log.Warn("cannot tell whether every partition has an owner: not ready until the broker answers",
				"group", e.opts.Group, "err", err)
		} else {
			e.log.Debug("describe consumer group", "group", e.opts.Group, "err", err)
		}
		return
	}
	e.mu.Lock()
	if began.After(e.group.at) {
		e.group = groupHealth{at: began, reason: reason}
	}
	e.mu.Unlock()
}

// kickGroupCheck asks watchGroup to check the group now.
func (e *Engine) kickGroupCheck() {
	select {
	case e.groupKick <- struct{}{}:
	default:
	}
}

// groupCoverage describes the group and the engine's topics and says which
// partitions no member holds: all of them while the group rebalances, the
// killed member's once its session has timed out. Empty when every
// partition has an owner. Topics that do not exist yet have no partitions
// to own.
func (e *Engine) groupCoverage(ctx context.Context, adm *kadm.Client) (string, error) {
	topics := e.plan.Load().topics
	if len(topics) == 0 {
		return "", nil
	}
	ctx, cancel := context.WithTimeout(ctx, groupCheckStale)
	defer cancel()
	gs, err := adm.DescribeGroups(ctx, e.opts.Group)
	if err != nil {
		return "", err
	}
	g, ok := gs[e.opts.Group]
	if !ok {
		return "", fmt.Errorf("no description of group %s", e.opts.Group)
	}
	if g.Err != nil {
		return "", g.Err
	}
	if g.State != "Stable" {
		return fmt.Sprintf("consumer group %s is %s: partitions are being reassigned", e.opts.Group, g.State), nil
	}
	held := map[topicPartition]bool{}
	for _, m := range g.Members {
		ca, ok := m.Assigned.AsConsumer()
		if !ok {
			continue
		}
		for _, t := range ca.Topics {
			for _, p := range t.Partitions {
				held[topicPartition{t.Topic, p}] = true
			}
		}
	}
	td, err := adm.ListTopics(ctx, topics...)
	if err != nil {
		return "", err
	}
	var orphans []string
	for _, t := range topics {
		d, ok := td[t]
		if !ok || errors.Is(d.Err, kerr.UnknownTopicOrPartition) {
			continue
		}
		if d.Err != nil {
			return "", fmt.Errorf("topic %s: %w", t, d.Err)
		}
		for _, p := range d.Partitions.Numbers() {
			if !held[topicPartition{t, p}] {
				orphans = append(orphans, fmt.Sprintf("%s/%d", t, p))
			}
		}
	}
	if len(orphans) == 0 {
		return "", nil
	}
	slices.Sort(orphans)
	return fmt.Sprintf("no member of consumer group %s holds %s", e.opts.Group, strings.Join(orphans, " ")), nil
}

// groupReason is the readiness reason of the last group check, or empty;
// e.mu is held.
func (e *Engine) groupReason(now time.Time) string {
	switch {
	case len(e.plan.Load().topics) == 0:
		return ""
	case e.group.at.IsZero():
		return "checking that every partition of consumer group " + e.opts.Group + " has an owner"
	case now.Sub(e.group.at) > groupCheckStale:
		return fmt.Sprintf("consumer group %s not described for %v", e.opts.Group, now.Sub(e.group.at).Round(time.Second))
	}
	return e.group.reason
}
