package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// The README's commands, run as written: the tests below take them from
// the fenced blocks of README.md (and api/README.md), so that a README edit
// the code does not follow, or a code change the README does not, fails
// them. They substitute only what a test must: the built binary for `go run
// ./cmd/shrike`, and free loopback ports for the defaults (9092, 6379, 8080,
// 9090), which another process on the machine may hold.

// mdBlock is a fenced code block of a Markdown file.
type mdBlock struct {
	heading string // the nearest heading above it, without the #s
	lang    string // the info string: "sh", "yaml", "json", or ""
	text    string
	prose   string // the text between the previous block or heading and this block
	line    int    // of the opening fence, from 1
}

// mdBlocks returns the fenced blocks of the Markdown file at path.
func mdBlocks(t *testing.T, path string) []mdBlock {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var (
		blocks  []mdBlock
		heading string
		prose   strings.Builder
		cur     *mdBlock
		body    strings.Builder
	)
	for i, line := range strings.Split(string(b), "\n") {
		switch {
		case cur != nil && strings.HasPrefix(line, "```"):
			cur.text = body.String()
			blocks = append(blocks, *cur)
			cur = nil
			prose.Reset()
		case cur != nil:
			body.WriteString(line + "\n")
		case strings.HasPrefix(line, "```"):
			cur = &mdBlock{heading: heading, lang: strings.TrimSpace(line[3:]), prose: prose.String(), line: i + 1}
			body.Reset()
		case strings.HasPrefix(line, "#"):
			heading = strings.TrimSpace(strings.TrimLeft(line, "#"))
			prose.Reset()
		default:
			prose.WriteString(line + "\n")
		}
	}
	if cur != nil {
		t.Fatalf("%s:%d: code block never closed", path, cur.line)
	}
	return blocks
}

// under returns the blocks under heading, failing the test when there are
// none: a renamed section must be renamed here too.
func under(t *testing.T, blocks []mdBlock, heading string) []mdBlock {
	t.Helper()
	var out []mdBlock
	for _, b := range blocks {
		if b.heading == heading {
			out = append(out, b)
		}
	}
	if len(out) == 0 {
		t.Fatalf("no code block under the heading %q of README.md", heading)
	}
	return out
}

// shellCommands splits an sh block into commands: a line ending in a pipe
// or a backslash goes on on the next line.
func shellCommands(text string) []string {
	var cmds []string
	var cur strings.Builder
	for _, line := range strings.Split(text, "\n") {
		if strings.TrimSpace(line) == "" && cur.Len() == 0 {
			continue
		}
		cur.WriteString(line)
		trimmed := strings.TrimRight(line, " ")
		if strings.HasSuffix(trimmed, "|") || strings.HasSuffix(trimmed, "\\") {
			cur.WriteString("\n")
			continue
		}
		cmds = append(cmds, cur.String())
		cur.Reset()
	}
	return cmds
}

// transcriptStep is one command of a terminal transcript ("$ command"
// lines) and the output shown after it.
type transcriptStep struct {
	cmd, out string
}

// transcript splits a transcript block into its commands and outputs.
func transcript(t *testing.T, b mdBlock) []transcriptStep {
	t.Helper()
	var steps []transcriptStep
	for _, line := range strings.Split(strings.TrimSuffix(b.text, "\n"), "\n") {
		if cmd, ok := strings.CutPrefix(line, "$ "); ok {
			steps = append(steps, transcriptStep{cmd: cmd})
			continue
		}
		if len(steps) == 0 {
			t.Fatalf("README.md:%d: transcript output before any $ command", b.line)
		}
		steps[len(steps)-1].out += line + "\n"
	}
	return steps
}

// section returns the text of the Markdown file's section under heading,
// up to the next heading.
func section(t *testing.T, path, heading string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	in := false
	for line := range strings.SplitSeq(string(b), "\n") {
		if strings.HasPrefix(line, "#") {
			if in {
				break
			}
			in = strings.TrimSpace(strings.TrimLeft(line, "#")) == heading
			continue
		}
		if in {
			out.WriteString(line + "\n")
		}
	}
	return out.String()
}

