//go:build linux

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestHostileSubscribers is the attack on alert subscriptions against
// `shrike serve`: 20,000 alerts stored in the alerts topic (written with
// kcat, as the engine writes them), then 150 REST subscribers at once, all
// replaying from the beginning. The server's RSS must grow by less than
// 500 MiB, the streams beyond api.max_streams must be refused with 429
// naming the limit, and ordinary subscribers, open all along and reading
// as fast as they can, must get every alert of a 5,000-alert burst.
func TestHostileSubscribers(t *testing.T) {
	requireTools(t, "kcat")
	rulesDir, _, _ := shipped(t)
	const (
		stored    = 20_000
		burst     = 5_000
		replayers = 150
		ordinary  = 2
		// maxStreams is the default of api.max_streams.
		maxStreams = 100
		// Each accepted replayer reads this many alerts, then stops
		// reading and holds its stream open, as a stalled client would.
		replayRead = 500
		maxGrowth  = 500 << 20
	)
	s := startServe(t, serveOptions{Rules: rulesDir})
	s.waitReady(t, 60*time.Second)
	start := time.Now()
	produceAlerts(t, s.kafka, 0, stored)
	t.Logf("%d alerts stored in %v", stored, time.Since(start).Round(time.Millisecond))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	beginning := "0:0,1:0,2:0"

	// One replayer first, alone, reads them all: how long catching up
	// takes, and that the feed has read the topic.
	start = time.Now()
	probe := subscribeRESTStream(ctx, t, http.DefaultClient, s.http, beginning)
	if probe.status != http.StatusOK {
		t.Fatalf("first replaying subscriber: %d %s", probe.status, probe.body)
	}
	if n := probe.read(stored, 60*time.Second); n != stored {
		t.Fatalf("first replaying subscriber got %d of %d stored alerts (end: %s)", n, stored, probe.endLine())
	}
	t.Logf("one subscriber replayed %d alerts in %v", stored, time.Since(start).Round(time.Millisecond))
	probe.close()

	pid := s.cmd.Process.Pid
	base := vmRSSOf(t, pid)
	var peak atomic.Int64
	peak.Store(base)
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				if v, err := readVMRSS(pid); err == nil && v > peak.Load() {
					peak.Store(v)
				}
			}
		}
	}()

	// Ordinary subscribers, from now on, reading as fast as they can.
	var ord []*restStream
	for range ordinary {
		o := subscribeRESTStream(ctx, t, http.DefaultClient, s.http, "")
		if o.status != http.StatusOK {
			t.Fatalf("ordinary subscriber: %d %s", o.status, o.body)
		}
		ord = append(ord, o)
	}

	// The attack: every replayer at once.
	start = time.Now()
	streams := make([]*restStream, replayers)
	var wg sync.WaitGroup
	for i := range streams {
		wg.Go(func() { streams[i] = subscribeRESTStream(ctx, t, stalledClient, s.http, beginning) })
	}
	wg.Wait()
	var accepted, refused []*restStream
	for _, st := range streams {
		switch st.status {
		case http.StatusOK:
			accepted = append(accepted, st)
		case http.StatusTooManyRequests:
			refused = append(refused, st)
			if !strings.Contains(st.body, "api.max_streams") || !strings.Contains(st.body, "TOO_MANY_STREAMS") {
				t.Errorf("refused stream's answer does not name the limit: %s", st.body)
			}
		default:
			t.Errorf("replaying subscriber: %d %s", st.status, st.body)
		}
	}
	if len(accepted) != maxStreams-ordinary || len(refused) != replayers-len(accepted) {
		t.Errorf("%d replaying subscribers with %d ordinary ones open: %d accepted, %d refused; want %d accepted (api.max_streams %d), the rest refused",
			replayers, ordinary, len(accepted), len(refused), maxStreams-ordinary, maxStreams)
	}
	for i, st := range accepted {
		wg.Go(func() {
			if n := st.read(replayRead, 60*time.Second); n != replayRead {
				t.Errorf("replaying subscriber %d got %d of the first %d alerts (end: %s)", i, n, replayRead, st.endLine())
			}
		})
	}
	wg.Wait()
	t.Logf("%d replaying subscribers read %d alerts each in %v", len(accepted), replayRead, time.Since(start).Round(time.Millisecond))

	// The burst, while the replayers hold their streams without reading.
	start = time.Now()
	produceAlerts(t, s.kafka, stored, stored+burst)
	for i, o := range ord {
		wg.Go(func() {
			if n := o.read(burst, 60*time.Second); n != burst {
				t.Errorf("ordinary subscriber %d got %d of the %d alerts of the burst (end: %s)", i, n, burst, o.endLine())
			}
		})
	}
	wg.Wait()
	t.Logf("%d ordinary subscribers got the %d-alert burst in %v", ordinary, burst, time.Since(start).Round(time.Millisecond))

	cancel()
	<-sampled
	growth := peak.Load() - base
	t.Logf("server RSS %d MiB before the subscribers, peak %d MiB (+%d MiB)", base>>20, peak.Load()>>20, growth>>20)
	if growth >= maxGrowth {
		t.Errorf("server RSS grew by %d MiB under %d replaying subscribers, want less than %d MiB", growth>>20, replayers, maxGrowth>>20)
	}
	if !s.running() {
		t.Fatalf("shrike serve exited: %v", s.err)
	}
}

