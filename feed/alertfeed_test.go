package feed

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/shrike-cep/shrike/internal/pagetoken"
	"github.com/shrike-cep/shrike/internal/testkit"
	"github.com/shrike-cep/shrike/matcher"
	"github.com/shrike-cep/shrike/rules"
)

func TestParseAlertRoundTrip(t *testing.T) {
	ev := func(s string) *matcher.Record {
		e, err := rules.ParseEvent([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		return &matcher.Record{Event: e, Key: "acct-42"}
	}
	at := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		alert *matcher.Alert
	}{
		{"pattern", &matcher.Alert{
			ID: "5f1c", Ruleset: "payments", Rule: "account-takeover", RuleVersion: "3", Severity: rules.SeverityCritical,
			Key: "acct-42", Summary: "drained", Labels: map[string]string{"team": "fraud", "tier": "1"},
			Start: at, End: at.Add(250 * time.Second), DetectedAt: at.Add(251200 * time.Millisecond),
			Steps: []matcher.StepRecords{
				// Not in alphabetical order: the order must survive.
				{Step: "fails", Records: []*matcher.Record{ev(`{"ip":"1.2.3.4"}`), ev(`{ "ip" : "1.2.3.5", "n": [1, {"x": null}] }`)}},
				{Step: "login", Records: []*matcher.Record{ev(`{"ip":"9.9.9.9"}`)}},
				{Step: "drain", Records: []*matcher.Record{ev(`{"amount":1e3,"big":12345678901234567890}`)}},
			},
		}},
		{"shrunk", &matcher.Alert{
			ID: "5f1d", Ruleset: "payments", Rule: "big", Severity: rules.SeverityHigh, Key: "acct-42", Start: at, End: at, DetectedAt: at,
			Steps: []matcher.StepRecords{{Step: "event", Records: []*matcher.Record{
				ev(`{"truncated":true,"topic":"payments","partition":3,"offset":7,"bytes":512345}`),
			}}},
			Truncated: []string{"events", "key"},
		}},
		{"timeout without events", &matcher.Alert{
			ID: "77", Ruleset: "r", Rule: "x", Severity: rules.SeverityInfo, Timeout: true, Start: at, End: at, DetectedAt: at,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := tt.alert.AppendJSON(nil)
			a, err := ParseAlert(want)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want), string(a.AppendJSON(nil))); diff != "" {
				t.Errorf("re-encoded alert (-want +got):\n%s", diff)
			}
			for _, s := range a.Steps {
				for _, r := range s.Records {
					if r.Key != tt.alert.Key {
						t.Errorf("step %s: record key %q, want %q", s.Step, r.Key, tt.alert.Key)
					}
				}
			}
		})
	}
}

func TestParseAlertErrors(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"not json", `hello`, "parse alert: invalid character"},
		{"no id", `{"ruleset":"a","rule":"b"}`, "no id, ruleset or rule"},
		{"events not object", `{"id":"1","ruleset":"a","rule":"b","events":[1]}`, "events: not an object"},
		{"event not object", `{"id":"1","ruleset":"a","rule":"b","events":{"s":[1]}}`, `step "s": event 0`},
		{"bad time", `{"id":"1","ruleset":"a","rule":"b","start":"yesterday"}`, "parse alert"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseAlert([]byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseAlert(%s) = %v, want an error containing %q", tt.in, err, tt.want)
			}
		})
	}
}

func TestAlertFeedReadsBackRecent(t *testing.T) {
	brokers := feedCluster(t)
	p := newFeedProducer(t, brokers)
	// Four per partition before the feed starts; with Recent 6 the feed
	// reads back the last 2 of each.
	p.produce(0, 12)
	f := startFeed(t, AlertFeedOptions{Brokers: brokers, Recent: 6})
	var got []Alert
	testkit.WaitFor(t, feedWait, "6 recent alerts", func() bool {
		var err error
		got, _, err = f.Recent(100, "", nil)
		return err == nil && len(got) == 6
	})
	if diff := cmp.Diff(wantIDs(6, 12), sortedIDs(got)); diff != "" {
		t.Errorf("Recent (-want +got):\n%s", diff)
	}
	// The ring keeps the latest 6 as more come.
	p.produce(12, 15)
	testkit.WaitFor(t, feedWait, "the new alerts", func() bool {
		got, _, _ = f.Recent(100, "", nil)
		return slices.Contains(ids(got), "alert-014") && slices.Contains(ids(got), "alert-013") && slices.Contains(ids(got), "alert-012")
	})
	if len(got) != 6 {
		t.Errorf("Recent after 3 more holds %d alerts, want 6: %v", len(got), ids(got))
	}
	if diff := cmp.Diff(wantIDs(12, 15), sortedIDs(got[:3])); diff != "" {
		t.Errorf("Recent after 3 more, the newest (-want +got):\n%s", diff)
	}
}

