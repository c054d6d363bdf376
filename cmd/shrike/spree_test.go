package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// The card-spree acceptance test: an aggregate rule (five or more distinct
// cards on one account within ten minutes) with alert suppression, run
// through `shrike run` on a generated stream of 3,000 accounts, against a
// brute-force reference computed here from the events alone.

// spreeRuleset is the rule under test; %s is its alert.suppress line (or
// nothing).
const spreeRuleset = `ruleset: spree
stream:
  key: event.account_id
  time: event.ts
  max_out_of_orderness: 5s
schema:
  type: string
  account_id: string
  card_id: string
  amount: double
  n: int
  ts: timestamp
rules:
  - id: card-spree
    severity: high
    aggregate:
      where: event.type == "card_auth"
      window: 10m
      measures:
        cards: count_distinct(event.card_id)
        spent: sum(event.amount)
      having: cards >= 5
    alert:
      summary: '"%%d cards, %%.2f spent".format([cards, spent])'
%s`

const (
	spreeWindow   = 10 * time.Minute
	spreeSuppress = time.Hour
	spreeCards    = 5
	// spreeDisorder bounds how much later than its event time an event
	// arrives: below the ruleset's max_out_of_orderness, so none is late.
	spreeDisorder = 3 * time.Second
)

// spreeEvent is one generated event; n numbers it, and is written into
// the event so that an alert's triggering event can be told apart.
type spreeEvent struct {
	N       int
	Type    string
	Account string
	Card    string // empty for events without a card
	Amount  float64
	Time    time.Time
	// burst is the planned burst the event belongs to, -1 for none.
	burst int
}

