package rules

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"
)

func BenchmarkParseEvent(b *testing.B) {
	b.SetBytes(int64(len(paymentsEvent)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseEvent(paymentsEvent); err != nil {
			b.Fatal(err)
		}
	}
}

const benchSchema = `
schema:
  type: string
  account_id: string
  amount: double
  currency: string
  country: string
  ip: string
  device: string
  success: bool
  ts: timestamp
`

func benchExpr(b *testing.B, schema bool, tracked bool, when string) *Expr {
	b.Helper()
	src := "ruleset: bench\n"
	if schema {
		src += benchSchema
	}
	src += fmt.Sprintf("rules:\n  - id: r\n    when: '%s'\n", when)
	rs, err := Parse("bench.yaml", []byte(src))
	if err != nil {
		b.Fatal(err)
	}
	c, list := compileWith(context.Background(), rs, CompileOptions{}, tracked)
	if len(list) > 0 {
		b.Fatal(list)
	}
	return c.Rules[0].When
}

// BenchmarkEvalBool measures a typical predicate over a cached event
// (fields already decoded), with and without a schema, as compiled (the
// static cost check proves it cheap: no runtime tracking) and with runtime
// cost tracking forced; and ParseEvent plus the predicate (the per-event
// cost).
func BenchmarkEvalBool(b *testing.B) {
	const when = `event.type == "login" && !event.success`
	for _, schema := range []bool{false, true} {
		for _, tracked := range []bool{false, true} {
			name := fmt.Sprintf("schema=%v/tracked=%v", schema, tracked)
			x := benchExpr(b, schema, tracked, when)
			b.Run(name+"/cached", func(b *testing.B) {
				ev, _ := ParseEvent(paymentsEvent)
				b.ReportAllocs()
				for b.Loop() {
					ok, err := x.EvalBool(ev, nil)
					if err != nil || !ok {
						b.Fatal(ok, err)
					}
				}
			})
			b.Run(name+"/parse+eval", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					ev, _ := ParseEvent(paymentsEvent)
					ok, err := x.EvalBool(ev, nil)
					if err != nil || !ok {
						b.Fatal(ok, err)
					}
				}
			})
		}
	}
}

// BenchmarkJSONValid is a reference for BenchmarkParseEvent on this
// machine: encoding/json's validator alone, over the same bytes.
func BenchmarkJSONValid(b *testing.B) {
	b.SetBytes(int64(len(paymentsEvent)))
	b.ReportAllocs()
	for b.Loop() {
		if !json.Valid(paymentsEvent) {
			b.Fatal("invalid")
		}
	}
}

// BenchmarkLoad measures parsing, validating and compiling the payments
// example (hot reload compiles a ruleset this way).
func BenchmarkLoad(b *testing.B) {
	src, err := os.ReadFile("testdata/payments.yaml")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Load("payments.yaml", src, CompileOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseRFC3339(b *testing.B) {
	var sink int64
	for b.Loop() {
		n, ok := parseRFC3339("2026-11-20T10:16:38.169Z")
		if !ok {
			b.Fatal("not parsed")
		}
		sink += n
	}
	_ = sink
}

// BenchmarkParseEventInPlace is ParseEvent into one Event, reused: the
// scanning alone, without the allocation.
func BenchmarkParseEventInPlace(b *testing.B) {
	b.SetBytes(int64(len(paymentsEvent)))
	var ev Event
	for b.Loop() {
		ev = Event{}
		if err := ev.Parse(paymentsEvent); err != nil {
			b.Fatal(err)
		}
	}
}
