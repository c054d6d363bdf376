package gen

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"math"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the recorded example events under rulesets/testdata")

// testEvent is the decoded form of one generated line.
type testEvent struct {
	Type      string  `json:"type"`
	AccountID string  `json:"account_id"`
	Amount    float64 `json:"amount"`
	Currency  string  `json:"currency"`
	Country   string  `json:"country"`
	IP        string  `json:"ip"`
	Device    string  `json:"device"`
	Success   bool    `json:"success"`
	Merchant  string  `json:"merchant"`
	CardID    string  `json:"card_id"`
	Lat       float64 `json:"lat"`
	Lon       float64 `json:"lon"`
	TS        string  `json:"ts"`
	Scenario  string  `json:"scenario"`

	time time.Time
	line int
}

func generate(t *testing.T, opts Options) []byte {
	t.Helper()
	g, err := New(opts)
	if err != nil {
		t.Fatalf("New(%+v): %v", opts, err)
	}
	var buf bytes.Buffer
	if _, err := g.WriteTo(&buf); err != nil {
		t.Fatalf("WriteTo: %v", err)
	}
	return buf.Bytes()
}

// decode parses every line strictly: unknown fields and bad times fail the
// test, so the generator's output shape is checked on every use.
func decode(t *testing.T, data []byte) []testEvent {
	t.Helper()
	var evs []testEvent
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		var e testEvent
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			t.Fatalf("line %d %s: %v", len(evs)+1, sc.Bytes(), err)
		}
		ts, err := time.Parse(TimeLayout, e.TS)
		if err != nil {
			t.Fatalf("line %d: ts: %v", len(evs)+1, err)
		}
		e.time = ts
		e.line = len(evs) + 1
		evs = append(evs, e)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return evs
}

func TestDeterministic(t *testing.T) {
	opts := Options{Seed: 7, Events: 3000, Keys: 300, OutOfOrder: 0.05, MaxLateness: 1500 * time.Millisecond, FraudRate: 0.01}
	a := generate(t, opts)
	b := generate(t, opts)
	if !bytes.Equal(a, b) {
		t.Fatalf("same options gave different output (%d vs %d bytes)", len(a), len(b))
	}
	opts.Seed = 8
	if c := generate(t, opts); bytes.Equal(a, c) {
		t.Fatal("seeds 7 and 8 gave the same output")
	}
}

func TestNextMatchesWriteTo(t *testing.T) {
	opts := Options{Seed: 3, Events: 500, Keys: 50, OutOfOrder: 0.1, FraudRate: 0.02}
	g, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	var viaNext []byte
	for {
		line, ok := g.Next()
		if !ok {
			break
		}
		viaNext = append(append(viaNext, line...), '\n')
	}
	if g.Written() != opts.Events {
		t.Errorf("Written() = %d, want %d", g.Written(), opts.Events)
	}
	if diff := cmp.Diff(string(generate(t, opts)), string(viaNext)); diff != "" {
		t.Errorf("Next and WriteTo disagree (-WriteTo +Next):\n%s", diff)
	}
}

func TestShape(t *testing.T) {
	opts := Options{Seed: 1, Events: 20000, Keys: 2000, Rate: 50, FraudRate: 0.002}
	data := generate(t, opts)
	evs := decode(t, data)
	if len(evs) != opts.Events {
		t.Fatalf("got %d events, want %d", len(evs), opts.Events)
	}
	avg := float64(len(data)) / float64(len(evs))
	if avg < 170 || avg > 260 {
		t.Errorf("average line is %.0f bytes, want about 200", avg)
	}
	accounts := map[string]bool{}
	types := map[string]int{}
	for _, e := range evs {
		accounts[e.AccountID] = true
		types[e.Type]++
		if e.Currency == "" || e.Country == "" || e.IP == "" || e.Device == "" {
			t.Fatalf("line %d: empty common field: %+v", e.line, e)
		}
		if (e.Type == TypeCardAuth) != (e.CardID != "") || (e.Type == TypeCardAuth) != (e.Merchant != "") {
			t.Fatalf("line %d: card fields on a %s: %+v", e.line, e.Type, e)
		}
	}
	if len(accounts) > opts.Keys || len(accounts) < opts.Keys*9/10 {
		t.Errorf("%d distinct accounts, want close to %d and at most that", len(accounts), opts.Keys)
	}
	for _, typ := range []string{TypeLogin, TypeLogout, TypeTransfer, TypeCardAuth, TypePasswordReset, Type2FAVerified} {
		if types[typ] == 0 {
			t.Errorf("no %s events", typ)
		}
	}
	// Background traffic runs at Rate; follow-ups add a few percent.
	span := evs[len(evs)-1].time.Sub(evs[0].time).Seconds()
	if rate := float64(len(evs)) / span; rate < 49 || rate > 55 {
		t.Errorf("rate %.1f events/s of event time, want about 50", rate)
	}
}