// proseMatch returns the first group of re in text, line breaks read as
// spaces, failing the test when it does not match.
func proseMatch(t *testing.T, text, re string) string {
	t.Helper()
	m := regexp.MustCompile(re).FindStringSubmatch(strings.Join(strings.Fields(text), " "))
	if m == nil {
		t.Fatalf("README.md no longer says %s", re)
	}
	return m[1]
}

// readmeShell runs README commands with sh in a directory, the README's
// defaults replaced by the test's addresses.
type readmeShell struct {
	dir  string
	subs *strings.Replacer
}

// newReadmeShell runs commands in dir; kafka and http, when not empty,
// replace the README's default broker and HTTP addresses.
func newReadmeShell(t *testing.T, dir, kafka, http string) *readmeShell {
	subs := []string{"go run ./cmd/shrike", shellQuote(shrikeBin(t))}
	if kafka != "" {
		subs = append(subs, "127.0.0.1:9092", kafka)
	}
	if http != "" {
		subs = append(subs, "localhost:8080", http)
	}
	return &readmeShell{dir: dir, subs: strings.NewReplacer(subs...)}
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// expand is the command as the test runs it. A command that starts with
// `shrike` (an installed binary, in the docs) runs the built one too.
func (sh *readmeShell) expand(cmd string) string {
	if rest, ok := strings.CutPrefix(cmd, "shrike "); ok {
		cmd = "go run ./cmd/shrike " + rest
	}
	return sh.subs.Replace(cmd)
}

// run runs cmd to its end and returns its stdout and stderr; a status other
// than 0 fails the test.
func (sh *readmeShell) run(t *testing.T, cmd string) (stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := exec.CommandContext(ctx, "sh", "-c", sh.expand(cmd))
	c.Dir = sh.dir
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	if err := c.Run(); err != nil {
		t.Fatalf("README command failed: %v\n$ %s\n(run as: %s)\nstdout:\n%s\nstderr:\n%s", err, cmd, sh.expand(cmd), tail(out.String()), errb.String())
	}
	return out.String(), errb.String()
}

// repoRoot is the repository's root, where the README's commands run.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestREADMEQuickStart runs the quick start of README.md: `shrike serve`
// on its embedded Kafka and Redis with the shipped rulesets, an event of
// one's own produced with kcat, `shrike gen --kafka` traffic, the alerts
// read with kcat (among them the alert on the kcat event, with the summary
// the README quotes), and the offline replay. Then, on the same serve, the
// API examples of README.md and api/README.md that upload, test and
// publish. `./scripts/test`, the whole suite, is the one command it leaves
// out.
//
// The README's `gen --events 20000` runs as written: producing 20,000
// events to the embedded broker takes well under a second.
func TestREADMEQuickStart(t *testing.T) {
	requireTools(t, "kcat", "curl", "jq")
	root := repoRoot(t)
	blocks := mdBlocks(t, filepath.Join(root, "README.md"))
	quick := under(t, blocks, "Quick start")

	ports := map[string]int{"kafka": freePort(t), "redis": freePort(t), "http": freePort(t), "grpc": freePort(t)}
	kafka := fmt.Sprintf("127.0.0.1:%d", ports["kafka"])
	httpAddr := fmt.Sprintf("127.0.0.1:%d", ports["http"])
	sh := newReadmeShell(t, root, kafka, httpAddr)

	// What the README says the quick start shows.
	quickText := section(t, filepath.Join(root, "README.md"), "Quick start")
	wantSummary := proseMatch(t, quickText, "the alert on your event, `([^`]+)`")
	wantEvents := strings.ReplaceAll(proseMatch(t, quickText, `replays a recorded stream of ([\d,]+) synthetic`), ",", "")

	var (
		s       *serve
		alerts  *jsonStream
		ran     []string
		offline bool
	)
	for _, b := range quick {
		if b.lang != "sh" {
			continue
		}
		for _, cmd := range shellCommands(b.text) {
			switch {
			case strings.HasPrefix(cmd, "go run ./cmd/shrike serve "):
				s = startReadmeServe(t, sh, cmd, ports)
				s.waitReady(t, 60*time.Second)
			case strings.HasPrefix(cmd, "kcat ") && strings.Contains(cmd, " -C "):
				// It follows the topic until stopped, as in a terminal.
				alerts = startJSONStream(t, "kcat -C", nil, "sh", "-c", "exec "+sh.expand(cmd))
			case cmd == "./scripts/test":
				continue // the whole suite, this test included
			case strings.HasPrefix(cmd, "go run ./cmd/shrike run "):
				stdout, stderr := sh.run(t, cmd)
				checkOfflineRun(t, stdout, stderr, wantEvents)
				offline = true
			default:
				if s == nil {
					t.Fatalf("README.md:%d: %q comes before serve starts", b.line, cmd)
				}
				sh.run(t, cmd)
			}
			ran = append(ran, cmd)
		}
	}
	for what, ok := range map[string]bool{"serve": s != nil, "kcat -C": alerts != nil, "the offline run": offline} {
		if !ok {
			t.Fatalf("the quick start has no %s command; ran: %q", what, ran)
		}
	}
	if !slices.ContainsFunc(ran, func(c string) bool { return strings.Contains(c, "kcat") && strings.Contains(c, " -P ") }) ||
		!slices.ContainsFunc(ran, func(c string) bool {
			return strings.HasPrefix(c, "go run ./cmd/shrike gen ") && strings.Contains(c, "--kafka")
		}) {
		t.Fatalf("the quick start must feed serve with kcat -P and shrike gen --kafka; ran: %q", ran)
	}

	// The alert on the kcat event, and alerts on the generated traffic.
	var own, generated int
	deadline := time.Now().Add(60 * time.Second)
	for own == 0 || generated == 0 {
		v, ok := alerts.next(time.Until(deadline))
		if !ok {
			late := metricSum(s.metrics(t), "shrike_engine_late_events_total")
			t.Fatalf("kcat -C read %d alerts with the summary %q and %d others before it stopped or 60 s passed (%v events were late)", own, wantSummary, generated, late)
		}
		var a struct {
			Rule    string `json:"rule"`
			Summary string `json:"summary"`
		}
		if err := json.Unmarshal(v, &a); err != nil || a.Rule == "" {
			t.Fatalf("kcat -C printed %s, not an alert (%v)", v, err)
		}
		if a.Summary == wantSummary {
			own++
		} else {
			generated++
		}
	}
	if ms := s.metrics(t); metricSum(ms, "shrike_engine_late_events_total") != 0 {
		t.Errorf("%v events were late: the quick start's events must all be matched", metricSum(ms, "shrike_engine_late_events_total"))
	}

	t.Run("API", func(t *testing.T) { readmeAPI(t, root, blocks, sh) })

	// "Ctrl-C stops the engine cleanly."
	if err := s.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.exited:
	case <-time.After(40 * time.Second):
		t.Fatal("serve did not exit within 40 s of Ctrl-C (SIGINT)")
	}
	if s.err != nil {
		t.Errorf("serve exited with %v after Ctrl-C, want status 0", s.err)
	}
	if !strings.Contains(s.log(), "shut down cleanly") {
		t.Error("serve's log lacks \"shut down cleanly\" after Ctrl-C")
	}
}

