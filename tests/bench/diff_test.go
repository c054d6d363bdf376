package bench

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shrike-cep/shrike/cep"
	"github.com/shrike-cep/shrike/cep/diff"
	"github.com/shrike-cep/shrike/internal/alertdiff"
	"github.com/shrike-cep/shrike/internal/gctune"
	"github.com/shrike-cep/shrike/matcher"
	"github.com/shrike-cep/shrike/rules"
)

// BenchmarkReplayDiff compares two versions of rulesets/payments.yaml (the
// second with a higher threshold in large-card-auth) over the stream, the
// two ways there are: "two-runs" replays the stream once per version, as
// two `shrike run`s would, and feeds both sides' alerts to the same
// comparison; "diff" is cep/diff.Run, `shrike diff`: one replay, the new
// version as a shadow stream beside the old. The difference is what the
// one pass saves: reading and decoding every line once instead of twice.
func BenchmarkReplayDiff(b *testing.B) {
	defer gctune.ForReplay()()
	path, lines := benchStream(b)
	old := paymentsRuleset(b)
	candidate := higherThresholdRuleset(b)
	b.Run("two-runs", func(b *testing.B) {
		var d *alertdiff.Diff
		pe := startPerEvent()
		for b.Loop() {
			d = alertdiff.NewDiff(alertdiff.Options{})
			for _, side := range []struct {
				side alertdiff.Side
				rs   *rules.Compiled
			}{{alertdiff.Old, old}, {alertdiff.New, candidate}} {
				sum, err := cep.Replay(context.Background(), cep.ReplayOptions{
					Rulesets: []*rules.Compiled{side.rs},
					Inputs:   []cep.Input{{Name: path}},
					Clock:    fixedClock,
					OnAlert:  func(a *matcher.Alert) { d.Add(side.side, a) },
				})
				if err != nil {
					b.Fatal(err)
				}
				if sum.Events != uint64(lines) {
					b.Fatalf("replay took %d of %d events", sum.Events, lines)
				}
			}
		}
		pe.report(b, lines)
		reportDiff(b, d.Rules())
	})
	b.Run("diff", func(b *testing.B) {
		var res *diff.Result
		pe := startPerEvent()
		for b.Loop() {
			var err error
			res, err = diff.Run(context.Background(), diff.Options{
				Old:    []*rules.Compiled{old},
				New:    []*rules.Compiled{candidate},
				Inputs: []cep.Input{{Name: path}},
				Clock:  fixedClock,
			})
			if err != nil {
				b.Fatal(err)
			}
			if res.Summary.Events != uint64(lines) {
				b.Fatalf("diff took %d of %d events", res.Summary.Events, lines)
			}
		}
		pe.report(b, lines)
		reportDiff(b, res.Rules)
	})
}

// reportDiff reports the alerts compared, so that both ways can be seen
// to have found the same.
func reportDiff(b *testing.B, rs []alertdiff.Rule) {
	var both, onlyOld, onlyNew int
	for _, r := range rs {
		both += r.Both
		onlyOld += r.OnlyOld
		onlyNew += r.OnlyNew
	}
	if onlyOld == 0 || onlyNew != 0 {
		b.Fatalf("the higher threshold should only remove alerts: %d only old, %d only new", onlyOld, onlyNew)
	}
	b.ReportMetric(float64(both), "alerts-both")
	b.ReportMetric(float64(onlyOld), "alerts-only-old")
}

// higherThresholdRuleset is rulesets/payments.yaml with large-card-auth
// wanting more than 20,000 instead of 5,000.
func higherThresholdRuleset(tb testing.TB) *rules.Compiled {
	tb.Helper()
	path := filepath.Join("..", "..", "rulesets", "payments.yaml")
	src, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	edited := strings.Replace(string(src), "event.amount > 5000.0", "event.amount > 20000.0", 1)
	if edited == string(src) {
		tb.Fatal("payments.yaml has no threshold of 5000.0 to raise")
	}
	rs, err := rules.Load("payments-new.yaml", []byte(edited), rules.CompileOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	return rs
}
