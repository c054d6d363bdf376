package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kgo"
)

// hotRuleset is upload v of the hot-reload test's ruleset. Every rule's
// summary names v, so that every upload changes every rule's version (a
// hash of what decides its matches and alerts), and big's threshold moves
// with v, so that each version behaves differently.
func hotRuleset(v int) string {
	return fmt.Sprintf(`ruleset: hot
description: hot reload under load, upload %[1]d
stream:
  topic: hot
  key: event.k
  time: event.ts
  max_out_of_orderness: 1s
  idle_timeout: 1s
rules:
  - id: every
    severity: info
    when: event.type == "tick"
    alert:
      summary: '"v%[1]d " + event.n'
  - id: big
    severity: high
    when: event.type == "tick" && event.amount > %[2]d.0
    alert:
      summary: '"v%[1]d big " + event.n'
  - id: pair
    severity: medium
    within: 1m
    pattern:
      - step: open
        where: event.type == "open"
      - step: close
        where: event.type == "close"
    alert:
      summary: '"v%[1]d pair " + open.k'
`, v, 150*v)
}

// hotTick is one tick event of the load, as produced.
type hotTick struct {
	n       int
	key     string
	created time.Time // before it was produced
	line    string
}

// hotLoad produces ticks to the topic hot, hotLoadBatch every 10 ms over
// hotKeys keys, from one goroutine, with event times from the wall clock
// at creation: per partition, event time never goes back, so that no
// event is late (unless it took over a second, the ruleset's
// max_out_of_orderness, to reach a partition gone idle). Other events
// (open, close) are injected into the same sequence for the same reason.
// Under the load an event is matched once an event a second newer arrived
// in its partition.
type hotLoad struct {
	t      *testing.T
	cl     *kgo.Client
	inject chan injected
	stop   chan struct{}
	done   chan struct{}

	mu    sync.Mutex
	ticks []hotTick
	err   error
}

const (
	hotKeys      = 24
	hotLoadBatch = 2 // per 10 ms: 200 ticks/s
)

// injected is an event for the load to produce next: typ is "tick", "open"
// or "close".
type injected struct {
	typ, key string
	produced chan int // the tick's n, for a tick; closed once produced
}

func startHotLoad(t *testing.T, broker string) *hotLoad {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.DefaultProduceTopic("hot"))
	if err != nil {
		t.Fatal(err)
	}
	l := &hotLoad{t: t, cl: cl, inject: make(chan injected), stop: make(chan struct{}), done: make(chan struct{})}
	go l.run()
	t.Cleanup(func() {
		l.halt()
		cl.Close()
	})
	return l
}

func (l *hotLoad) run() {
	defer close(l.done)
	n := 0
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	event := func(typ, key string) (*kgo.Record, hotTick) {
		now := time.Now().UTC()
		var line string
		if typ == "tick" {
			n++
			line = fmt.Sprintf(`{"type":"tick","k":%q,"n":"%06d","amount":%d.0,"ts":%q}`, key, n, (n*37)%1000, now.Format(time.RFC3339Nano))
		} else {
			line = fmt.Sprintf(`{"type":%q,"k":%q,"ts":%q}`, typ, key, now.Format(time.RFC3339Nano))
		}
		return &kgo.Record{Key: []byte(key), Value: []byte(line)}, hotTick{n: n, key: key, created: now, line: line}
	}
	for {
		var recs []*kgo.Record
		var ticks []hotTick
		var notify []injected
		select {
		case <-l.stop:
			return
		case in := <-l.inject:
			r, tk := event(in.typ, in.key)
			recs = append(recs, r)
			if in.typ == "tick" {
				ticks = append(ticks, tk)
			}
			notify = append(notify, in)
		case <-tick.C:
			for range hotLoadBatch {
				r, tk := event("tick", fmt.Sprintf("k%02d", (n+1)%hotKeys))
				recs = append(recs, r)
				ticks = append(ticks, tk)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := l.cl.ProduceSync(ctx, recs...).FirstErr()
		cancel()
		l.mu.Lock()
		l.ticks = append(l.ticks, ticks...)
		if err != nil && l.err == nil {
			l.err = err
		}
		l.mu.Unlock()
		for _, in := range notify {
			if in.typ == "tick" {
				in.produced <- n
			}
			close(in.produced)
		}
		if err != nil {
			return
		}
	}
}

// send produces one event of type typ for key now and returns the tick's
// n (0 for other types).
func (l *hotLoad) send(typ, key string) int {
	l.t.Helper()
	in := injected{typ: typ, key: key, produced: make(chan int, 1)}
	select {
	case l.inject <- in:
	case <-l.done:
		l.t.Fatalf("the load stopped: %v", l.error())
	}
	return <-in.produced
}

func (l *hotLoad) halt() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	<-l.done
}

func (l *hotLoad) error() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

func (l *hotLoad) produced() []hotTick {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.ticks)
}

