package cep

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shrike-cep/shrike/internal/gen"
	"github.com/shrike-cep/shrike/rules"
)

// partitionDump generates a payments stream in event-time order (plain
// JSON lines) and the kcat -C -J dump of the same events produced to a
// topic of n partitions: each event keyed by its account and hashed to a
// partition, the dump holding partition 0 from its first offset to its
// last, then partition 1, and so on, as kcat writes a topic it reads to
// the end.
func partitionDump(t testing.TB, events, partitions int) (ordered, dump []byte) {
	t.Helper()
	g, err := gen.New(gen.Options{Seed: 7, Events: events, Keys: events / 20, FraudRate: 0.01})
	if err != nil {
		t.Fatal(err)
	}
	var plain bytes.Buffer
	parts := make([]bytes.Buffer, partitions)
	offsets := make([]int, partitions)
	for {
		line, ok := g.Next()
		if !ok {
			break
		}
		plain.Write(line)
		plain.WriteByte('\n')
		var ev struct {
			Account string    `json:"account_id"`
			TS      time.Time `json:"ts"`
		}
		if err := json.Unmarshal(line, &ev); err != nil {
			t.Fatalf("generated event %s: %v", line, err)
		}
		h := fnv.New32a()
		h.Write([]byte(ev.Account))
		p := int(h.Sum32() % uint32(partitions))
		fmt.Fprintf(&parts[p], `{"topic":"payments","partition":%d,"offset":%d,"tstype":"create","ts":%d,"broker":0,"key":%q,"payload":%s}`+"\n",
			p, offsets[p], ev.TS.UnixMilli(), ev.Account, strconv.Quote(string(line)))
		offsets[p]++
	}
	for i := range parts {
		dump = append(dump, parts[i].Bytes()...)
	}
	return plain.Bytes(), dump
}

// alertContent is what an alert says about the events, without its id
// (which hashes positions, and a dump's lines are numbered differently):
// rule, key, timeout, and the matched events per step.
func alertContents(t testing.TB, out string) []string {
	t.Helper()
	var got []string
	for line := range strings.Lines(out) {
		var a struct {
			Ruleset, Rule, Key string
			Timeout            bool
			Events             map[string][]json.RawMessage
		}
		if err := json.Unmarshal([]byte(line), &a); err != nil {
			t.Fatalf("alert %q: %v", line, err)
		}
		steps := slices.Sorted(func(yield func(string) bool) {
			for s := range a.Events {
				if !yield(s) {
					return
				}
			}
		})
		s := fmt.Sprintf("%s/%s %s timeout=%v", a.Ruleset, a.Rule, a.Key, a.Timeout)
		for _, step := range steps {
			for _, e := range a.Events[step] {
				s += " " + step + "=" + string(e)
			}
		}
		got = append(got, s)
	}
	slices.Sort(got)
	return got
}

func firstLines(s []string, n int) string {
	if len(s) > n {
		s = append(s[:n:n], fmt.Sprintf("… and %d more", len(s)-n))
	}
	return strings.Join(s, "\n")
}

