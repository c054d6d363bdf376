package bench

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/shrike-cep/shrike/matcher"
	"github.com/shrike-cep/shrike/rules"
)

// ruleKinds are one rule of each kind over the payments stream's card
// authorizations: a single-event rule, and aggregates of increasing cost
// (a count; distinct cards and their sum, sliding and tumbling).
var ruleKinds = []struct{ name, body string }{
	{"when", `
    when: event.type == "card_auth" && event.amount > 400.0`},
	{"aggregate-count", `
    aggregate:
      where: event.type == "card_auth"
      window: 10m
      measures:
        auths: count()
      having: auths >= 5`},
	{"aggregate-spree", `
    aggregate:
      where: event.type == "card_auth"
      window: 10m
      measures:
        cards: count_distinct(event.card_id)
        spent: sum(event.amount)
      having: cards >= 5`},
	{"aggregate-spree-tumbling", `
    aggregate:
      where: event.type == "card_auth"
      window: 10m
      tumbling: true
      measures:
        cards: count_distinct(event.card_id)
        spent: sum(event.amount)
      having: cards >= 5`},
}

// kindRuleset is a payments-stream ruleset of one rule with body.
func kindRuleset(tb testing.TB, body string) *rules.Compiled {
	tb.Helper()
	src := `ruleset: kinds
stream:
  topic: payments
  key: event.account_id
  time: event.ts
  max_out_of_orderness: 5s
rules:
  - id: rule` + body + "\n"
	rs, err := rules.Load("kinds.yaml", []byte(src), rules.CompileOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	return rs
}

// BenchmarkAggregate is BenchmarkMatcher for one rule of each kind: what an
// aggregate rule costs per event next to a single-event rule with the same
// condition. Compare cpu-ns/event of the aggregate-* runs with when's,
// measured in the same run.
func BenchmarkAggregate(b *testing.B) {
	for _, k := range ruleKinds {
		b.Run(k.name, func(b *testing.B) {
			benchMatcher(b, kindRuleset(b, k.body), nil)
		})
	}
}

// BenchmarkAggregateMemory measures what an aggregate rule's window costs
// per key: the live heap of 100,000 keys with n card authorizations each
// in the window, minus that of the same keys with events the rule does not
// count, per key; and the mean size of such a key's encoded state (what a
// checkpoint writes to Redis for it). A single-event rule holds nothing
// per key. It is a measurement rather than a timing.
func BenchmarkAggregateMemory(b *testing.B) {
	keys := envInt("SHRIKE_BENCH_MEMORY_KEYS", 100_000)
	for _, k := range ruleKinds[1:] {
		rs := kindRuleset(b, k.body)
		prog, err := matcher.NewProgram([]*rules.Compiled{rs})
		if err != nil {
			b.Fatal(err)
		}
		for _, n := range []int{1, 5} {
			b.Run(fmt.Sprintf("%s/events=%d", k.name, n), func(b *testing.B) {
				var perKey, stateBytes float64
				for b.Loop() {
					base := fillKeys(b, rs, prog, baselineLine, keys, n)
					h1 := liveHeap()
					counted := fillKeys(b, rs, prog, cardAuthLine, keys, n)
					h2 := liveHeap()
					if st := base.Stats(); st.Keys != 0 {
						b.Fatalf("baseline holds %d keys, want 0", st.Keys)
					}
					if st := counted.Stats(); st.Keys != keys {
						b.Fatalf("%d keys hold a window, want %d", st.Keys, keys)
					}
					perKey = (float64(h2) - float64(h1)) / float64(keys)
					stateBytes = meanKeyStateBytes(b, counted, keys)
					runtime.KeepAlive(base)
					runtime.KeepAlive(counted)
				}
				b.ReportMetric(perKey, "B/key")
				b.ReportMetric(stateBytes, "B/key-state")
			})
		}
	}
}

// cardAuthLine is a card authorization; %d: account, %d: card, %s: ts.
const cardAuthLine = `{"type":"card_auth","account_id":"acct-%07d","amount":12.50,"currency":"EUR","country":"DE","ip":"84.23.101.7","device":"ios-3f9a2c","success":true,"merchant":"m-12345","card_id":"card-%04d","lat":52.5200,"lon":13.4050,"ts":"%s"}`

// fillKeys pushes n events per key for keys accounts, one second apart,
// keys interleaved, then advances the watermark just past the last one:
// every event is matched and no 10-minute window has closed. format takes
// the account, then (when it has two %d) the event's number, then the
// time.
func fillKeys(tb testing.TB, rs *rules.Compiled, prog *matcher.Program, format string, keys, n int) *matcher.Partition {
	part, err := matcher.NewPartition(prog, &countingOutput{}, matcher.Options{
		MaxOutOfOrderness: rs.Stream.MaxOutOfOrderness,
		Clock:             fixedClock,
	})
	if err != nil {
		tb.Fatal(err)
	}
	start := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	numbered := strings.Count(format, "%") == 3
	var last int64
	seq := 0
	for e := range n {
		for i := range keys {
			ts := start.Add(time.Duration(e)*time.Second + time.Duration(i)*time.Microsecond).Format("2006-01-02T15:04:05.000000Z")
			var line []byte
			if numbered {
				line = fmt.Appendf(nil, format, i, e, ts)
			} else {
				line = fmt.Appendf(nil, format, i, ts)
			}
			rec := decodeRecord(tb, rs, line, seq)
			seq++
			last = rec.Time
			part.Push(&rec)
		}
	}
	part.Advance(last + 1)
	return part
}
