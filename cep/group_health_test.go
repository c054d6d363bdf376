package cep

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/shrike-cep/shrike/internal/testkit"
	"github.com/shrike-cep/shrike/rules"
	"github.com/shrike-cep/shrike/state"
)

// TestEngineNotReadyWhilePartitionsLackAnOwner: a second member of the
// engine's group stops heartbeating, as an instance killed with SIGKILL
// does. Once the broker drops it, its partitions have no owner until the
// engine has rejoined and taken them: the engine is not ready in between
// (it was, before the group check, since its own partitions were fine),
// and ready again once it owns every partition.
func TestEngineNotReadyWhilePartitionsLackAnOwner(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(testPartitions, "payments"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	brokers := c.ListenAddrs()
	const group = "orphans"
	groupOpts := []kgo.Opt{
		kgo.SessionTimeout(6 * time.Second), // kfake's minimum
		kgo.HeartbeatInterval(200 * time.Millisecond),
		kgo.RebalanceTimeout(10 * time.Second),
	}
	e, err := NewEngine(EngineOptions{
		Brokers: brokers, Group: group, Rulesets: []*rules.Compiled{loadPayments(t)}, Store: state.NewMemory(),
		Clock: newFakeClock().Now, DrainTimeout: 5 * time.Second,
		KafkaOptions: append([]kgo.Opt{kgo.FetchMaxWait(50 * time.Millisecond)}, groupOpts...),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	testkit.WaitFor(t, 0, "the engine to be ready", e.Ready)

	var zombieHeld atomic.Int64
	zombie, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(brokers...), kgo.ConsumerGroup(group), kgo.ConsumeTopics("payments"),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			zombieHeld.Add(int64(len(m["payments"])))
		}),
	}, groupOpts...)...)
	if err != nil {
		t.Fatal(err)
	}
	zctx, stopZombie := context.WithCancel(t.Context())
	zdone := make(chan struct{})
	go func() {
		defer close(zdone)
		for zctx.Err() == nil {
			zombie.PollFetches(zctx)
		}
	}()
	defer func() {
		stopZombie()
		<-zdone
		zombie.Close()
	}()
	testkit.WaitFor(t, 0, "the partitions to be split with the second member", func() bool {
		return zombieHeld.Load() > 0 && len(e.Status().Partitions) == testPartitions-int(zombieHeld.Load()) && e.Ready()
	})

	zombieID, _ := zombie.GroupMetadata()
	e.mu.Lock()
	engineID, _ := e.cl.GroupMetadata()
	e.mu.Unlock()
	// The broker no longer hears the second member: its heartbeats are
	// answered but not counted, so its session times out. The engine's
	// rejoin is held at the broker until the test has looked at the
	// engine while the partitions have no owner.
	c.ControlKey(int16(kmsg.Heartbeat), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		hb, ok := req.(*kmsg.HeartbeatRequest)
		if !ok || hb.MemberID != zombieID {
			return nil, nil, false
		}
		resp, _ := hb.ResponseKind().(*kmsg.HeartbeatResponse)
		return resp, nil, true
	})
	release := make(chan struct{})
	c.ControlKey(int16(kmsg.JoinGroup), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if jr, ok := req.(*kmsg.JoinGroupRequest); ok && jr.MemberID == engineID {
			c.SleepControl(func() { <-release })
		}
		return nil, nil, false
	})
	releaseOnce := func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}
	defer releaseOnce()

	adm := kadm.NewClient(zombie)
	testkit.WaitFor(t, 20*time.Second, "the broker to drop the silent member", func() bool {
		gs, err := adm.DescribeGroups(t.Context(), group)
		return err == nil && gs[group].State != "Stable"
	})
	for range 5 {
		e.CheckGroup(t.Context())
		st := e.Status()
		if st.Ready || !strings.Contains(st.Reason, "consumer group "+group) {
			t.Fatalf("while the group rebalances without the silent member: ready %v, reason %q; want not ready, for the group",
				st.Ready, st.Reason)
		}
		time.Sleep(20 * time.Millisecond)
	}
	releaseOnce()
	testkit.WaitFor(t, 20*time.Second, "the engine to own every partition and be ready", func() bool {
		return len(e.Status().Partitions) == testPartitions && e.Ready()
	})
}

// TestEngineSessionTimeout: the engine asks the broker for its session
// timeout, DefaultSessionTimeout unless configured, rather than
// franz-go's 45 s, for which a killed instance's partitions wait.
func TestEngineSessionTimeout(t *testing.T) {
	for _, tt := range []struct {
		name string
		set  time.Duration
		want time.Duration
	}{
		{name: "default", want: DefaultSessionTimeout},
		{name: "configured", set: 7 * time.Second, want: 7 * time.Second},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(testPartitions, "payments"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			var asked atomic.Int32
			c.ControlKey(int16(kmsg.JoinGroup), func(req kmsg.Request) (kmsg.Response, error, bool) {
				if jr, ok := req.(*kmsg.JoinGroupRequest); ok {
					asked.Store(jr.SessionTimeoutMillis)
				}
				return nil, nil, false
			})
			e, err := NewEngine(EngineOptions{
				Brokers: c.ListenAddrs(), Rulesets: []*rules.Compiled{loadPayments(t)}, Store: state.NewMemory(),
				Clock: newFakeClock().Now, SessionTimeout: tt.set,
			})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() { done <- e.Run(ctx) }()
			testkit.WaitFor(t, 0, "the engine to be ready", e.Ready)
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
			if got := time.Duration(asked.Load()) * time.Millisecond; got != tt.want {
				t.Errorf("session timeout asked of the broker = %v, want %v", got, tt.want)
			}
		})
	}
}
