package cep

import (
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// readAll collects what a FileReader yields: each line as "N:text" and each
// line error as "N:!reason".
func readAll(t *testing.T, fr *FileReader) []string {
	t.Helper()
	var got []string
	for {
		b, n, err := fr.Next()
		if errors.Is(err, io.EOF) {
			return got
		}
		var le *LineError
		switch {
		case errors.As(err, &le):
			if le.Line != n {
				t.Errorf("LineError.Line = %d, Next returned line %d", le.Line, n)
			}
			got = append(got, strconv.FormatInt(n, 10)+":!"+le.Err.Error())
		case err != nil:
			t.Fatalf("Next: %v", err)
		default:
			got = append(got, strconv.FormatInt(n, 10)+":"+string(b))
		}
	}
}

func TestFileReaderLines(t *testing.T) {
	long := strings.Repeat("x", 100)
	tests := []struct {
		name string
		in   string
		max  int
		want []string
	}{
		{
			name: "json lines",
			in:   "{\"a\":1}\n{\"a\":2}\n",
			want: []string{`1:{"a":1}`, `2:{"a":2}`},
		},
		{
			name: "no final newline",
			in:   "{\"a\":1}\n{\"a\":2}",
			want: []string{`1:{"a":1}`, `2:{"a":2}`},
		},
		{
			name: "blank lines keep numbering",
			in:   "\n{\"a\":1}\n  \t\n\r\n{\"a\":2}\n\n",
			want: []string{`2:{"a":1}`, `5:{"a":2}`},
		},
		{
			name: "crlf",
			in:   "{\"a\":1}\r\n{\"a\":2}\r\n",
			want: []string{`1:{"a":1}`, `2:{"a":2}`},
		},
		{
			name: "empty file",
			in:   "",
			want: nil,
		},
		{
			name: "line at the limit",
			in:   long + "\n",
			max:  100,
			want: []string{"1:" + long},
		},
		{
			name: "line over the limit is reported and skipped",
			in:   "{}\n" + long + "x\n{\"b\":1}\n",
			max:  100,
			want: []string{"1:{}", "2:!line too long: more than 100 bytes", `3:{"b":1}`},
		},
		{
			name: "last line over the limit",
			in:   "{}\n" + long + "x",
			max:  100,
			want: []string{"1:{}", "2:!line too long: more than 100 bytes"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fr, err := NewFileReader("f.jsonl", strings.NewReader(tt.in), tt.max)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, readAll(t, fr)); diff != "" {
				t.Errorf("lines (-want +got):\n%s", diff)
			}
		})
	}
}

// TestFileReaderLongLines covers lines longer than the bufio buffer, which
// take the assembling path rather than the in-place one.
func TestFileReaderLongLines(t *testing.T) {
	big := `{"s":"` + strings.Repeat("y", 200<<10) + `"}`
	huge := strings.Repeat("z", 300<<10)
	in := big + "\n" + huge + "\n{}\n" + big
	fr, err := NewFileReader("f.jsonl", strings.NewReader(in), 250<<10)
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, fr)
	want := []string{"1:" + big, "2:!line too long: more than 256000 bytes", "3:{}", "4:" + big}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("lines (-want +got):\n%s", diff)
	}
}

