package bench

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// BenchmarkCommandVsFloor measures BENCHMARKS.md's run target as stated: the wall
// time of the `shrike run` command over the stream, a process of its own
// started from the built binary (startup, ruleset compilation and writing
// the alerts included), against the floor decoded in this process right
// before and after it. The in-process benchmarks share one heap across
// passes (memory a pass frees, the next one reuses and must zero); a
// command starts on an empty one, as users run it.
func BenchmarkCommandVsFloor(b *testing.B) {
	path, lines := benchStream(b)
	bin := shrikeBinary(b)
	rules := filepath.Join("..", "..", "rulesets", "payments.yaml")
	var command, floor time.Duration
	var ratios []float64
	var maxRSS int64
	var alerts int
	for b.Loop() {
		c, f := pairWithFloor(b, path, lines, func() {
			var out lineCounter
			var stderr bytes.Buffer
			cmd := exec.Command(bin, "run", "--quiet", "--rules", rules, path)
			cmd.Stdout, cmd.Stderr = &out, &stderr
			rss, err := runPeakRSS(b, cmd)
			if err != nil {
				b.Fatalf("shrike run: %v\n%s", err, stderr.Bytes())
			}
			alerts = out.lines
			maxRSS = max(maxRSS, rss)
		})
		command += c
		floor += f
		ratios = append(ratios, float64(c)/float64(f))
	}
	if alerts == 0 {
		b.Fatalf("shrike run wrote no alerts")
	}
	slices.Sort(ratios)
	b.ReportMetric(float64(command.Nanoseconds())/float64(b.N)/float64(lines), "command-ns/event")
	b.ReportMetric(float64(floor.Nanoseconds())/float64(b.N)/float64(lines), "floor-ns/event")
	b.ReportMetric(ratios[len(ratios)/2], "command/floor")
	b.ReportMetric(float64(maxRSS)/1024, "peak-rss-MiB")
	b.ReportMetric(float64(alerts), "alerts")
}

var (
	binaryOnce sync.Once
	binaryDir  string // removed by TestMain
	binaryPath string
	binaryErr  error
)

// shrikeBinary builds cmd/shrike once per process into a temporary
// directory with the go command on PATH. SHRIKE_BENCH_LDFLAGS is passed to
// the linker: run.sh links each round's command with the function layout
// it links the round's benchmarks with.
func shrikeBinary(b *testing.B) string {
	b.Helper()
	binaryOnce.Do(func() {
		binaryDir, binaryErr = os.MkdirTemp("", "shrike-bench-bin-")
		if binaryErr != nil {
			return
		}
		binaryPath = filepath.Join(binaryDir, "shrike")
		cmd := exec.Command("go", "build", "-ldflags="+os.Getenv("SHRIKE_BENCH_LDFLAGS"), "-o", binaryPath, "github.com/shrike-cep/shrike/cmd/shrike")
		if out, err := cmd.CombinedOutput(); err != nil {
			binaryErr = &buildError{err: err, out: out}
		}
	})
	if binaryErr != nil {
		b.Fatalf("build shrike: %v", binaryErr)
	}
	return binaryPath
}

type buildError struct {
	err error
	out []byte
}

func (e *buildError) Error() string { return e.err.Error() + "\n" + string(e.out) }
