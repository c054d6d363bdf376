package rules

import (
	"fmt"
	"strings"
	"testing"

	"cel.dev/cel-go/common/types"
)

// lastStepVars also implements stepEventer, as the matcher's bindings do.
type lastStepVars struct{ stepVars }

func (v lastStepVars) StepEvent(step string, i int) (*Event, bool) {
	evs, ok := v.stepVars[step]
	if !ok || len(evs) == 0 {
		return nil, false
	}
	if i < 0 {
		return evs[len(evs)-1], true
	}
	if i >= len(evs) {
		return nil, false
	}
	return evs[i], true
}

// TestStepsPathAgreesWithCEL evaluates every comparison shape the native
// step path recognises both natively and through CEL, for bound, unbound
// and short steps and for events whose fields are missing, null, of
// another type or escaped, with and without a schema.
func TestStepsPathAgreesWithCEL(t *testing.T) {
	exprs := []string{
		`event.ip != a.ip`, `event.ip == a.ip`, `event.ip == b[0].ip`, `b[1].ip != event.ip`,
		`event.n < a.n`, `event.n <= a.n`, `a.n >= event.n`, `event.n == b[0].n`, `a.n == 5.0`, `a.ip > "m"`,
		`event.ok == a.ok`, `event.ts > a.ts`, `event.ts == b[0].ts`,
		`distance_km(a.lat, a.lon, event.lat, event.lon) > 1000.0`,
		`distance_km(b[0].lat, b[0].lon, event.lat, event.lon) <= 500.0`,
		`1000.0 < distance_km(a.lat, a.lon, 0.0, 0.0)`,
		`distance_km(a.lat, a.lon, event.lat, event.lon) == 0.0`,
	}
	untyped := []string{`a.n == 5`, `distance_km(a.lat, a.lon, 0, 0) > 1000`, `event.n > a.ip`}
	events := []string{
		`{"ip":"10.0.0.1","n":5,"ok":true,"lat":52.52,"lon":13.40,"ts":"2026-11-20T10:00:00Z"}`,
		`{"ip":"10.0.0.2","n":5.5,"ok":false,"lat":40.71,"lon":-74.0,"ts":"2026-11-20T10:00:01Z"}`,
		`{"ip":"10.0.0.1","n":5.0,"ok":true,"lat":52,"lon":13,"ts":"2026-11-20T10:00:00Z"}`,
		`{"ip":"10.0.0.\u0031","n":-1,"ok":true,"lat":52.52,"lon":13.40,"ts":1763632800000}`,
		`{"ip":null,"n":null,"ok":null,"lat":null,"lon":null,"ts":null}`,
		`{"other":1}`,
		`{"ip":7,"n":"5","ok":"yes","lat":"x","lon":"far","ts":"soon"}`,
		`{"ip":"a","ip":"10.0.0.1","n":1,"n":5,"lat":0,"lon":0}`,
	}
	for _, c := range []struct{ schema, preload bool }{{false, false}, {true, false}, {false, true}, {true, true}} {
		schema := c.schema
		list := exprs
		if !schema {
			list = append(append([]string(nil), exprs...), untyped...)
		}
		for _, src := range list {
			t.Run(fmt.Sprintf("schema=%v/preload=%v/%s", schema, c.preload, src), func(t *testing.T) {
				x := compileStepProbe(t, src, schema)
				if x.steps == nil {
					t.Fatalf("%s: not recognised by the native step path", src)
				}
				slow := withoutFast(x)
				// With preload, the native side reads distance operands
				// from numbers a NumberLoader decoded ahead, as the
				// matcher's Prepare arranges.
				var loader *NumberLoader
				if c.preload {
					loader = NewNumberLoader([]*Expr{x})
					if strings.Contains(src, "distance_km") && loader == nil {
						t.Fatalf("%s: no numbers to preload", src)
					}
				}
				parse := func(i int) *Event {
					ev, err := ParseEvent([]byte(events[i]))
					if err != nil {
						t.Fatal(err)
					}
					loader.Load(ev)
					return ev
				}
				for ei := range events {
					for ai := -1; ai < len(events); ai++ {
						for nb := 0; nb <= 2; nb++ {
							// Fresh events on each side, so that neither
							// sees the other's decoding cache.
							bind := func() stepVars {
								v := stepVars{}
								if ai >= 0 {
									v["a"] = []*Event{parse(ai)}
								}
								for j := range nb {
									v["b"] = append(v["b"], parse((ai+j+1+len(events))%len(events)))
								}
								return v
							}
							for _, withLast := range []bool{false, true} {
								var vars Vars = bind()
								if withLast {
									vars = lastStepVars{bind()}
								}
								fv, ferr := x.Eval(parse(ei), vars)
								sv, serr := slow.Eval(parse(ei), bind())
								where := fmt.Sprintf("event %d, a %d, %d b", ei, ai, nb)
								if (ferr != nil) != (serr != nil) {
									t.Fatalf("%s: native err %v, cel err %v", where, ferr, serr)
								}
								if ferr == nil && fv.Equal(sv) != types.True {
									t.Fatalf("%s: native %v, cel %v", where, fv, sv)
								}
							}
						}
					}
				}
			})
		}
	}
}

func TestStepsPathLeavesOtherShapesToCEL(t *testing.T) {
	for _, src := range []string{
		`event.ip != a.ip || event.n > 1.0`, `size(b) > 2`, `b.exists(e, e.ip == event.ip)`,
		`event.ip == b[size(b) - 1].ip`, `has(a.ip)`, `a.ip.startsWith(event.ip)`,
	} {
		if x := compileStepProbe(t, src, false); x.steps != nil {
			t.Errorf("%s: recognised by the native step path", src)
		}
	}
}

func TestFindHintedAgreesWithFind(t *testing.T) {
	events := []string{
		`{"a":1,"b":2,"c":3}`, `{"a":4,"b":5,"c":6}`, `{"c":3,"b":2,"a":1}`, `{"c":6,"b":5,"a":4}`,
		`{"a":1,"a":2}`, `{"b":1}`, `{"b":2}`, `{"\u0061":1,"a":2}`, `{"a\u0062":1,"ab":2}`, `{}`,
		`{"ab":1,"ba":2,"a":3}`, `{"ab":1,"ba":2,"a":3}`, `{"a":1,"b":2,"c":3}`,
	}
	// Two decoders' layouts, and none: hints left by events of one layout
	// are trusted for the next event of that layout only.
	var layouts [2]Layout
	var hints [4]fieldHint
	for round := range 3 {
		for j, raw := range events {
			var layout *Layout
			if k := (round + j) % 3; k < 2 {
				layout = &layouts[k]
			}
			ev := new(Event)
			if err := ev.ParseWith([]byte(raw), layout); err != nil {
				t.Fatal(err)
			}
			for i, name := range []string{"a", "b", "ab", "z"} {
				want, got := ev.find(name), ev.findHinted(name, &hints[i])
				if want != got {
					t.Errorf("round %d, %s: findHinted(%q) = %v, find = %v", round, raw, name, got, want)
				}
			}
		}
	}
}