func (e *spreeEvent) json() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"type":%q,"account_id":%q`, e.Type, e.Account)
	if e.Card != "" {
		fmt.Fprintf(&b, `,"card_id":%q,"amount":%.2f`, e.Card, e.Amount)
	} else if e.Amount != 0 {
		fmt.Fprintf(&b, `,"amount":%.2f`, e.Amount)
	}
	fmt.Fprintf(&b, `,"n":%d,"ts":%q}`, e.N, e.Time.UTC().Format("2006-01-02T15:04:05.000Z"))
	return b.Bytes()
}

// spreeKind is what an account does.
type spreeKind int

const (
	kindNoise spreeKind = iota
	kindOneBurst
	kindTwoBurstsHoursApart // two bursts two hours apart: two alerts
	kindTwoBurstsClose      // two bursts within 30 minutes: one alert, two unsuppressed
	kindFourCards           // near miss: a burst of only four distinct cards
	kindSpreadOut           // near miss: five cards, six minutes apart
	kindFifthNotCounted     // near miss: the fifth card on an event the rule does not count
)

// spreeStream is a generated stream with what it was planned to hold.
type spreeStream struct {
	events []*spreeEvent // in arrival order
	// bursts[i] is the account of planned burst i.
	bursts []string
	// closeSeconds are the planned bursts that follow an earlier one of
	// their account within the hour (suppressed).
	closeSeconds map[int]bool
	kinds        map[string]spreeKind
}

// genSpree generates the stream: 3,000 accounts, 900 of them with bursts
// of at least five distinct cards within ten minutes, 600 with near
// misses, the rest with ordinary traffic only. Ordinary card
// authorisations use the account's own card and stay more than a window
// away from its bursts and near misses, so that a near miss stays one and
// a burst is exactly the cards planned; accounts interleave in time order,
// a tenth of the events arriving up to spreeDisorder late.
func genSpree(seed uint64) *spreeStream {
	r := rand.New(rand.NewPCG(seed, 0x5c4ee))
	t0 := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	const span = 8 * time.Hour
	s := &spreeStream{closeSeconds: map[int]bool{}, kinds: map[string]spreeKind{}}

	kinds := make([]spreeKind, 0, 3000)
	for kind, n := range map[spreeKind]int{
		kindOneBurst: 500, kindTwoBurstsHoursApart: 200, kindTwoBurstsClose: 200,
		kindFourCards: 200, kindSpreadOut: 200, kindFifthNotCounted: 200,
	} {
		for range n {
			kinds = append(kinds, kind)
		}
	}
	slices.Sort(kinds) // map order is random; the shuffle below is not
	for len(kinds) < 3000 {
		kinds = append(kinds, kindNoise)
	}
	r.Shuffle(len(kinds), func(i, j int) { kinds[i], kinds[j] = kinds[j], kinds[i] })

	var all []*spreeEvent
	cardSeq := 0
	newCard := func() string {
		cardSeq++
		return fmt.Sprintf("card-%06d", cardSeq)
	}
	amount := func() float64 { return float64(500+r.IntN(50000)) / 100 }
	for i, kind := range kinds {
		acct := fmt.Sprintf("acct-%04d", i)
		s.kinds[acct] = kind
		taken := map[time.Time]bool{} // one event per millisecond per account
		at := func(t time.Time) time.Time {
			t = t.Truncate(time.Millisecond)
			for taken[t] {
				t = t.Add(time.Millisecond)
			}
			taken[t] = true
			return t
		}
		var guards [][2]time.Time // no ordinary card auth within these
		add := func(typ, card string, t time.Time, burst int) {
			all = append(all, &spreeEvent{Type: typ, Account: acct, Card: card, Amount: amount(), Time: at(t), burst: burst})
		}
		// burstAt adds a burst of distinct cards, some used twice, within
		// eight minutes from start, the last distinct card on lastType.
		burstAt := func(start time.Time, distinct int, lastType string, burst int) {
			cards := make([]string, distinct)
			for j := range cards {
				cards[j] = newCard()
			}
			seq := slices.Clone(cards)
			for range r.IntN(4) { // repeats of cards already used
				p := 1 + r.IntN(len(seq))
				seq = slices.Insert(seq, p, seq[r.IntN(p)])
			}
			offsets := make([]time.Duration, len(seq))
			for j := 1; j < len(offsets); j++ {
				offsets[j] = time.Duration(r.Int64N(int64(8 * time.Minute)))
			}
			slices.Sort(offsets)
			for j, card := range seq {
				typ := "card_auth"
				if card == cards[distinct-1] && lastType != "" {
					typ = lastType
				}
				add(typ, card, start.Add(offsets[j]), burst)
			}
			guards = append(guards, [2]time.Time{start.Add(-spreeWindow - time.Minute), start.Add(8*time.Minute + spreeWindow + time.Minute)})
		}
		newBurst := func() int {
			s.bursts = append(s.bursts, acct)
			return len(s.bursts) - 1
		}
		start := t0.Add(10*time.Minute + time.Duration(r.Int64N(int64(5*time.Hour+20*time.Minute))))
		switch kind {
		case kindOneBurst:
			burstAt(start, spreeCards+r.IntN(3), "", newBurst())
		case kindTwoBurstsHoursApart:
			burstAt(start, spreeCards+r.IntN(3), "", newBurst())
			burstAt(start.Add(2*time.Hour+time.Duration(r.Int64N(int64(10*time.Minute)))), spreeCards+r.IntN(3), "", newBurst())
		case kindTwoBurstsClose:
			burstAt(start, spreeCards+r.IntN(3), "", newBurst())
			second := newBurst()
			s.closeSeconds[second] = true
			burstAt(start.Add(20*time.Minute+time.Duration(r.Int64N(int64(10*time.Minute)))), spreeCards+r.IntN(2), "", second)
		case kindFourCards:
			burstAt(start, spreeCards-1, "", -1)
		case kindFifthNotCounted:
			burstAt(start, spreeCards, "card_refund", -1)
		case kindSpreadOut:
			t := start
			for range spreeCards {
				add("card_auth", newCard(), t, -1)
				t = t.Add(6*time.Minute + time.Duration(r.Int64N(int64(time.Minute))) - 30*time.Second)
			}
			guards = append(guards, [2]time.Time{start.Add(-spreeWindow - time.Minute), t.Add(spreeWindow + time.Minute)})
		}
		// Ordinary traffic: logins, transfers and authorisations on the
		// account's own card.
		own := newCard()
		for range 3 + r.IntN(10) {
			t := t0.Add(time.Duration(r.Int64N(int64(span))))
			switch x := r.Float64(); {
			case x < 0.3:
				add("login", "", t, -1)
				all[len(all)-1].Amount = 0
			case x < 0.45:
				add("transfer", "", t, -1)
			default:
				if !slices.ContainsFunc(guards, func(g [2]time.Time) bool { return !t.Before(g[0]) && t.Before(g[1]) }) {
					add("card_auth", own, t, -1)
				}
			}
		}
	}

	// Number the events in event-time order, then let a tenth of them
	// arrive late by up to spreeDisorder.
	slices.SortStableFunc(all, func(a, b *spreeEvent) int { return a.Time.Compare(b.Time) })
	arrival := make(map[*spreeEvent]time.Time, len(all))
	for i, e := range all {
		e.N = i + 1
		arrival[e] = e.Time
		if r.Float64() < 0.1 {
			arrival[e] = e.Time.Add(time.Millisecond + time.Duration(r.Int64N(int64(spreeDisorder-time.Millisecond))))
		}
	}
	slices.SortStableFunc(all, func(a, b *spreeEvent) int {
		return cmp.Or(arrival[a].Compare(arrival[b]), cmp.Compare(a.N, b.N))
	})
	s.events = all
	return s
}

// spreeAlert is what the test compares of an alert.
type spreeAlert struct {
	Key     string
	Trigger int // the triggering event's n
	Time    time.Time
	Cards   int
	Spent   float64
}

// referenceSpree computes the alerts by brute force, independently of the
// matcher: per account, in event-time order, each counted event fires when
// five or more distinct cards are in (t-10m, t] with it and were not
// without it; then, with suppress, an alert within the hour after the
// account's last kept one is dropped. It also returns the number dropped.
func referenceSpree(events []*spreeEvent, suppress bool) (alerts []spreeAlert, suppressed int) {
	byAccount := map[string][]*spreeEvent{}
	for _, e := range events {
		if e.Type == "card_auth" {
			byAccount[e.Account] = append(byAccount[e.Account], e)
		}
	}
	for acct, evs := range byAccount {
		slices.SortFunc(evs, func(a, b *spreeEvent) int { return a.Time.Compare(b.Time) })
		var lastKept time.Time
		for i, e := range evs {
			before := map[string]bool{}
			spent := e.Amount
			for _, o := range evs[:i] {
				if o.Time.After(e.Time.Add(-spreeWindow)) {
					before[o.Card] = true
					spent += o.Amount
				}
			}
			after := len(before)
			if !before[e.Card] {
				after++
			}
			if after < spreeCards || len(before) >= spreeCards {
				continue
			}
			if suppress && !lastKept.IsZero() && e.Time.Sub(lastKept) < spreeSuppress {
				suppressed++
				continue
			}
			lastKept = e.Time
			alerts = append(alerts, spreeAlert{Key: acct, Trigger: e.N, Time: e.Time, Cards: after, Spent: spent})
		}
	}
	sortSpree(alerts)
	return alerts, suppressed
}

func sortSpree(alerts []spreeAlert) {
	slices.SortFunc(alerts, func(a, b spreeAlert) int { return cmp.Or(strings.Compare(a.Key, b.Key), a.Time.Compare(b.Time)) })
}

// spreeSummary is what the test reads of `shrike run`'s summary.
type spreeSummary struct {
	alerts, suppressed, celErrors, late, deadLettered int
}

// runSpree writes the stream and the ruleset, runs `shrike run` on them
// and returns the card-spree alerts it printed and its summary.
func runSpree(t *testing.T, s *spreeStream, suppress bool) ([]spreeAlert, spreeSummary) {
	t.Helper()
	dir := t.TempDir()
	suppressLine := ""
	if suppress {
		suppressLine = "      suppress: {for: 1h}\n"
	}
	rulesPath := filepath.Join(dir, "spree.yaml")
	writeFile(t, rulesPath, fmt.Sprintf(spreeRuleset, suppressLine))
	var events bytes.Buffer
	for _, e := range s.events {
		events.Write(e.json())
		events.WriteByte('\n')
	}
	eventsPath := filepath.Join(dir, "spree.jsonl")
	if err := os.WriteFile(eventsPath, events.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	status, stdout, stderr := shrikeCmd(t, "run", "--rules", rulesPath, eventsPath)
	if status != 0 {
		t.Fatalf("shrike run: status %d, want 0:\n%s", status, stderr)
	}
	sum := parseSpreeSummary(t, stderr)
	byN := make(map[int]*spreeEvent, len(s.events))
	for _, e := range s.events {
		byN[e.N] = e
	}
	var got []spreeAlert
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		if line == "" {
			continue
		}
		var a struct {
			Rule     string                       `json:"rule"`
			Key      string                       `json:"key"`
			Summary  string                       `json:"summary"`
			Events   map[string][]json.RawMessage `json:"events"`
			Measures map[string]float64           `json:"measures"`
			Window   struct {
				Start, End time.Time
			} `json:"window"`
		}
		if err := json.Unmarshal([]byte(line), &a); err != nil {
			t.Fatalf("alert %s: %v", line, err)
		}
		if a.Rule != "card-spree" || len(a.Events) != 1 || len(a.Events["event"]) != 1 {
			t.Fatalf("alert of rule %q with events %v, want card-spree with one event under step \"event\": %s", a.Rule, a.Events, line)
		}
		var ev struct {
			N  int       `json:"n"`
			TS time.Time `json:"ts"`
		}
		if err := json.Unmarshal(a.Events["event"][0], &ev); err != nil || byN[ev.N] == nil {
			t.Fatalf("alert's event %s: %v, or no such event", a.Events["event"][0], err)
		}
		cards, spent := a.Measures["cards"], a.Measures["spent"]
		if cards != math.Trunc(cards) || len(a.Measures) != 2 {
			t.Errorf("alert %s: measures %v, want an integral cards and spent", line, a.Measures)
		}
		if want := fmt.Sprintf("%d cards, %.2f spent", int(cards), spent); a.Summary != want {
			t.Errorf("alert %s: summary %q, want %q", line, a.Summary, want)
		}
		if !a.Window.End.Equal(ev.TS) || a.Window.End.Sub(a.Window.Start) != spreeWindow {
			t.Errorf("alert %s: window [%v, %v], want the 10m ending at its event's time %v", line, a.Window.Start, a.Window.End, ev.TS)
		}
		got = append(got, spreeAlert{Key: a.Key, Trigger: ev.N, Time: ev.TS, Cards: int(cards), Spent: spent})
	}
	sortSpree(got)
	return got, sum
}

// parseSpreeSummary reads the card-spree row of the summary table, by
// the columns its header names, and the late and dead-lettered totals.
func parseSpreeSummary(t *testing.T, stderr string) spreeSummary {
	t.Helper()
	var sum spreeSummary
	var header []string
	found := 0
	for _, line := range strings.Split(stderr, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		num := func(s string) int {
			var n int
			if _, err := fmt.Sscan(s, &n); err != nil {
				t.Fatalf("summary line %q: %v", line, err)
			}
			return n
		}
		col := func(name string) int {
			i := slices.Index(header, name)
			if i < 0 || i >= len(f) {
				t.Fatalf("summary has no column %s:\n%s", name, stderr)
			}
			return num(f[i])
		}
		switch {
		case f[0] == "RULE":
			header = f
		case f[0] == "spree/card-spree":
			sum.alerts, sum.suppressed, sum.celErrors = col("ALERTS"), col("SUPPRESSED"), col("CEL")
			found++
		case f[0] == "late" && len(f) >= 2:
			sum.late = num(f[1])
			found++
		case f[0] == "dead-lettered" && len(f) >= 2:
			sum.deadLettered = num(f[1])
			found++
		}
	}
	if found != 3 {
		t.Fatalf("summary without the card-spree row, late and dead-lettered:\n%s", stderr)
	}
	return sum
}

// checkSpreeSummary checks the counts of the summary against the alerts.
func checkSpreeSummary(t *testing.T, sum spreeSummary, alerts, suppressed int) {
	t.Helper()
	want := spreeSummary{alerts: alerts, suppressed: suppressed}
	if sum != want {
		t.Errorf("summary: %+v, want %+v (no CEL error, no late or dead-lettered event)", sum, want)
	}
}

// checkAgainstPlan holds the reference to what the generator planned, so
// that a wrong reference cannot agree with a wrong matcher: exactly one
// alert per planned burst (the second of two close ones suppressed when
// suppress is on), each triggered by an event of its burst, and none for
// a near miss or ordinary traffic.
func checkAgainstPlan(t *testing.T, s *spreeStream, ref []spreeAlert, suppress bool) {
	t.Helper()
	byN := map[int]*spreeEvent{}
	for _, e := range s.events {
		byN[e.N] = e
	}
	fired := map[int]int{}
	for _, a := range ref {
		e := byN[a.Trigger]
		if e.burst < 0 {
			t.Errorf("reference: account %s (kind %d) alerts on event %d, which is in no planned burst", a.Key, s.kinds[a.Key], a.Trigger)
			continue
		}
		fired[e.burst]++
		if a.Cards != spreeCards {
			t.Errorf("reference: burst %d fired at %d cards, want the %dth", e.burst, a.Cards, spreeCards)
		}
	}
	for b, acct := range s.bursts {
		want := 1
		if suppress && s.closeSeconds[b] {
			want = 0
		}
		if fired[b] != want {
			t.Errorf("reference: burst %d of %s (kind %d) fired %d times, want %d", b, acct, s.kinds[acct], fired[b], want)
		}
	}
}

var spreeOpts = []gocmp.Option{
	cmpopts.EquateApprox(0, 1e-6), // sums may add in another order
	cmpopts.EquateComparable(time.Time{}),
}

// TestCardSpreeSuppressed is the acceptance test of aggregate rules with
// suppression: one alert per burst of five distinct cards within ten
// minutes, a burst two hours after the first alerting again and one
// within 30 minutes not, never two alerts for an account within the hour,
// none for a near miss; the alerts, their triggering events and measures
// exactly those of the reference.
func TestCardSpreeSuppressed(t *testing.T) {
	s := genSpree(20261120)
	want, suppressed := referenceSpree(s.events, true)
	checkAgainstPlan(t, s, want, true)
	if len(want) != 1100 || suppressed != 200 {
		t.Fatalf("reference: %d alerts, %d suppressed; the plan is 1100 and 200", len(want), suppressed)
	}

	got, sum := runSpree(t, s, true)
	checkSpreeSummary(t, sum, len(want), suppressed)
	if diff := gocmp.Diff(want, got, spreeOpts...); diff != "" {
		t.Errorf("alerts (-reference +shrike run):\n%s", diff)
	}
	last := map[string]time.Time{}
	for _, a := range got {
		if l, ok := last[a.Key]; ok && a.Time.Sub(l) < spreeSuppress {
			t.Errorf("account %s alerted at %v and again at %v, within the hour", a.Key, l, a.Time)
		}
		last[a.Key] = a.Time
		if k := s.kinds[a.Key]; k == kindNoise || k >= kindFourCards {
			t.Errorf("account %s of kind %d alerted", a.Key, k)
		}
	}
}

// TestCardSpreeUnsuppressed runs the same stream without suppression: the
// rule is edge-triggered, so each burst alerts once, the second of two
// close ones included.
func TestCardSpreeUnsuppressed(t *testing.T) {
	s := genSpree(20261120)
	want, _ := referenceSpree(s.events, false)
	checkAgainstPlan(t, s, want, false)
	if len(want) != len(s.bursts) || len(want) != 1300 {
		t.Fatalf("reference: %d alerts, want one per burst: %d", len(want), len(s.bursts))
	}
	got, sum := runSpree(t, s, false)
	checkSpreeSummary(t, sum, len(want), 0)
	if diff := gocmp.Diff(want, got, spreeOpts...); diff != "" {
		t.Errorf("alerts (-reference +shrike run):\n%s", diff)
	}
}