func TestOutOfOrder(t *testing.T) {
	tests := []struct {
		name     string
		fraction float64
		lateness time.Duration
	}{
		{"in order", 0, 0},
		{"5% by 1.5s", 0.05, 1500 * time.Millisecond},
		{"20% by 200ms", 0.2, 200 * time.Millisecond},
		{"default lateness", 0.1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := Options{Seed: 11, Events: 20000, Keys: 1000, Rate: 1000, OutOfOrder: tt.fraction, MaxLateness: tt.lateness}
			evs := decode(t, generate(t, opts))
			maxLate := tt.lateness
			if maxLate == 0 && tt.fraction > 0 {
				maxLate = time.Second
			}
			var newest time.Time
			var late int
			var worst time.Duration
			for _, e := range evs {
				if e.time.Before(newest) {
					late++
					worst = max(worst, newest.Sub(e.time))
				} else {
					newest = e.time
				}
			}
			got := float64(late) / float64(len(evs))
			// Binomial noise at n=20000 is under 0.5%; an event delayed by
			// a millisecond or two may still arrive in order, hence the
			// slightly wider lower bound.
			if math.Abs(got-tt.fraction) > 0.01 {
				t.Errorf("out-of-order fraction %.4f, want %.2f ± 0.01", got, tt.fraction)
			}
			if worst > maxLate {
				t.Errorf("worst lateness %v exceeds max %v", worst, maxLate)
			}
			if tt.fraction > 0 && worst < maxLate/2 {
				t.Errorf("worst lateness %v, want close to max %v", worst, maxLate)
			}
		})
	}
}

// instances groups injected events by (scenario, account) in event-time
// order. Injection avoids busy accounts, so one group is one instance.
func instances(evs []testEvent) map[string][][]testEvent {
	byKey := map[[2]string][]testEvent{}
	for _, e := range evs {
		if e.Scenario != "" {
			k := [2]string{e.Scenario, e.AccountID}
			byKey[k] = append(byKey[k], e)
		}
	}
	out := map[string][][]testEvent{}
	for k, group := range byKey {
		sort.SliceStable(group, func(i, j int) bool { return group[i].time.Before(group[j].time) })
		out[k[0]] = append(out[k[0]], group)
	}
	return out
}

// accountEvents returns every event of account in event-time order (arrival
// order for ties), as the engine would see it.
func accountEvents(evs []testEvent, account string) []testEvent {
	var out []testEvent
	for _, e := range evs {
		if e.AccountID == account {
			out = append(out, e)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].time.Before(out[j].time) })
	return out
}

