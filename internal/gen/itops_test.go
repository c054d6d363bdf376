package gen

import (
	"bufio"
	"bytes"
	"encoding/json"
	"maps"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// opsEvent is the decoded form of one itops line.
type opsEvent struct {
	Type     string  `json:"type"`
	Service  string  `json:"service"`
	Host     string  `json:"host"`
	Level    string  `json:"level"`
	Message  string  `json:"message"`
	Version  string  `json:"version"`
	P99      float64 `json:"p99_ms"`
	TS       string  `json:"ts"`
	Scenario string  `json:"scenario"`

	time time.Time
	line int
}

// decodeOps parses every line strictly, like decode, and returns the
// events sorted by event time (arrival order for ties), as the engine
// sees them.
func decodeOps(t *testing.T, data []byte) []opsEvent {
	t.Helper()
	var evs []opsEvent
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		var e opsEvent
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			t.Fatalf("line %d %s: %v", len(evs)+1, sc.Bytes(), err)
		}
		ts, err := time.Parse(TimeLayout, e.TS)
		if err != nil {
			t.Fatalf("line %d: ts: %v", len(evs)+1, err)
		}
		e.time, e.line = ts, len(evs)+1
		evs = append(evs, e)
	}
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].time.Before(evs[j].time) })
	return evs
}

func byService(evs []opsEvent) map[string][]opsEvent {
	m := map[string][]opsEvent{}
	for _, e := range evs {
		m[e.Service] = append(m[e.Service], e)
	}
	return m
}

func TestITOpsShape(t *testing.T) {
	opts := Options{Stream: StreamITOps, Seed: 1, Duration: time.Hour, Keys: 6, Rate: 10}
	evs := decodeOps(t, generate(t, opts))
	svcs := byService(evs)
	var names []string
	for i := range opts.Keys {
		names = append(names, ServiceName(i))
	}
	slices.Sort(names)
	if diff := cmp.Diff(names, slices.Sorted(maps.Keys(svcs))); diff != "" {
		t.Errorf("services (-want +got):\n%s", diff)
	}
	end := evs[len(evs)-1].time
	for name, es := range svcs {
		t.Run(name, func(t *testing.T) {
			// The stream ends with one deregister per service, after all of
			// the service's other events.
			last := es[len(es)-1]
			if last.Type != TypeDeregister || !last.time.Equal(end) {
				t.Errorf("last event %+v, want a deregister at the end %v", last, end)
			}
			var beats []opsEvent
			var lat []float64
			for _, e := range es {
				switch e.Type {
				case TypeHeartbeat:
					beats = append(beats, e)
				case TypeLatency:
					if e.Scenario == "" {
						lat = append(lat, e.P99)
					}
				case TypeLog:
					if !slices.Contains([]string{"info", "warn", "error"}, e.Level) || e.Message == "" {
						t.Errorf("log without level or message: %+v", e)
					}
				}
				if e.Type != TypeDeregister && (e.Host == "" || e.Version == "") {
					t.Errorf("event without host or version: %+v", e)
				}
			}
			// Heartbeats come every 30±1s, except after a labelled one,
			// which a silence of more than five minutes follows.
			for i := 1; i < len(beats); i++ {
				gap := beats[i].time.Sub(beats[i-1].time)
				if beats[i-1].Scenario == ScenarioMissingHeartbeat {
					if gap <= 5*time.Minute || gap > 7*time.Minute+time.Second {
						t.Errorf("gap after a missing heartbeat is %v, want 5..7m", gap)
					}
					continue
				}
				if gap < 29*time.Second || gap > 31*time.Second {
					t.Errorf("heartbeat gap %v at %v, want 30±1s", gap, beats[i].time)
				}
			}
			// About 120 an hour, less the silences of missing heartbeats.
			if n := len(beats); n < 60 || n > 121 {
				t.Errorf("%d heartbeats in an hour, want 60..121", n)
			}
			// Ordinary latency stays within ±10% of one value, so that no
			// steady baseline ever doubles.
			if lo, hi := slices.Min(lat), slices.Max(lat); hi >= lo*1.25 {
				t.Errorf("ordinary p99 ranges over %.1f..%.1f ms, want within ±10%% of one value", lo, hi)
			}
		})
	}
}

