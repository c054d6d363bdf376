package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// proc is a child process whose output goes to a log file, shown when the
// test fails.
type proc struct {
	t       *testing.T
	name    string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
	err     error // of Wait, once exited is closed
}

// startProc starts name (for messages) as argv with extra environment. At
// cleanup a process still running is stopped with SIGTERM (SIGKILL after
// 20 s); when the test failed, the tail of its log is printed.
func startProc(t *testing.T, name string, env []string, argv ...string) *proc {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), strings.ReplaceAll(name, " ", "-")+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		_ = logf.Close() // nothing was written: the process never started
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{t: t, name: name, cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		// The log serves dumpLog only; a Close error there cannot be
		// reported (the test may be over) and would cost at most its tail.
		_ = logf.Close()
		close(p.exited)
	}()
	t.Cleanup(func() {
		if p.running() {
			// A process the test left running is not under test: its exit
			// status (SIGTERM's, for kcat) says nothing; stop reports a hang.
			_ = p.stop(20 * time.Second)
		}
		if t.Failed() {
			p.dumpLog()
		}
	})
	return p
}

func (p *proc) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM and waits up to timeout for the exit, then kills. It
// returns the exit error (nil for status 0).
func (p *proc) stop(timeout time.Duration) error {
	p.t.Helper()
	if !p.running() {
		return p.err
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return p.err
	case <-time.After(timeout):
		p.t.Errorf("%s did not exit within %v of SIGTERM: killed", p.name, timeout)
		p.kill()
		return p.err
	}
}

// kill sends SIGKILL, as a crash would, and waits for the exit.
func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// log returns what the process wrote so far.
func (p *proc) log() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	return string(b)
}

// dumpLog prints the end of the log into the test output.
func (p *proc) dumpLog() {
	const tail = 12 << 10
	s := p.log()
	if len(s) > tail {
		s = "…" + s[len(s)-tail:]
	}
	p.t.Logf("---- %s (pid %d) log, %s ----\n%s", p.name, p.cmd.Process.Pid, p.logPath, s)
}

// freePort returns a loopback port that was free a moment ago. Another
// process may take it before it is used: rare enough for tests, and the
// failure is clear (address in use).
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// The listener only found a free port; its Close cannot change it.
	defer func() { _ = ln.Close() }()
	return ln.Addr().(*net.TCPAddr).Port
}

// waitFor polls cond every 100 ms until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// serve is a running `shrike serve` process.
type serve struct {
	*proc
	http  string // host:port of /metrics, /readyz
	kafka string // the brokers it uses, embedded or not
}

// serveOptions shape one `shrike serve` process.
type serveOptions struct {
	Rules string // rules directory
	Kafka string // brokers; empty: embedded
	Redis string // addresses; empty: embedded
	Group string // consumer group; empty: the default
	// KeyPrefix is redis.key_prefix; empty: the default.
	KeyPrefix string
	Extra     string // more YAML appended to the config file
	LogName   string // name in messages; default "shrike serve"
	// CheckpointInterval is state.checkpoint_interval; default 200ms, so
	// that tests do not wait long for commits.
	CheckpointInterval time.Duration
}

// startServe starts `shrike serve` with a config file that puts every
// listener (HTTP, gRPC, and the embedded Kafka and Redis when used) on a
// free loopback port.
func startServe(t *testing.T, o serveOptions) *serve {
	t.Helper()
	httpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "rules:\n  dir: %q\n", o.Rules)
	fmt.Fprintf(&cfg, "http:\n  listen: %q\ngrpc:\n  listen: \"127.0.0.1:%d\"\n", httpAddr, freePort(t))
	if o.CheckpointInterval == 0 {
		o.CheckpointInterval = 200 * time.Millisecond
	}
	fmt.Fprintf(&cfg, "state:\n  checkpoint_interval: %s\n", o.CheckpointInterval)
	fmt.Fprintf(&cfg, "kafka:\n")
	kafka := o.Kafka
	if kafka != "" {
		fmt.Fprintf(&cfg, "  brokers: [%s]\n", quoteList(kafka))
	} else {
		port := freePort(t)
		kafka = fmt.Sprintf("127.0.0.1:%d", port)
		fmt.Fprintf(&cfg, "  embedded:\n    port: %d\n", port)
	}
	if o.Group != "" {
		fmt.Fprintf(&cfg, "  group: %q\n", o.Group)
	}
	fmt.Fprintf(&cfg, "redis:\n")
	if o.Redis != "" {
		fmt.Fprintf(&cfg, "  addrs: [%s]\n", quoteList(o.Redis))
	} else {
		fmt.Fprintf(&cfg, "  embedded:\n    port: %d\n", freePort(t))
	}
	if o.KeyPrefix != "" {
		fmt.Fprintf(&cfg, "  key_prefix: %q\n", o.KeyPrefix)
	}
	cfg.WriteString(o.Extra)
	s := startServeConfig(t, o.LogName, cfg.String(), httpAddr)
	s.kafka = kafka
	return s
}

// startServeConfig starts `shrike serve --config` with the given YAML,
// whose http.listen is httpAddr.
func startServeConfig(t *testing.T, name, yaml, httpAddr string) *serve {
	t.Helper()
	if name == "" {
		name = "shrike serve"
	}
	path := filepath.Join(t.TempDir(), "shrike.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startProc(t, name, nil, shrikeBin(t), "serve", "--config", path)
	return &serve{proc: p, http: httpAddr}
}

func quoteList(csv string) string {
	var qs []string
	for _, s := range strings.Split(csv, ",") {
		qs = append(qs, strconv.Quote(s))
	}
	return strings.Join(qs, ", ")
}

// readyz returns /readyz's status code and body; code 0 when the server
// does not answer.
func (s *serve) readyz() (int, string) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + s.http + "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	defer func() { _ = resp.Body.Close() }() // read to the end: a Close error loses nothing
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// waitReady waits for /readyz to answer 200, failing at once when the
// process exits.
func (s *serve) waitReady(t *testing.T, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		code, body := s.readyz()
		if code == http.StatusOK {
			return
		}
		if !s.running() {
			t.Fatalf("%s exited before it was ready: %v", s.name, s.err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after %v: %d %s", s.name, timeout, code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// metrics scrapes /metrics into series (name with labels, as exposed) →
// value.
func (s *serve) metrics(t *testing.T) map[string]float64 {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + s.http + "/metrics")
	if err != nil {
		t.Fatalf("%s: scrape metrics: %v", s.name, err)
	}
	defer func() { _ = resp.Body.Close() }() // read to the end: a Close error loses nothing
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("%s: read metrics: %v", s.name, err)
	}
	return out
}

// metricSum adds up every series of the metric name.
func metricSum(ms map[string]float64, name string) float64 {
	var sum float64
	for series, v := range ms {
		if series == name || strings.HasPrefix(series, name+"{") {
			sum += v
		}
	}
	return sum
}

// exitedCleanly stops the process with SIGTERM and checks it exits 0, as
// `shrike serve` must after a graceful shutdown.
func (s *serve) exitedCleanly(t *testing.T) {
	t.Helper()
	err := s.stop(40 * time.Second)
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		t.Errorf("%s exited with %v after SIGTERM, want status 0", s.name, ee)
	default:
		t.Errorf("%s: %v", s.name, err)
	}
	if log := s.log(); !strings.Contains(log, "shut down cleanly") {
		t.Errorf("%s: no \"shut down cleanly\" in its log", s.name)
	}
}

// copyFile copies src to dst.
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