func TestScenarios(t *testing.T) {
	opts := Options{Seed: 5, Events: 30000, Keys: 5000, Rate: 20, OutOfOrder: 0.05, MaxLateness: 1500 * time.Millisecond, FraudRate: 0.005}
	evs := decode(t, generate(t, opts))
	got := instances(evs)

	checks := map[string]func(t *testing.T, inst []testEvent, all []testEvent){
		ScenarioAccountTakeover: func(t *testing.T, inst, all []testEvent) {
			n := len(inst)
			if n < 5 {
				t.Fatalf("%d events, want ≥ 3 fails + login + transfer", n)
			}
			for _, e := range inst[:n-2] {
				if e.Type != TypeLogin || e.Success {
					t.Errorf("want failed login, got %+v", e)
				}
			}
			login, drain := inst[n-2], inst[n-1]
			if login.Type != TypeLogin || !login.Success || login.IP == inst[0].IP {
				t.Errorf("want successful login from a new IP, got %+v", login)
			}
			if drain.Type != TypeTransfer || drain.Amount <= 1000 {
				t.Errorf("want transfer > 1000, got %+v", drain)
			}
			if d := drain.time.Sub(inst[0].time); d >= 10*time.Minute {
				t.Errorf("takes %v, want < 10m", d)
			}
		},
		ScenarioCardTesting: func(t *testing.T, inst, all []testEvent) {
			if len(inst) < 3 {
				t.Fatalf("%d probes, want ≥ 3", len(inst))
			}
			// Consecutive in the account's own event-time order: nothing
			// may come between the probes.
			acct := accountEvents(all, inst[0].AccountID)
			i := slices.IndexFunc(acct, func(e testEvent) bool { return e.line == inst[0].line })
			for j, p := range inst {
				if acct[i+j].line != p.line {
					t.Fatalf("probe %d is not contiguous: %+v", j, acct[i+j])
				}
				if p.Type != TypeCardAuth || p.Amount >= 2 || p.CardID != inst[0].CardID {
					t.Errorf("want small card_auth on one card, got %+v", p)
				}
			}
		},
		ScenarioImpossibleTravel: func(t *testing.T, inst, all []testEvent) {
			if len(inst) != 2 {
				t.Fatalf("%d events, want 2", len(inst))
			}
			a, b := inst[0], inst[1]
			if a.Type != TypeLogin || b.Type != TypeLogin || !a.Success || !b.Success {
				t.Errorf("want two successful logins: %+v %+v", a, b)
			}
			if d := DistanceKm(a.Lat, a.Lon, b.Lat, b.Lon); d < FarKm {
				t.Errorf("logins %.0f km apart, want ≥ %d", d, FarKm)
			}
			if d := b.time.Sub(a.time); d >= 30*time.Minute {
				t.Errorf("logins %v apart, want < 30m", d)
			}
		},
		ScenarioResetWithout2FA: func(t *testing.T, inst, all []testEvent) {
			reset := inst[0]
			if reset.Type != TypePasswordReset {
				t.Fatalf("want password_reset first, got %+v", reset)
			}
			for _, e := range accountEvents(all, reset.AccountID) {
				if e.Type == Type2FAVerified && !e.time.Before(reset.time) && e.time.Sub(reset.time) < 15*time.Minute {
					t.Errorf("2fa_verified %v after the reset: %+v", e.time.Sub(reset.time), e)
				}
			}
		},
		ScenarioStructuring: func(t *testing.T, inst, all []testEvent) {
			if len(inst) < 3 {
				t.Fatalf("%d transfers, want ≥ 3", len(inst))
			}
			for _, e := range inst {
				if e.Type != TypeTransfer || e.Amount < 9000 || e.Amount >= 10000 {
					t.Errorf("want transfer in 9000..9999, got %+v", e)
				}
			}
			if d := inst[len(inst)-1].time.Sub(inst[0].time); d >= time.Hour {
				t.Errorf("takes %v, want < 1h", d)
			}
		},
		ScenarioBigForeignTransfer: func(t *testing.T, inst, all []testEvent) {
			e := inst[0]
			if len(inst) != 1 || e.Type != TypeTransfer || e.Amount <= 10000 || !slices.Contains(HighRiskCountries, e.Country) {
				t.Errorf("want one transfer > 10000 to a high-risk country, got %+v", inst)
			}
		},
		ScenarioLargeCardAuth: func(t *testing.T, inst, all []testEvent) {
			e := inst[0]
			if len(inst) != 1 || e.Type != TypeCardAuth || e.Amount <= 5000 || !e.Success {
				t.Errorf("want one approved card_auth > 5000, got %+v", inst)
			}
		},
		ScenarioVelocity: func(t *testing.T, inst, all []testEvent) {
			if len(inst) < 5 {
				t.Fatalf("%d transfers, want ≥ 5", len(inst))
			}
			for _, e := range inst {
				if e.Type != TypeTransfer || e.Amount >= 1000 || slices.Contains(HighRiskCountries, e.Country) {
					t.Errorf("want a domestic transfer below 1000, got %+v", e)
				}
			}
			if d := inst[len(inst)-1].time.Sub(inst[0].time); d >= 2*time.Minute {
				t.Errorf("takes %v, want < 2m", d)
			}
		},
		ScenarioCardSpree: func(t *testing.T, inst, all []testEvent) {
			if len(inst) < 5 {
				t.Fatalf("%d authorisations, want ≥ 5", len(inst))
			}
			cards := map[string]bool{}
			for _, e := range accountEvents(all, inst[0].AccountID) {
				if e.Scenario == "" && e.CardID != "" {
					cards[e.CardID] = true // the account's own card
				}
			}
			own := len(cards)
			for _, e := range inst {
				if e.Type != TypeCardAuth || e.Amount < 2 || e.Amount > 5000 {
					t.Errorf("want a card_auth of 2..5000, got %+v", e)
				}
				cards[e.CardID] = true
			}
			if len(cards) != own+len(inst) {
				t.Errorf("%d authorisations on %d cards new to the account, want each on its own", len(inst), len(cards)-own)
			}
			if d := inst[len(inst)-1].time.Sub(inst[0].time); d >= 10*time.Minute {
				t.Errorf("takes %v, want < 10m", d)
			}
		},
	}
	var names []string
	for name := range got {
		names = append(names, name)
	}
	slices.Sort(names)
	if diff := cmp.Diff(slices.Sorted(slices.Values(Scenarios(StreamPayments))), names); diff != "" {
		t.Fatalf("scenarios present (-want +got):\n%s", diff)
	}
	for _, name := range Scenarios(StreamPayments) {
		t.Run(name, func(t *testing.T) {
			if len(got[name]) < 5 {
				t.Errorf("%d instances, want ≥ 5", len(got[name]))
			}
			for _, inst := range got[name] {
				checks[name](t, inst, evs)
			}
		})
	}
}