// startReadmeServe starts the README's serve command on the test's ports:
// the flags for the embedded broker's and Redis's, --listen,
// --grpc-listen and --admin-listen.
func startReadmeServe(t *testing.T, sh *readmeShell, cmd string, ports map[string]int) *serve {
	t.Helper()
	httpAddr := fmt.Sprintf("127.0.0.1:%d", ports["http"])
	adminAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	line := fmt.Sprintf("cd %s && exec %s --embedded-kafka-port %d --embedded-redis-port %d --listen %s --grpc-listen 127.0.0.1:%d --admin-listen %s",
		shellQuote(sh.dir), sh.expand(cmd), ports["kafka"], ports["redis"], httpAddr, ports["grpc"], adminAddr)
	p := startProc(t, "shrike serve", nil, "sh", "-c", line)
	return &serve{proc: p, http: httpAddr, admin: adminAddr, kafka: fmt.Sprintf("127.0.0.1:%d", ports["kafka"])}
}

// checkOfflineRun checks what the quick start says of `shrike run`: alerts
// as JSON lines on stdout, a summary table on stderr, over the recording's
// events.
func checkOfflineRun(t *testing.T, stdout, stderr, wantEvents string) {
	t.Helper()
	n := 0
	sc := bufio.NewScanner(strings.NewReader(stdout))
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		var a struct{ ID, Rule string }
		if err := json.Unmarshal(sc.Bytes(), &a); err != nil || a.ID == "" || a.Rule == "" {
			t.Fatalf("shrike run printed %q on stdout, not an alert (%v)", sc.Text(), err)
		}
		n++
	}
	if n == 0 {
		t.Error("shrike run printed no alert")
	}
	if !strings.HasPrefix(stderr, "RULE ") {
		t.Errorf("shrike run's stderr does not start with the summary table:\n%s", stderr)
	}
	if !regexp.MustCompile(`(?m)^events +` + wantEvents + ` from 1 file$`).MatchString(stderr) {
		t.Errorf("shrike run's summary does not count the %s events the README says:\n%s", wantEvents, stderr)
	}
}

