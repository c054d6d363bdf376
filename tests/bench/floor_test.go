package bench

import (
	"testing"

	json "github.com/goccy/go-json"
)

// payment is the floor's view of an event: every field the generator
// writes, decoded into a plain struct by a fast decoder. No engine can get
// its events for less, so the engine's time is quoted as a multiple of it.
type payment struct {
	Type      string  `json:"type"`
	AccountID string  `json:"account_id"`
	Amount    float64 `json:"amount"`
	Currency  string  `json:"currency"`
	Country   string  `json:"country"`
	IP        string  `json:"ip"`
	Device    string  `json:"device"`
	Success   bool    `json:"success"`
	Merchant  string  `json:"merchant"`
	CardID    string  `json:"card_id"`
	Lat       float64 `json:"lat"`
	Lon       float64 `json:"lon"`
	TS        string  `json:"ts"`
	Scenario  string  `json:"scenario"`
}

// BenchmarkReadLines reads the stream's lines and does nothing else: the
// I/O share of both the floor and the engine.
func BenchmarkReadLines(b *testing.B) {
	path, lines := benchStream(b)
	var n int
	pe := startPerEvent()
	for b.Loop() {
		n = 0
		if err := readLines(path, func([]byte) { n++ }); err != nil {
			b.Fatal(err)
		}
	}
	if n != lines {
		b.Fatalf("read %d lines, want %d", n, lines)
	}
	pe.report(b, lines)
}

// BenchmarkFloor reads the stream and decodes every line into a payment
// with goccy/go-json: the decode-only floor of docs/design.md#performance.
func BenchmarkFloor(b *testing.B) {
	path, lines := benchStream(b)
	pe := startPerEvent()
	for b.Loop() {
		floorPass(b, path, lines)
	}
	pe.report(b, lines)
}

// floorPass decodes the stream once into payments and checks the result.
func floorPass(b *testing.B, path string, lines int) {
	var (
		p      payment
		decErr error
		n      int
		logins int
	)
	err := readLines(path, func(line []byte) {
		// A fresh struct per line, as a decoder handing events on must
		// give each its own strings.
		p = payment{}
		if err := json.Unmarshal(line, &p); err != nil && decErr == nil {
			decErr = err
		}
		if p.Type == "login" {
			logins++
		}
		n++
	})
	if err != nil {
		b.Fatal(err)
	}
	if decErr != nil {
		b.Fatalf("decode: %v", decErr)
	}
	// The decoded values are used, so the decoder cannot be skipped, and a
	// stream without logins means the decode went wrong.
	if n != lines || logins == 0 {
		b.Fatalf("decoded %d lines with %d logins, want %d lines and some logins", n, logins, lines)
	}
}
