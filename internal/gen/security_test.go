package gen

import (
	"bufio"
	"bytes"
	"encoding/json"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// secEvent is the decoded form of one account_security line.
type secEvent struct {
	Type     string `json:"type"`
	UserID   string `json:"user_id"`
	IP       string `json:"ip"`
	Device   string `json:"device"`
	Country  string `json:"country"`
	Success  bool   `json:"success"`
	TS       string `json:"ts"`
	Scenario string `json:"scenario"`

	time time.Time
	line int
}

// decodeSecurity parses every line strictly and returns each user's events
// in event-time order (arrival order for ties), as the engine sees them.
func decodeSecurity(t *testing.T, data []byte) map[string][]secEvent {
	t.Helper()
	users := map[string][]secEvent{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	line := 0
	for sc.Scan() {
		line++
		var e secEvent
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			t.Fatalf("line %d %s: %v", line, sc.Bytes(), err)
		}
		ts, err := time.Parse(TimeLayout, e.TS)
		if err != nil {
			t.Fatalf("line %d: ts: %v", line, err)
		}
		if e.UserID == "" || e.IP == "" || e.Device == "" || e.Country == "" {
			t.Fatalf("line %d: empty field: %+v", line, e)
		}
		e.time, e.line = ts, line
		users[e.UserID] = append(users[e.UserID], e)
	}
	for _, es := range users {
		sort.SliceStable(es, func(i, j int) bool { return es[i].time.Before(es[j].time) })
	}
	return users
}

// securityFindings looks for what each account_security rule matches, in
// plain Go, and counts it per pattern: the generator's tests must not
// depend on the engine they feed.
func securityFindings(users map[string][]secEvent) map[string]int {
	found := map[string]int{}
	for _, es := range users {
		for i, e := range es {
			switch e.Type {
			case TypePasswordReset:
				confirmed := slices.ContainsFunc(es[i+1:], func(v secEvent) bool {
					return v.Type == Type2FAVerified && v.time.Sub(e.time) < 15*time.Minute
				})
				if !confirmed {
					found[ScenarioResetWithout2FA]++
				}
			case TypeDeviceAdded:
				if slices.ContainsFunc(es[i+1:], func(c secEvent) bool {
					return c.Type == TypeEmailChanged && c.Device == e.Device && c.time.Sub(e.time) < time.Hour
				}) {
					found[ScenarioNewDeviceThenEmailChange]++
				}
			case TypeMFAPush:
				// Five denials in a row (other events between them allowed)
				// ending in an approval within 10 minutes of the first.
				if e.Success || (i > 0 && slices.ContainsFunc(es[:i], func(p secEvent) bool {
					return p.Type == TypeMFAPush && !p.Success && e.time.Sub(p.time) < 10*time.Minute
				})) {
					continue
				}
				denials := 0
				for _, p := range es[i:] {
					if p.time.Sub(e.time) >= 10*time.Minute || p.Type != TypeMFAPush {
						continue
					}
					if !p.Success {
						denials++
						continue
					}
					if denials >= 5 {
						found[ScenarioMFAFatigue]++
					}
					break
				}
			}
		}
	}
	return found
}

func TestSecurityScenarios(t *testing.T) {
	opts := Options{Stream: StreamAccountSecurity, Seed: 5, Events: 30000, Keys: 3000, Rate: 10, OutOfOrder: 0.05, FraudRate: 0.005}
	g, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := g.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	users := decodeSecurity(t, buf.Bytes())
	inj := g.Injected()
	for _, name := range Scenarios(StreamAccountSecurity) {
		if inj[name] < 10 {
			t.Errorf("%d %s instances, want ≥ 10", inj[name], name)
		}
	}
	// Every instance is found where it was injected, and nothing else.
	if diff := cmp.Diff(inj, securityFindings(users)); diff != "" {
		t.Errorf("patterns found (-Injected +found):\n%s", diff)
	}
	for user, es := range users {
		var usual []string
		for _, e := range es {
			if e.Scenario == "" {
				usual = append(usual, e.Device)
			}
		}
		for _, e := range es {
			if e.Scenario != "" && slices.Contains(usual, e.Device) {
				t.Errorf("%s: %s event from the user's own device %s: %+v", user, e.Scenario, e.Device, e)
			}
		}
	}
}

// TestSecurityBackgroundIsQuiet checks that ordinary traffic matches no
// account_security rule, even with busy users.
func TestSecurityBackgroundIsQuiet(t *testing.T) {
	opts := Options{Stream: StreamAccountSecurity, Seed: 9, Events: 50000, Keys: 500, Rate: 20, FraudRate: -1}
	users := decodeSecurity(t, generate(t, opts))
	types := map[string]int{}
	for _, es := range users {
		for _, e := range es {
			types[e.Type]++
		}
	}
	for _, typ := range []string{TypeLogin, TypeLogout, TypeMFAPush, Type2FAVerified, TypePasswordReset, TypeDeviceAdded, TypeEmailChanged} {
		if types[typ] == 0 {
			t.Errorf("no %s events", typ)
		}
	}
	if found := securityFindings(users); len(found) != 0 {
		t.Errorf("ordinary traffic matches: %v", found)
	}
}