// readmeAPI runs the API examples that upload, test and publish: those of
// README.md's "Uploading a ruleset" and "Publishing events" and the block of
// api/README.md, on the quick start's serve. A body that is an error fails
// the test; so does a test call whose output is not the one README.md
// shows. The streams (curl -N) follow until stopped: the API tests cover
// them.
func readmeAPI(t *testing.T, root string, blocks []mdBlock, sh *readmeShell) {
	var cmds []string
	var testOut []string // the output README.md shows for each rulesets:test command
	upload := under(t, blocks, "Uploading a ruleset")
	for i, b := range upload {
		if b.lang != "sh" {
			continue
		}
		for _, cmd := range shellCommands(b.text) {
			cmds = append(cmds, cmd)
			if strings.Contains(cmd, "/v1/rulesets:test") {
				if i+1 >= len(upload) || upload[i+1].lang != "json" {
					t.Fatalf("README.md:%d: no json block after the rulesets:test example shows its output", b.line)
				}
				testOut = append(testOut, upload[i+1].text)
			}
		}
	}
	if len(testOut) == 0 {
		t.Fatal(`README.md's "Uploading a ruleset" has no rulesets:test example`)
	}
	for _, b := range under(t, blocks, "Publishing events") {
		cmds = append(cmds, shellCommands(b.text)...)
	}
	for _, b := range under(t, mdBlocks(t, filepath.Join(root, "api", "README.md")), "REST mapping") {
		if b.lang == "sh" {
			cmds = append(cmds, shellCommands(b.text)...)
		}
	}
	var published bool
	for _, cmd := range cmds {
		if strings.Contains(cmd, "curl -N") {
			continue
		}
		out, errOut := sh.run(t, cmd)
		var body map[string]any
		if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &body); err != nil {
			t.Errorf("$ %s\nprinted %q: not one JSON object (%v)\nstderr:\n%s", cmd, tail(out), err, errOut)
			continue
		}
		if _, isErr := body["code"]; isErr {
			t.Errorf("$ %s\nanswered an error: %s", cmd, tail(out))
		}
		switch {
		case strings.Contains(cmd, "| jq") && strings.Contains(cmd, "/v1/rulesets:test"):
			if want := testOut[0]; out != want {
				t.Errorf("$ %s\nprinted %q; README.md shows %q", cmd, out, want)
			}
			testOut = testOut[1:]
		case strings.Contains(cmd, "/v1/events:publish"):
			if body["published_count"] != "1" {
				t.Errorf("$ %s\nprinted %s, want published_count 1", cmd, out)
			}
			published = true
		}
	}
	if !published {
		t.Error("no events:publish example ran")
	}
}

// TestREADMEFirstRule follows "Your first rule" of README.md in an empty
// folder (with the shipped rulesets/ linked in): the ruleset and its unit
// tests saved under the names the README gives, then its transcripts run,
// their output compared with the README's where it shows any.
func TestREADMEFirstRule(t *testing.T) {
	root := repoRoot(t)
	dir := t.TempDir()
	if err := os.Symlink(filepath.Join(root, "rulesets"), filepath.Join(dir, "rulesets")); err != nil {
		t.Fatal(err)
	}
	saved, steps := followTutorial(t, filepath.Join(root, "README.md"), "Your first rule", dir)
	if saved != 2 || steps < 3 {
		t.Fatalf("Your first rule: %d files saved, %d commands run; want the ruleset and its tests, then check, test and run", saved, steps)
	}
}