// TestITOpsIncidents checks each incident's shape in the stream.
func TestITOpsIncidents(t *testing.T) {
	opts := Options{Stream: StreamITOps, Seed: 2, Duration: 90 * time.Minute, Keys: 10, Rate: 10, IncidentEvery: 45 * time.Second}
	g, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := g.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	evs := decodeOps(t, buf.Bytes())
	svcs := byService(evs)
	inj := g.Injected()
	for _, name := range Scenarios(StreamITOps) {
		if inj[name] < 10 {
			t.Errorf("%d %s incidents in 90m at one every 45s, want ≥ 10", inj[name], name)
		}
	}
	counts := map[string]int{}
	for _, es := range svcs {
		var lastBurst time.Time // the last error_burst event of the service
		var lastRate time.Time  // the last error_rate event of the service
		for i, e := range es {
			rateStart := e.Scenario == ScenarioErrorRate && e.time.Sub(lastRate) >= 5*time.Minute
			if e.Scenario == ScenarioErrorRate {
				lastRate = e.time
			}
			// A burst starts with an error_burst event a while after the
			// previous burst: ordinary events interleave with its events.
			burstStart := e.Scenario == ScenarioErrorBurst && e.time.Sub(lastBurst) >= time.Minute
			if e.Scenario == ScenarioErrorBurst {
				lastBurst = e.time
			}
			switch {
			case e.Scenario == ScenarioMissingHeartbeat && e.Type == TypeHeartbeat:
				counts[e.Scenario]++
				// Nothing comes from the service until the watchdog's
				// restart, more than five minutes later.
				next := es[i+1]
				if next.Scenario != ScenarioMissingHeartbeat || next.Type != TypeLog || next.time.Sub(e.time) <= 5*time.Minute {
					t.Errorf("%s: after the last heartbeat at %v came %+v, want the restart log > 5m later", e.Service, e.time, next)
				}
			case e.Scenario == ScenarioLatencySpikeAfterDeploy && e.Type == TypeDeploy:
				counts[e.Scenario]++
				checkSpike(t, es, i)
			case burstStart:
				counts[e.Scenario]++
				var burst []opsEvent
				for _, b := range es[i:] {
					if b.Scenario == ScenarioErrorBurst {
						burst = append(burst, b)
					} else if b.time.Sub(e.time) > time.Minute {
						break
					}
				}
				if len(burst) < 20 || burst[len(burst)-1].time.Sub(e.time) >= time.Minute {
					t.Errorf("%s: burst of %d errors over %v, want ≥ 20 within a minute", e.Service, len(burst), burst[len(burst)-1].time.Sub(e.time))
				}
				for _, b := range burst {
					if b.Type != TypeLog || b.Level != "error" || b.Message != e.Message || b.Host != e.Host {
						t.Errorf("burst event %+v, want error logs of one message and host", b)
					}
				}
			case rateStart:
				counts[e.Scenario]++
				checkErrorRate(t, es, i)
			}
		}
	}
	if diff := cmp.Diff(inj, counts); diff != "" {
		t.Errorf("incidents found in the stream (-Injected +found):\n%s", diff)
	}
}