func TestAlertFeedLiveAndRecent(t *testing.T) {
	brokers := feedCluster(t)
	p := newFeedProducer(t, brokers)
	f := startFeed(t, AlertFeedOptions{Brokers: brokers})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := f.Subscribe(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	p.produceRaw("not an alert") // skipped, logged
	p.produce(0, 6)
	got := receive(t, ch, 6)
	if diff := cmp.Diff(byPartition(wantIDs(0, 6)), byPartition(ids(got))); diff != "" {
		t.Errorf("live alerts by partition (-want +got):\n%s", diff)
	}
	last := got[len(got)-1]
	if last.Cursor != "0:3,1:2,2:2" {
		t.Errorf("cursor after everything = %q, want 0:3,1:2,2:2", last.Cursor)
	}
	if string(last.Raw) != string(feedAlertJSON(t, mustNumID(last.Alert.ID))) {
		t.Errorf("Raw = %s, not the record's value", last.Raw)
	}

	all, next, err := f.Recent(100, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if next != "" {
		t.Errorf("next page token %q on the only page", next)
	}
	// Newest first: the reverse of the feed's order.
	if diff := cmp.Diff(reversed(ids(got)), ids(all)); diff != "" {
		t.Errorf("Recent (-want +got):\n%s", diff)
	}

	t.Run("pages", func(t *testing.T) {
		notLow := func(a *matcher.Alert) bool { return a.Severity != rules.SeverityLow }
		var pages [][]string
		tok := ""
		for {
			page, next, err := f.Recent(3, tok, notLow)
			if err != nil {
				t.Fatal(err)
			}
			pages = append(pages, ids(page))
			if next == "" {
				break
			}
			tok = next
			// Alerts arriving between pages do not shift them.
			if len(pages) == 1 {
				p.produce(6, 9)
				receive(t, ch, 3)
			}
		}
		want := [][]string{filterIDs(reversed(ids(got)), 0, 3), filterIDs(reversed(ids(got)), 3, 4)}
		if diff := cmp.Diff(want, pages); diff != "" {
			t.Errorf("pages of alerts above low (-want +got):\n%s", diff)
		}
	})

	t.Run("bad page token", func(t *testing.T) {
		for _, tok := range []string{"xyz", encodePageToken(3)[2:], "YWxlcnRzOng"} {
			if _, _, err := f.Recent(3, tok, nil); !errors.Is(err, pagetoken.ErrInvalid) {
				t.Errorf("Recent(%q) = %v, want pagetoken.ErrInvalid", tok, err)
			}
		}
	})
}

func TestAlertFeedResume(t *testing.T) {
	brokers := feedCluster(t)
	p := newFeedProducer(t, brokers)
	f := startFeed(t, AlertFeedOptions{Brokers: brokers})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first, err := f.Subscribe(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	p.produce(0, 30)
	got := receive(t, first, 30)

	tests := []struct {
		name  string
		after int // resume after the after-th alert received
		more  int // alerts produced after subscribing
	}{
		{"replay then live", 9, 6},
		{"from the very first", 0, 0},
		{"caught up already", 29, 3},
		{"replay only", 14, 0},
	}
	total := 30
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sctx, scancel := context.WithCancel(ctx)
			defer scancel()
			ch, err := f.Subscribe(sctx, got[tt.after].Cursor)
			if err != nil {
				t.Fatal(err)
			}
			p.produce(total, total+tt.more)
			// Every alert after the cursor's, those of earlier subtests
			// included.
			want := append(ids(got[tt.after+1:]), wantIDs(len(got), total+tt.more)...)
			total += tt.more
			resumed := receive(t, ch, len(want))
			if diff := cmp.Diff(byPartition(want), byPartition(ids(resumed))); diff != "" {
				t.Errorf("resumed alerts by partition (-want +got):\n%s", diff)
			}
			// Nothing more: a marker alert is the next one.
			p.produce(total, total+1)
			total++
			if m := receive(t, ch, 1); m[0].Alert.ID != fmt.Sprintf("alert-%03d", total-1) {
				t.Errorf("after the resumed alerts came %s, want the marker alert-%03d", m[0].Alert.ID, total-1)
			}
			// The first subscription sees the new alerts too.
			receive(t, first, tt.more+1)
		})
	}

	t.Run("cursor of a replayed alert resumes too", func(t *testing.T) {
		sctx, scancel := context.WithCancel(ctx)
		defer scancel()
		ch, err := f.Subscribe(sctx, got[2].Cursor)
		if err != nil {
			t.Fatal(err)
		}
		replayed := receive(t, ch, 5)
		scancel()
		ch2, err := f.Subscribe(ctx, replayed[4].Cursor)
		if err != nil {
			t.Fatal(err)
		}
		rest := receive(t, ch2, total-3-5)
		all := append(ids(replayed), ids(rest)...)
		if diff := cmp.Diff(byPartition(wantIDs(0, total)), byPartition(append(ids(got[:3]), all...))); diff != "" {
			t.Errorf("alerts over two resumed subscriptions (-want +got):\n%s", diff)
		}
	})
}