// TestReplayPartitionDump replays a kcat dump of a 4-partition topic,
// written partition after partition, and expects exactly the alerts of the
// same events replayed in event-time order: each Kafka partition keeps its
// own watermark, as `shrike serve` keeps one per assigned partition, so no
// event is late for having been written after another partition's.
func TestReplayPartitionDump(t *testing.T) {
	n := 20000
	if testing.Short() {
		n = 6000
	}
	ordered, dump := partitionDump(t, n, 4)
	rs := loadFile(t, "../rulesets/payments.yaml")
	run := func(t *testing.T, name string, data []byte, sequential bool) (string, Summary) {
		t.Helper()
		var out bytes.Buffer
		sum, err := Replay(t.Context(), ReplayOptions{
			Rulesets:   []*rules.Compiled{rs},
			Inputs:     []Input{{Name: name, R: bytes.NewReader(data)}},
			Alerts:     &out,
			Clock:      func() time.Time { return fixedNow },
			Sequential: sequential,
		})
		if err != nil {
			t.Fatal(err)
		}
		return out.String(), sum
	}
	wantOut, wantSum := run(t, "ordered.jsonl", ordered, true)
	want := alertContents(t, wantOut)
	if wantSum.Late != 0 || len(want) < 50 {
		t.Fatalf("reference: %d late, %d alerts; want none late and at least 50 alerts", wantSum.Late, len(want))
	}
	for _, sequential := range []bool{true, false} {
		t.Run(fmt.Sprintf("sequential=%v", sequential), func(t *testing.T) {
			gotOut, sum := run(t, "dump.kcat", dump, sequential)
			if sum.Late != 0 || sum.Events != uint64(n) {
				t.Errorf("%d of %d events replayed, %d late; want all, none late", sum.Events, n, sum.Late)
			}
			if got := alertContents(t, gotOut); !slices.Equal(got, want) {
				t.Errorf("the dump gave %d alerts, the events in time order %d; missing from the dump:\n%s\nonly in the dump:\n%s",
					len(got), len(want), firstLines(without(want, got), 5), firstLines(without(got, want), 5))
			}
			// Counters that do not depend on when a partition's
			// watermark moves are the reference's.
			for i, r := range sum.Rules {
				w := wantSum.Rules[i]
				if r.Alerts != w.Alerts || r.Timeouts != w.Timeouts || r.Dropped != w.Dropped || r.CELErrors != w.CELErrors {
					t.Errorf("rule %s: alerts/timeouts/dropped/CEL errors = %d/%d/%d/%d, want %d/%d/%d/%d", r.Rule,
						r.Alerts, r.Timeouts, r.Dropped, r.CELErrors, w.Alerts, w.Timeouts, w.Dropped, w.CELErrors)
				}
			}
		})
	}
}

// TestReplayPartitionPeaks checks the peak of open partial matches over
// the Partitions of a two-partition dump: partition 0 opens two, which
// time out, then one; partition 1, written after it, opens three while
// partition 0's last is open. The peak is 4, where the sum of each
// partition's peak would say 5 and the largest 3.
func TestReplayPartitionPeaks(t *testing.T) {
	rs := load(t, "records.yaml", strings.Replace(recordRules, "  - id: cart-then-pay\n", "  - id: cart-then-pay\n    within: 1m\n", 1))
	line := func(partition, offset int, ts int64, key, typ string) string {
		return fmt.Sprintf(`{"topic":"orders","partition":%d,"offset":%d,"ts":%d,"key":%q,"payload":"{\"type\":\"%s\"}"}`+"\n",
			partition, offset, ts, key, typ)
	}
	dump := line(0, 0, 0, "u1", "cart") +
		line(0, 1, 1000, "u3", "cart") +
		line(0, 2, 120000, "u5", "view") + // u1's and u3's windows close
		line(0, 3, 180000, "u7", "cart") +
		line(0, 4, 180001, "u9", "view") +
		line(1, 0, 500, "u2", "cart") +
		line(1, 1, 1500, "u4", "cart") +
		line(1, 2, 1600, "u6", "cart") +
		line(1, 3, 1700, "u8", "view")
	res, err := replay(t, ReplayOptions{Rulesets: []*rules.Compiled{rs}, Inputs: inputs("orders.kcat", dump)})
	if err != nil {
		t.Fatal(err)
	}
	if res.sum.Late != 0 || res.sum.PeakRuns != 4 || res.sum.Rules[0].PeakRuns != 4 || res.sum.Rules[0].Timeouts != 6 {
		t.Errorf("late %d, peak %d, rule's peak %d, timeouts %d; want 0, 4, 4, 6",
			res.sum.Late, res.sum.PeakRuns, res.sum.Rules[0].PeakRuns, res.sum.Rules[0].Timeouts)
	}
}