// hotSeen follows the REST alert stream of the hot ruleset: for each tick
// n, the uploads whose every rule alerted it, as the summaries say.
type hotSeen struct {
	mu      sync.Mutex
	every   map[int][]int // tick n → uploads
	firstAt map[int]time.Time
	err     error // the first line that did not decode
}

func followHot(s *jsonStream) *hotSeen {
	h := &hotSeen{every: map[int][]int{}, firstAt: map[int]time.Time{}}
	go func() {
		for v := range s.values {
			var line struct {
				Result struct {
					Rule    string `json:"rule"`
					Summary string `json:"summary"`
				} `json:"result"`
			}
			err := json.Unmarshal(v, &line)
			h.mu.Lock()
			if err == nil && line.Result.Rule == "every" {
				var upload, n int
				if _, err = fmt.Sscanf(line.Result.Summary, "v%d %d", &upload, &n); err == nil {
					h.every[n] = append(h.every[n], upload)
					if _, ok := h.firstAt[upload]; !ok {
						h.firstAt[upload] = time.Now()
					}
				}
			}
			if err != nil && h.err == nil {
				h.err = fmt.Errorf("stream line %s: %w", v, err)
			}
			h.mu.Unlock()
		}
	}()
	return h
}

// uploadSeen returns when the first every alert of upload arrived.
func (h *hotSeen) uploadSeen(upload int) (time.Time, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	at, ok := h.firstAt[upload]
	return at, ok
}

// tickUploads returns the uploads that alerted tick n so far.
func (h *hotSeen) tickUploads(n int) []int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.every[n])
}

// hotAlert is an alert of the hot ruleset from the alerts topic.
type hotAlert struct {
	ID          string `json:"id"`
	Rule        string `json:"rule"`
	RuleVersion string `json:"rule_version"`
	Key         string `json:"key"`
	Summary     string `json:"summary"`
	raw         string
	upload      int // by rule_version
}