// produceAlerts writes alerts from..to-1 to the alerts topic with kcat,
// alert n to partition n%3, as the engine would write them.
func produceAlerts(t *testing.T, broker string, from, to int) {
	t.Helper()
	for p := range 3 {
		var recs []kv
		for n := from; n < to; n++ {
			if n%3 == p {
				recs = append(recs, kv{fmt.Sprintf("acct-%d", n%50), hostileAlertJSON(n)})
			}
		}
		kcatProduce(t, broker, alertsTopic, p, recs)
	}
}

// hostileAlertJSON is alert n in the alert JSON of docs/design.md#alerts.
func hostileAlertJSON(n int) string {
	at := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC).Add(time.Duration(n) * time.Millisecond).Format(time.RFC3339Nano)
	return fmt.Sprintf(`{"id":"hostile-%06d","ruleset":"payments","rule":"big","rule_version":"v1","severity":"high",`+
		`"key":"acct-%d","summary":"alert %d","labels":{"team":"fraud"},"start":%q,"end":%q,"detected_at":%q,"timeout":false,`+
		`"events":{"event":[{"type":"payment","account_id":"acct-%d","amount":%d.5,"ts":%q,"note":"%s"}]}}`,
		n, n%50, n, at, at, at, n%50, n, at, strings.Repeat("x", 200))
}

// stalledClient connects with a small receive buffer, so that a
// subscriber that stops reading stalls its stream at the server after a
// few alerts, as a slow client far away would, rather than after the
// megabytes a loopback socket takes.
var stalledClient = &http.Client{Transport: &http.Transport{
	DialContext: (&net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 64<<10)
		}); err != nil {
			return err
		}
		return serr
	}}).DialContext,
	MaxIdleConnsPerHost: 200,
}}

// restStream is one GET /v1/alerts:subscribe.
type restStream struct {
	status int
	body   string // the answer, when not 200
	resp   *http.Response
	sc     *bufio.Scanner
	last   string // the last line read
}

// subscribeRESTStream subscribes with c; a request that fails has status 0 and
// the error as its body. It may be called from any goroutine.
func subscribeRESTStream(ctx context.Context, t *testing.T, c *http.Client, httpAddr, after string) *restStream {
	u := "http://" + httpAddr + "/v1/alerts:subscribe"
	if after != "" {
		u += "?after=" + after
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return &restStream{body: err.Error()}
	}
	resp, err := c.Do(req)
	if err != nil {
		return &restStream{body: err.Error()}
	}
	st := &restStream{status: resp.StatusCode, resp: resp}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		st.body = string(b)
		_ = resp.Body.Close() // read: a Close error loses nothing
		return st
	}
	t.Cleanup(st.close)
	st.sc = bufio.NewScanner(resp.Body)
	st.sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	return st
}

// read reads up to n alerts, within timeout, and returns how many; a line
// that is not an alert (the stream's error) ends it.
func (s *restStream) read(n int, timeout time.Duration) int {
	timer := time.AfterFunc(timeout, s.close)
	defer timer.Stop()
	got := 0
	for got < n && s.sc.Scan() {
		s.last = s.sc.Text()
		var line struct {
			Result *struct {
				ID string `json:"id"`
			} `json:"result"`
		}
		if json.Unmarshal(s.sc.Bytes(), &line) != nil || line.Result == nil || line.Result.ID == "" {
			return got
		}
		got++
	}
	return got
}

func (s *restStream) endLine() string {
	if s.sc != nil && s.sc.Err() != nil {
		return s.sc.Err().Error()
	}
	return s.last
}

func (s *restStream) close() {
	if s.resp != nil {
		_ = s.resp.Body.Close() // ends the stream; nothing to lose
	}
}

// vmRSSOf is the process's resident set size in bytes.
func vmRSSOf(t *testing.T, pid int) int64 {
	t.Helper()
	v, err := readVMRSS(pid)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func readVMRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no VmRSS", pid)
}