func TestAlertFeedBadCursors(t *testing.T) {
	brokers := feedCluster(t)
	p := newFeedProducer(t, brokers)
	p.produce(0, 9)
	f := startFeed(t, AlertFeedOptions{Brokers: brokers})
	adm, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	var del kadm.Offsets
	del.Add(kadm.Offset{Topic: feedTopic, Partition: 1, At: 2})
	if _, err := kadm.NewClient(adm).DeleteRecords(context.Background(), del); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		cursor string
		want   error
	}{
		{"0:0,1:0,2:0", ErrCursorExpired},
		{"0:0,1:1", ErrCursorExpired},
		{"0:0,1:2,2:0", nil},
		{"1:3", nil},
		{"0:0,7:0", ErrInvalidCursor},
		{"0:4", ErrInvalidCursor},
		{"0:1,0:2", ErrInvalidCursor},
		{"0:-1", ErrInvalidCursor},
		{"zero", ErrInvalidCursor},
		{"0:1,", ErrInvalidCursor},
	}
	for _, tt := range tests {
		t.Run(tt.cursor, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			_, err := f.Subscribe(ctx, tt.cursor)
			if !errors.Is(err, tt.want) {
				t.Errorf("Subscribe(%q) = %v, want %v", tt.cursor, err, tt.want)
			}
		})
	}
}

// TestAlertFeedSlowSubscriberReadsOnFromKafka: a subscriber that does not
// read while more alerts arrive than the ring holds is not cut off; it
// gets every alert, the older ones read back from Kafka, and the others
// are not held up.
func TestAlertFeedSlowSubscriberReadsOnFromKafka(t *testing.T) {
	brokers := feedCluster(t)
	p := newFeedProducer(t, brokers)
	f := startFeed(t, AlertFeedOptions{Brokers: brokers, Recent: 4})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	slow, err := f.Subscribe(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	fast, err := f.Subscribe(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	const n = subscriberQueue + 40
	p.produce(0, n)
	if diff := cmp.Diff(byPartition(wantIDs(0, n)), byPartition(ids(receive(t, fast, n)))); diff != "" {
		t.Errorf("fast subscriber (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(byPartition(wantIDs(0, n)), byPartition(ids(receive(t, slow, n)))); diff != "" {
		t.Errorf("slow subscriber (-want +got):\n%s", diff)
	}
	p.produce(n, n+1)
	receive(t, slow, 1)
}

func TestAlertFeedStopEndsSubscriptions(t *testing.T) {
	brokers := feedCluster(t)
	f, err := NewAlertFeed(AlertFeedOptions{Brokers: brokers, Topic: feedTopic})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	sctx, scancel := context.WithCancel(context.Background())
	defer scancel()
	ch, err := f.Subscribe(sctx, "")
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	fa, ok := <-ch
	if !ok || !errors.Is(fa.Err, ErrFeedStopped) {
		t.Errorf("after Run returned the subscription got %+v (open %v), want ErrFeedStopped", fa, ok)
	}
	if _, ok := <-ch; ok {
		t.Error("channel still open after its last value")
	}
	if _, err := f.Subscribe(sctx, ""); !errors.Is(err, ErrFeedStopped) {
		t.Errorf("Subscribe after Run = %v, want ErrFeedStopped", err)
	}
	if err := f.Run(context.Background()); err == nil {
		t.Error("a second Run succeeded")
	}
}

// TestAlertFeedAheadCursor covers a cursor from an instance whose feed has
// read further than this one: the live alerts below it are skipped, and
// cursors never go back. The feed is driven by hand (deliver), since which
// of two feeds is ahead cannot be arranged over Kafka without timing.
func TestAlertFeedAheadCursor(t *testing.T) {
	f, err := NewAlertFeed(AlertFeedOptions{Brokers: []string{"127.0.0.1:1"}, Topic: feedTopic})
	if err != nil {
		t.Fatal(err)
	}
	f.next = map[int32]int64{0: 10, 1: 5}
	f.first, f.ringFrom = maps.Clone(f.next), maps.Clone(f.next)
	s := &subscription{ch: make(chan Alert, 10), pos: map[int32]int64{0: 12, 1: 5}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.follow(ctx, s) }()
	fetch := func(p int32, offs ...int64) kgo.Fetches {
		var recs []*kgo.Record
		for _, o := range offs {
			recs = append(recs, &kgo.Record{Topic: feedTopic, Partition: p, Offset: o, Value: feedAlertJSON(t, int(o))})
		}
		return kgo.Fetches{{Topics: []kgo.FetchTopic{{Topic: feedTopic, Partitions: []kgo.FetchPartition{{Partition: p, Records: recs}}}}}}
	}
	f.deliver(fetch(0, 10, 11, 12))
	f.deliver(fetch(1, 5))
	f.deliver(fetch(0, 13))
	var got []string
	for _, fa := range receive(t, s.ch, 3) {
		got = append(got, fmt.Sprintf("%s@%s", fa.Alert.ID, fa.Cursor))
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("follow ended with %v, want context.Canceled", err)
	}
	want := []string{"alert-012@0:13,1:5", "alert-005@0:13,1:6", "alert-013@0:14,1:6"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("alerts with cursors (-want +got):\n%s", diff)
	}
}