// TestBackgroundIsQuiet checks the amount bands that keep ordinary traffic
// from looking like a scenario.
func TestBackgroundIsQuiet(t *testing.T) {
	evs := decode(t, generate(t, Options{Seed: 9, Events: 50000, Keys: 5000, Rate: 100, FraudRate: -1}))
	for _, e := range evs {
		if e.Scenario != "" {
			t.Fatalf("line %d: scenario %q with injection disabled", e.line, e.Scenario)
		}
		switch e.Type {
		case TypeCardAuth:
			if e.Amount < 2 || e.Amount > 5000 {
				t.Errorf("line %d: background card_auth of %.2f", e.line, e.Amount)
			}
		case TypeTransfer:
			if e.Amount >= 9000 && e.Amount < 10000 {
				t.Errorf("line %d: background transfer of %.2f in the structuring band", e.line, e.Amount)
			}
			if e.Amount > 10000 && slices.Contains(HighRiskCountries, e.Country) {
				t.Errorf("line %d: background big transfer to %s", e.line, e.Country)
			}
		case TypeLogin:
			if slices.Contains(HighRiskCountries, e.Country) {
				t.Errorf("line %d: background login from %s", e.line, e.Country)
			}
		}
	}
}

func TestScenarioSubset(t *testing.T) {
	opts := Options{Seed: 2, Events: 5000, Keys: 500, FraudRate: 0.01, Scenarios: []string{ScenarioLargeCardAuth}}
	g, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.WriteTo(new(bytes.Buffer)); err != nil {
		t.Fatal(err)
	}
	inj := g.Injected()
	if inj[ScenarioLargeCardAuth] == 0 || len(inj) != 1 {
		t.Errorf("Injected() = %v, want only %s", inj, ScenarioLargeCardAuth)
	}
}

func TestBadOptions(t *testing.T) {
	tests := []struct {
		name string
		opts Options
	}{
		{"negative events", Options{Events: -1}},
		{"too many keys", Options{Keys: 10_000_000}},
		{"negative rate", Options{Rate: -5}},
		{"fraction above 1", Options{OutOfOrder: 1.5}},
		{"negative lateness", Options{MaxLateness: -time.Second}},
		{"fraud rate above 1", Options{FraudRate: 2}},
		{"unknown scenario", Options{Scenarios: []string{"bank_heist"}}},
		{"unknown stream", Options{Stream: "weather"}},
		{"scenario of another stream", Options{Stream: StreamITOps, Scenarios: []string{ScenarioVelocity}}},
		{"negative duration", Options{Duration: -time.Minute}},
		{"itops rate below the periodic traffic", Options{Stream: StreamITOps, Keys: 30, Rate: 2}},
		{"itops events without room for deregisters", Options{Stream: StreamITOps, Keys: 8, Events: 8}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.opts)
			if !errors.Is(err, ErrBadOptions) {
				t.Errorf("New(%+v) = %v, want an error wrapping ErrBadOptions", tt.opts, err)
			}
		})
	}
}