func TestFileReaderDefaultLimit(t *testing.T) {
	line := strings.Repeat("a", DefaultMaxLineBytes+1)
	fr, err := NewFileReader("f.jsonl", strings.NewReader(line+"\n"+line[:DefaultMaxLineBytes]+"\n"), 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = fr.Next()
	if !errors.Is(err, ErrLineTooLong) {
		t.Fatalf("first line: err = %v, want ErrLineTooLong", err)
	}
	b, n, err := fr.Next()
	if err != nil || n != 2 || len(b) != DefaultMaxLineBytes {
		t.Fatalf("second line: len %d, line %d, err %v; want %d bytes, line 2", len(b), n, err, DefaultMaxLineBytes)
	}
}

func TestOpenFileGzip(t *testing.T) {
	dir := t.TempDir()
	gz := filepath.Join(dir, "events.jsonl.gz")
	if err := os.WriteFile(gz, gzipped(t, "{\"a\":1}\n\n{\"a\":2}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The same bytes under a name without .gz are read as they are.
	plain := filepath.Join(dir, "events.jsonl")
	if err := os.WriteFile(plain, []byte("{\"a\":1}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		file string
		want []string
	}{
		{"gz by extension", gz, []string{`1:{"a":1}`, `3:{"a":2}`}},
		{"plain", plain, []string{`1:{"a":1}`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fr, err := OpenFile(tt.file, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = fr.Close() }() // a reader: its Close loses nothing
			if diff := cmp.Diff(tt.want, readAll(t, fr)); diff != "" {
				t.Errorf("lines (-want +got):\n%s", diff)
			}
		})
	}
}

func TestOpenFileErrors(t *testing.T) {
	dir := t.TempDir()
	notGzip := filepath.Join(dir, "bad.jsonl.gz")
	if err := os.WriteFile(notGzip, []byte("{\"account\":1}\n{\"account\":2}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "cut.jsonl.gz")
	z := gzipped(t, strings.Repeat("{\"a\":1}\n", 1000))
	if err := os.WriteFile(truncated, z[:len(z)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	t.Run("missing file", func(t *testing.T) {
		_, err := OpenFile(filepath.Join(dir, "nope.jsonl"), 0)
		if !errors.Is(err, os.ErrNotExist) {
			t.Errorf("err = %v, want os.ErrNotExist", err)
		}
	})
	t.Run("not gzip", func(t *testing.T) {
		_, err := OpenFile(notGzip, 0)
		if !errors.Is(err, gzip.ErrHeader) {
			t.Errorf("err = %v, want gzip.ErrHeader", err)
		}
	})
	t.Run("truncated gzip is a read error", func(t *testing.T) {
		fr, err := OpenFile(truncated, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = fr.Close() }() // a reader: its Close loses nothing
		for {
			_, _, err = fr.Next()
			if err != nil {
				break
			}
		}
		var le *LineError
		if errors.Is(err, io.EOF) || errors.As(err, &le) {
			t.Errorf("err = %v, want a fatal read error", err)
		}
	})
}

func TestLineDecoder(t *testing.T) {
	tests := []struct {
		name    string
		line    string
		want    Line
		wantErr error
	}{
		{
			name: "plain event",
			line: `{"type":"login","account_id":"a1"}`,
			want: Line{Event: []byte(`{"type":"login","account_id":"a1"}`), Partition: -1, Offset: -1},
		},
		{
			name: "plain event with a payload field but no topic",
			line: `{"payload":"x","n":1}`,
			want: Line{Event: []byte(`{"payload":"x","n":1}`), Partition: -1, Offset: -1},
		},
		{
			name: "topic that is not a string",
			line: `{"topic":1,"payload":"{}"}`,
			want: Line{Event: []byte(`{"topic":1,"payload":"{}"}`), Partition: -1, Offset: -1},
		},
		{
			name: "payload that is an object is not an envelope",
			line: `{"topic":"t","payload":{"a":1}}`,
			want: Line{Event: []byte(`{"topic":"t","payload":{"a":1}}`), Partition: -1, Offset: -1},
		},
		{
			name: "not an object",
			line: `["payload"]`,
			want: Line{Event: []byte(`["payload"]`), Partition: -1, Offset: -1},
		},
		{
			name: "kcat envelope",
			line: `{"topic":"payments","partition":2,"offset":17,"tstype":"create","ts":1700000000123,"broker":1,"headers":["h","v"],"key":"acct-1","payload":"{\"type\":\"login\",\"ok\":true}"}`,
			want: Line{
				Event: []byte(`{"type":"login","ok":true}`), Envelope: true, Topic: []byte("payments"),
				Key: []byte("acct-1"), HasKey: true, TimeMillis: 1700000000123, HasTime: true,
				Partition: 2, Offset: 17,
			},
		},
		{
			name: "null key, spaces, member order",
			line: ` { "payload" : "{}" , "key" : null , "ts" : 5, "topic" : "t" } `,
			want: Line{Event: []byte(`{}`), Envelope: true, Topic: []byte("t"), TimeMillis: 5, HasTime: true, Partition: -1, Offset: -1},
		},
		{
			name: "no timestamp",
			line: `{"topic":"t","ts":-1,"payload":"{}"}`,
			want: Line{Event: []byte(`{}`), Envelope: true, Topic: []byte("t"), Partition: -1, Offset: -1},
		},
		{
			name: "escapes in payload, key and topic",
			line: `{"topic":"t\/1","key":"k\u00e9\ud83d\ude00","payload":"{\"s\":\"a\\\"b\\\\c\\u00e9\\n\"}\t"}`,
			want: Line{
				Event: []byte("{\"s\":\"a\\\"b\\\\c\\u00e9\\n\"}\t"), Envelope: true, Topic: []byte("t/1"),
				Key: []byte("ké😀"), HasKey: true, Partition: -1, Offset: -1,
			},
		},
		{
			name: "lone surrogate becomes U+FFFD",
			line: `{"topic":"t","key":"\ud800x","payload":"{}"}`,
			want: Line{Event: []byte(`{}`), Envelope: true, Topic: []byte("t"), Key: []byte("\uFFFDx"), HasKey: true, Partition: -1, Offset: -1},
		},
		{
			name: "member names spelt with escapes",
			line: `{"t\u006fpic":"t","p\u0061yload":"{}"}`,
			want: Line{Event: []byte(`{}`), Envelope: true, Topic: []byte("t"), Partition: -1, Offset: -1},
		},
		{
			name: "later duplicate member wins",
			line: `{"topic":"a","topic":"b","payload":"{}"}`,
			want: Line{Event: []byte(`{}`), Envelope: true, Topic: []byte("b"), Partition: -1, Offset: -1},
		},
		{
			name:    "tombstone",
			line:    `{"topic":"t","partition":0,"offset":3,"key":"k","payload":null}`,
			want:    Line{Envelope: true, Topic: []byte("t"), Key: []byte("k"), HasKey: true, Partition: 0, Offset: 3},
			wantErr: ErrTombstone,
		},
		{
			name: "truncated envelope is left to the event parser",
			line: `{"topic":"t","payload":"{}"`,
			want: Line{Event: []byte(`{"topic":"t","payload":"{}"`), Partition: -1, Offset: -1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d LineDecoder
			var got Line
			err := d.Decode([]byte(tt.line), &got)
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Decode (-want +got):\n%s", diff)
			}
		})
	}
}

// TestLineDecoderReuse checks that a decoder's scratch space does not leak
// one line's strings into the next.
func TestLineDecoderReuse(t *testing.T) {
	var d LineDecoder
	var a, b Line
	if err := d.Decode([]byte(`{"topic":"t","key":"\u0041AAAAAAA","payload":"{\"x\":\"\u00e9\"}"}`), &a); err != nil {
		t.Fatal(err)
	}
	if err := d.Decode([]byte(`{"topic":"t","payload":"{}"}`), &b); err != nil {
		t.Fatal(err)
	}
	if b.HasKey || string(b.Event) != "{}" {
		t.Errorf("second line: HasKey %v, Event %q; want no key, {}", b.HasKey, b.Event)
	}
}

func BenchmarkLineDecoderPlain(b *testing.B) {
	line := []byte(`{"type":"transfer","account_id":"acct-004217","amount":1520.75,"currency":"EUR","country":"DE","ip":"10.1.2.3","device":"d-77","success":true,"ts":"2026-11-20T10:00:00.123Z"}`)
	var d LineDecoder
	var out Line
	b.ReportAllocs()
	for b.Loop() {
		_ = d.Decode(line, &out)
	}
}

func BenchmarkLineDecoderEnvelope(b *testing.B) {
	line := []byte(`{"topic":"payments","partition":2,"offset":17,"tstype":"create","ts":1700000000123,"broker":1,"key":"acct-004217","payload":"{\"type\":\"transfer\",\"account_id\":\"acct-004217\",\"amount\":1520.75,\"country\":\"DE\",\"success\":true}"}`)
	var d LineDecoder
	var out Line
	b.ReportAllocs()
	for b.Loop() {
		_ = d.Decode(line, &out)
	}
}