// checkSpike checks the latency incident whose deploy is es[i]: five
// ordinary samples before it, and three or four samples 3 to 5 times the
// usual p99 one to four minutes after it.
func checkSpike(t *testing.T, es []opsEvent, i int) {
	t.Helper()
	deploy := es[i]
	var before, spike []float64
	for _, e := range es[:i] {
		if e.Type == TypeLatency && e.Scenario == "" {
			before = append(before, e.P99)
		}
	}
	for _, e := range es[i+1:] {
		if e.Type == TypeLatency && e.Scenario == ScenarioLatencySpikeAfterDeploy {
			spike = append(spike, e.P99)
			if d := e.time.Sub(deploy.time); d < time.Minute || d > 5*time.Minute {
				t.Errorf("%s: spike sample %v after the deploy, want 1..5m", deploy.Service, d)
			}
		}
		if e.Type == TypeDeploy {
			break
		}
	}
	if len(before) < 5 {
		t.Fatalf("%s: %d samples before the deploy at %v, want ≥ 5", deploy.Service, len(before), deploy.time)
	}
	base := before[len(before)-1]
	if len(spike) < 3 || len(spike) > 4 {
		t.Errorf("%s: %d spike samples, want 3 or 4", deploy.Service, len(spike))
	}
	for _, p := range spike {
		if p < 2.5*base || p > 6*base {
			t.Errorf("%s: spike p99 %.1f against a usual %.1f, want 3..5×", deploy.Service, p, base)
		}
	}
}

// TestITOpsQuiet checks that ordinary traffic never looks like an
// incident: no error burst, no missing heartbeat, no spike.
func TestITOpsQuiet(t *testing.T) {
	opts := Options{Stream: StreamITOps, Seed: 4, Duration: time.Hour, Keys: 3, Rate: 15, FraudRate: -1}
	evs := decodeOps(t, generate(t, opts))
	deploys := 0
	for name, es := range byService(evs) {
		var errs []time.Time
		var lastBeat time.Time
		for _, e := range es {
			if e.Scenario != "" {
				t.Fatalf("%s: injected %+v with injection off", name, e)
			}
			switch {
			case e.Type == TypeLog && e.Level == "error":
				errs = append(errs, e.time)
				if n := len(errs); n >= 10 && e.time.Sub(errs[n-10]) < time.Minute {
					t.Errorf("%s: 10 errors within a minute at %v", name, e.time)
				}
			case e.Type == TypeHeartbeat:
				if !lastBeat.IsZero() && e.time.Sub(lastBeat) > time.Minute {
					t.Errorf("%s: heartbeat gap of %v at %v", name, e.time.Sub(lastBeat), e.time)
				}
				lastBeat = e.time
			case e.Type == TypeDeploy:
				deploys++
			}
		}
	}
	if deploys == 0 {
		t.Error("no ordinary deploy in an hour of 3 services, want a few")
	}
}

// checkErrorRate checks the error rate incident that starts at es[i]: 60
// to 64 errors of one message within five minutes, more than 5% of the
// service's logs then, and never 20 errors of the service within a
// minute.
func checkErrorRate(t *testing.T, es []opsEvent, i int) {
	t.Helper()
	first := es[i]
	var errs []time.Time
	incident, logs := 0, 0
	for _, e := range es[i:] {
		if e.time.Sub(first.time) >= 5*time.Minute {
			break
		}
		if e.Type != TypeLog {
			continue
		}
		logs++
		if e.Level != "error" {
			continue
		}
		errs = append(errs, e.time)
		if n := len(errs); n >= 20 && e.time.Sub(errs[n-20]) < time.Minute {
			t.Errorf("%s: 20 errors within a minute at %v, an error burst", first.Service, e.time)
		}
		if e.Scenario == ScenarioErrorRate {
			incident++
			if e.Message != first.Message {
				t.Errorf("error rate event %+v, want the message %q", e, first.Message)
			}
		}
	}
	if incident < 60 || incident > 64 {
		t.Errorf("%s: %d errors of the incident within five minutes, want 60..64", first.Service, incident)
	}
	if share := float64(len(errs)) / float64(logs); share <= 0.05 {
		t.Errorf("%s: errors are %.1f%% of the logs, want more than 5%%", first.Service, 100*share)
	}
}