// TestHotReloadUnderLoad replaces a ruleset through the API four times
// (with a broken upload among them) while 200 events per second flow, and
// checks, on everything the alerts topic received:
//   - every alert's rule_version is the version of a rule that was live
//     (an upload that succeeded), and its summary names that upload;
//   - no id twice;
//   - every tick event is matched exactly once by the rule every, which
//     all uploads have: no event skipped, none matched twice;
//   - per key, the uploads that matched its ticks never go back;
//   - each tick created a second or more after an upload returned is
//     matched by that upload or a later one: the new version takes over
//     within a second;
//   - ticks created after the broken upload are still matched, by the
//     version before it;
//   - a sequence (open, then close) opened under one version and closed
//     after the next took over completes under the version it began in,
//     once, and not under the new one;
//   - for each upload, its alerts of the single-event rules are exactly
//     what `shrike run` with that upload's ruleset gives for the ticks it
//     matched.
func TestHotReloadUnderLoad(t *testing.T) {
	requireAPIClients(t)
	requireTools(t, "kcat")
	s := startAPIServe(t, apiServeOptions{})

	const uploads = 5
	const broken = 3                 // a broken upload follows this one
	ruleVersions := map[string]int{} // rule_version → upload
	putStart, putDone := map[int]time.Time{}, map[int]time.Time{}
	put := func(upload int) {
		t.Helper()
		putStart[upload] = time.Now()
		r := s.putRuleset(t, "", "hot", hotRuleset(upload))
		putDone[upload] = time.Now()
		if r.code != http.StatusOK {
			t.Fatalf("PUT upload %d = %d %s", upload, r.code, r.body)
		}
		var rs struct {
			Version string `json:"version"`
			Rules   []struct {
				ID, Version string
			} `json:"rules"`
		}
		if err := json.Unmarshal([]byte(r.body), &rs); err != nil || len(rs.Rules) != 3 {
			t.Fatalf("PUT upload %d: %v\n%s", upload, err, r.body)
		}
		if want := strconv.Itoa(upload); rs.Version != want {
			t.Errorf("PUT upload %d stored version %s, want %s", upload, rs.Version, want)
		}
		for _, rule := range rs.Rules {
			if prev, dup := ruleVersions[rule.Version]; dup {
				t.Fatalf("rule %s has version %s in uploads %d and %d: the test needs every upload to change every rule", rule.ID, rule.Version, prev, upload)
			}
			ruleVersions[rule.Version] = upload
		}
	}

	put(1)
	stream := startJSONStream(t, "curl -N hot", nil, "curl", "-sS", "-N", s.url("/v1/alerts:subscribe?ruleset=hot&rule=every"))
	seen := followHot(stream)
	load := startHotLoad(t, s.kafka)
	waitFor(t, 30*time.Second, "the first alerts of upload 1", func() bool {
		_, ok := seen.uploadSeen(1)
		return ok
	})

	var brokenDone time.Time
	for upload := 1; upload <= uploads; upload++ {
		if upload > 1 {
			waitFor(t, 10*time.Second, fmt.Sprintf("the first alerts of upload %d", upload), func() bool {
				_, ok := seen.uploadSeen(upload)
				return ok
			})
			at, _ := seen.uploadSeen(upload)
			t.Logf("upload %d: its first alert arrived %v after the PUT returned", upload, at.Sub(putDone[upload]).Round(time.Millisecond))
			// The sequence opened under the previous upload ends now,
			// under this one.
			load.send("close", fmt.Sprintf("pair-v%d", upload-1))
		}
		if upload < uploads {
			// Open a sequence, then make sure this upload took it: a tick
			// of the same key after it, in the same partition, matched
			// by this upload.
			key := fmt.Sprintf("pair-v%d", upload)
			load.send("open", key)
			n := load.send("tick", key)
			waitFor(t, 10*time.Second, "the tick after the open", func() bool { return len(seen.tickUploads(n)) > 0 })
			if got := seen.tickUploads(n); !slices.Equal(got, []int{upload}) {
				t.Fatalf("the tick after the open of %s was matched by uploads %v, want %d", key, got, upload)
			}
		}
		time.Sleep(1500 * time.Millisecond)
		if upload == broken {
			r := s.putRuleset(t, "", "hot", strings.Replace(hotRuleset(99), "event.amount > ", "event.amount >> ", 1))
			brokenDone = time.Now()
			if r.code != http.StatusBadRequest || !strings.Contains(r.body, `rule \"big\": Syntax error`) {
				t.Fatalf("PUT of a broken upload = %d %s, want 400 with the syntax error", r.code, r.body)
			}
			if v, _ := s.rulesetVersion(t, "", "hot"); v != broken {
				t.Errorf("after the broken upload the ruleset is at version %d, want %d", v, broken)
			}
			time.Sleep(3 * time.Second)
		}
		if upload < uploads {
			put(upload + 1)
		}
	}
	time.Sleep(time.Second)
	load.halt()
	if err := load.error(); err != nil {
		t.Fatalf("producing the load: %v", err)
	}
	seen.mu.Lock()
	if seen.err != nil {
		t.Errorf("REST alert stream: %v", seen.err)
	}
	seen.mu.Unlock()
	ticks := load.produced()
	t.Logf("%d ticks produced", len(ticks))

	// Everything the engine emitted, from the alerts topic: the last
	// ticks are matched once their partitions' idle timeout passed.
	var alerts []hotAlert
	waitFor(t, 60*time.Second, "an every alert for each tick", func() bool {
		alerts = hotAlerts(t, s.kafka)
		every := 0
		for _, a := range alerts {
			if a.Rule == "every" {
				every++
			}
		}
		return every >= len(ticks)
	})

	ids := map[string]bool{}
	everyOf := map[int][]int{} // tick n → uploads
	pairs := map[string][]int{}
	byUpload := map[int][]string{} // upload → canonical every and big alerts
	for i := range alerts {
		a := &alerts[i]
		if ids[a.ID] {
			t.Errorf("alert id %s twice", a.ID)
		}
		ids[a.ID] = true
		upload, ok := ruleVersions[a.RuleVersion]
		if !ok {
			t.Errorf("alert of rule_version %s, which no successful upload had: %s", a.RuleVersion, a.raw)
			continue
		}
		a.upload = upload
		if !strings.HasPrefix(a.Summary, fmt.Sprintf("v%d ", upload)) {
			t.Errorf("alert of upload %d's rule_version says %q", upload, a.Summary)
		}
		switch a.Rule {
		case "every":
			var n int
			if _, err := fmt.Sscanf(a.Summary[strings.IndexByte(a.Summary, ' ')+1:], "%d", &n); err != nil {
				t.Errorf("alert of rule every says %q: no event number after the version: %v", a.Summary, err)
			}
			everyOf[n] = append(everyOf[n], upload)
		case "pair":
			pairs[a.Key] = append(pairs[a.Key], upload)
		}
		if a.Rule != "pair" {
			c, _ := canonAlert(t, []byte(a.raw))
			byUpload[upload] = append(byUpload[upload], c)
		}
	}

	lastUpload := map[string]int{}
	eventsOf := map[int][]string{}
	var afterBroken []int
	for _, tk := range ticks {
		got := everyOf[tk.n]
		if len(got) != 1 {
			t.Errorf("tick %d (key %s) matched by the rule every of uploads %v, want exactly one", tk.n, tk.key, got)
			continue
		}
		upload := got[0]
		eventsOf[upload] = append(eventsOf[upload], tk.line)
		if upload < lastUpload[tk.key] {
			t.Errorf("tick %d of key %s matched by upload %d after an earlier tick of the key was matched by upload %d", tk.n, tk.key, upload, lastUpload[tk.key])
		}
		lastUpload[tk.key] = upload
		for u := uploads; u > upload; u-- {
			if tk.created.After(putDone[u].Add(time.Second)) {
				t.Errorf("tick %d created %v after upload %d returned was matched by upload %d", tk.n, tk.created.Sub(putDone[u]).Round(time.Millisecond), u, upload)
				break
			}
		}
		// Ticks made after the broken upload and matched (a second
		// later, max_out_of_orderness) before the next upload began.
		if tk.created.After(brokenDone) && tk.created.Before(putStart[broken+1].Add(-2*time.Second)) {
			afterBroken = append(afterBroken, upload)
		}
	}
	if len(afterBroken) == 0 {
		t.Errorf("no tick created between the broken upload and the next one")
	} else if slices.Max(afterBroken) != broken || slices.Min(afterBroken) != broken {
		t.Errorf("ticks created after the broken upload were matched by uploads %d to %d, want %d", slices.Min(afterBroken), slices.Max(afterBroken), broken)
	}
	for upload := 1; upload < uploads; upload++ {
		key := fmt.Sprintf("pair-v%d", upload)
		if got := pairs[key]; !slices.Equal(got, []int{upload}) {
			t.Errorf("the sequence %s, opened under upload %d and closed under %d, completed under uploads %v, want once under %d", key, upload, upload+1, got, upload)
		}
	}
	if t.Failed() {
		return
	}

	// Per upload, what `shrike run` gives for the ticks it matched.
	dir := t.TempDir()
	for upload := 1; upload <= uploads; upload++ {
		rs := filepath.Join(dir, fmt.Sprintf("hot-%d.yaml", upload))
		if err := os.WriteFile(rs, []byte(hotRuleset(upload)), 0o644); err != nil {
			t.Fatal(err)
		}
		want := runAlerts(t, rs, eventsOf[upload])
		got := byUpload[upload]
		sort.Strings(got)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("upload %d: alerts of serve against shrike run's over the %d ticks it matched (-run +serve):\n%s", upload, len(eventsOf[upload]), shortDiff(diff))
		}
		t.Logf("upload %d: %d ticks, %d alerts as shrike run's", upload, len(eventsOf[upload]), len(got))
	}
}

// hotAlerts reads the hot ruleset's alerts from the alerts topic.
func hotAlerts(t *testing.T, broker string) []hotAlert {
	t.Helper()
	var out []hotAlert
	for _, r := range kcatConsume(t, broker, alertsTopic) {
		if r.Payload == nil {
			continue
		}
		var a struct {
			hotAlert
			Ruleset string `json:"ruleset"`
		}
		if err := json.Unmarshal([]byte(*r.Payload), &a); err != nil {
			t.Fatalf("alert %s: %v", *r.Payload, err)
		}
		if a.Ruleset != "hot" {
			continue
		}
		a.raw = *r.Payload
		out = append(out, a.hotAlert)
	}
	return out
}
