package cep

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shrike-cep/shrike/matcher"
	"github.com/shrike-cep/shrike/rules"
)

// TestReplayReusedAlerts replays the example rulesets' recordings twice:
// without OnAlert, when the replay builds every alert in one reused buffer
// (matcher.Options.ReuseAlerts), poisoned once written in these tests, and
// with OnAlert, which keeps every alert apart. The JSON written is the
// same, byte for byte, and so are the counters.
func TestReplayReusedAlerts(t *testing.T) {
	for _, name := range []string{"payments", "account_security", "itops"} {
		t.Run(name, func(t *testing.T) {
			rs := loadFile(t, "../rulesets/"+name+".yaml")
			replay := func(onAlert func(*matcher.Alert)) (string, Summary) {
				var out bytes.Buffer
				sum, err := Replay(context.Background(), ReplayOptions{
					Rulesets: []*rules.Compiled{rs},
					Inputs:   []Input{{Name: "../rulesets/testdata/" + name + ".jsonl"}},
					Alerts:   &out,
					Clock:    func() time.Time { return time.Unix(1764547200, 0) },
					OnAlert:  onAlert,
				})
				if err != nil {
					t.Fatal(err)
				}
				sum.Elapsed = 0
				return out.String(), sum
			}
			reused, reusedSum := replay(nil)
			kept := 0
			apart, apartSum := replay(func(*matcher.Alert) { kept++ })
			if kept == 0 {
				t.Fatalf("no alert: the recording should give some")
			}
			if reused != apart {
				t.Errorf("alerts built in a reused buffer differ from alerts kept apart:\n%s\nagainst\n%s", reused, apart)
			}
			if diff := cmp.Diff(apartSum, reusedSum); diff != "" {
				t.Errorf("summary with alerts reused (-apart +reused):\n%s", diff)
			}
		})
	}
}