// TestDocsFirstTest follows "A first test" of docs/testing.md: its test
// file saved into a copy of the shipped rulesets/ (where it must not
// replace a shipped file), and `shrike test` on it prints what the page
// shows.
func TestDocsFirstTest(t *testing.T) {
	root := repoRoot(t)
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "rulesets"), 0o755); err != nil {
		t.Fatal(err)
	}
	files, err := os.ReadDir(filepath.Join(root, "rulesets"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if f.Type().IsRegular() {
			copyFile(t, filepath.Join(root, "rulesets", f.Name()), filepath.Join(dir, "rulesets", f.Name()))
		}
	}
	saved, steps := followTutorial(t, filepath.Join(root, "docs", "testing.md"), "A first test", dir)
	if saved != 1 || steps != 1 {
		t.Fatalf("A first test: %d files saved, %d commands run; want the test file, then shrike test", saved, steps)
	}
}

// yamlName is a file name in backquotes, as the prose before a yaml block
// names the file to save it as.
var yamlName = regexp.MustCompile("`([\\w./-]+\\.yaml)`")

// followTutorial does what the section under heading of the Markdown file
// at path says, in dir: it saves each yaml block as the file the prose
// before it names (the last name there), which must not exist yet, and runs each transcript's
// commands, comparing their output (stdout and stderr) with the one shown,
// when one is. It returns the number of files saved and commands run.
func followTutorial(t *testing.T, path, heading, dir string) (saved, steps int) {
	t.Helper()
	sh := newReadmeShell(t, dir, "", "")
	for _, b := range under(t, mdBlocks(t, path), heading) {
		switch b.lang {
		case "yaml":
			names := yamlName.FindAllStringSubmatch(b.prose, -1)
			if len(names) == 0 {
				t.Fatalf("%s:%d: no file name (`NAME.yaml`) before the block", path, b.line)
			}
			name := filepath.Join(dir, names[len(names)-1][1])
			if _, err := os.Stat(name); err == nil {
				t.Fatalf("%s:%d: saving the block as %s would replace a file of the repository", path, b.line, names[len(names)-1][1])
			}
			if err := os.WriteFile(name, []byte(b.text), 0o644); err != nil {
				t.Fatal(err)
			}
			saved++
		case "":
			for _, st := range transcript(t, b) {
				stdout, stderr := sh.run(t, st.cmd)
				if st.out != "" && stdout+stderr != st.out {
					t.Errorf("%s:%d: $ %s\nprinted:\n%s\n%s shows:\n%s", path, b.line, st.cmd, stdout+stderr, filepath.Base(path), st.out)
				}
				steps++
			}
		}
	}
	return saved, steps
}

// TestREADMEConfiguration starts `shrike serve --config` on the
// configuration file README.md shows with every field and its default
// (the listeners moved to free ports by flags, which win over the file):
// the file is read strictly, so a field the README names that serve does
// not know, or a value of the wrong type, stops it.
func TestREADMEConfiguration(t *testing.T) {
	root := repoRoot(t)
	var yaml string
	for _, b := range under(t, mdBlocks(t, filepath.Join(root, "README.md")), "Configuration") {
		if b.lang == "yaml" {
			yaml = b.text
			break
		}
	}
	if yaml == "" {
		t.Fatal(`README.md's "Configuration" has no yaml block`)
	}
	path := filepath.Join(t.TempDir(), "shrike.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	httpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	adminAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	p := startProc(t, "shrike serve", nil, shrikeBin(t), "serve", "--config", path,
		"--embedded-kafka-port", "0", "--embedded-redis-port", "0",
		"--listen", httpAddr, "--grpc-listen", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "--admin-listen", adminAddr)
	s := &serve{proc: p, http: httpAddr, admin: adminAddr}
	s.waitReady(t, 60*time.Second)
	if err := s.stop(40 * time.Second); err != nil {
		t.Errorf("serve with the README's configuration exited with %v after SIGTERM, want status 0", err)
	}
}
