package rules

import (
	"fmt"
	"math"
	"testing"
)

// TestNumberLoaderDecodesAsTheFieldPath checks that a preloaded number is
// exactly what the native path would have decoded from the field, and that
// whatever it would refuse (missing, null, not a number, out of range) is
// not preloaded, so that the path still falls back to CEL for it.
func TestNumberLoaderDecodesAsTheFieldPath(t *testing.T) {
	values := []string{`52.52`, `52`, `-1e3`, `0`, `-0.0`, `9007199254740993`, `1.7976931348623157e308`, `"52.5"`, `null`, `true`, `[1]`, `{"a":1}`}
	for _, k := range []kind{kindNatural, kindDouble, kindInt, kindUint, kindString} {
		l := &NumberLoader{fields: []*numberField{{name: "v", kind: k, key: newNumberKey("v", k)}}}
		for _, v := range append(values, "") {
			line := fmt.Sprintf(`{"w":1,"v":%s}`, v)
			if v == "" {
				line = `{"w":1}`
			}
			t.Run(fmt.Sprintf("kind%d/%s", k, line), func(t *testing.T) {
				ev, err := ParseEvent([]byte(line))
				if err != nil {
					t.Fatal(err)
				}
				l.Load(ev)
				got, gotOK := ev.preloaded(l.fields[0].key)
				r := &fieldRef{field: "v", kind: k}
				var want float64
				val, _, wantOK := r.valueOf(ev)
				if wantOK {
					want, wantOK = numberOf(val)
				}
				if gotOK != wantOK || (gotOK && math.Float64bits(got) != math.Float64bits(want)) {
					t.Fatalf("preloaded %v, %v; field path %v, %v", got, gotOK, want, wantOK)
				}
			})
		}
	}
}

// TestDistanceReadsPreloadedNumbers shows that the native distance_km path
// takes its operands from the preloaded numbers (of the event and of the
// step event) rather than from the fields: a number changed after loading
// changes the result.
func TestDistanceReadsPreloadedNumbers(t *testing.T) {
	x := compileStepProbe(t, `distance_km(a.lat, a.lon, event.lat, event.lon) > 1000.0`, true)
	l := NewNumberLoader([]*Expr{x})
	if l == nil || len(l.fields) != 2 {
		t.Fatalf("loader %+v, want lat and lon", l)
	}
	berlin := `{"lat":52.52,"lon":13.40}`
	load := func() *Event {
		ev, err := ParseEvent([]byte(berlin))
		if err != nil {
			t.Fatal(err)
		}
		l.Load(ev)
		return ev
	}
	eval := func(ev, a *Event) bool {
		v, err := x.Eval(ev, stepVars{"a": {a}})
		if err != nil {
			t.Fatal(err)
		}
		return v.Value().(bool)
	}
	if eval(load(), load()) {
		t.Fatal("Berlin to Berlin is more than 1,000 km")
	}
	// New York, as far as the preloaded numbers of the step event go.
	a := load()
	for i := range a.numKey {
		switch numberKey(a.numKey[i]) {
		case l.fields[0].key:
			a.num[i] = 40.71
		case l.fields[1].key:
			a.num[i] = -74.0
		}
	}
	if !eval(load(), a) {
		t.Fatal("the step event's preloaded numbers were not read")
	}
	// A number key that names another decoding of the field is not used.
	b := load()
	b.numKey[0] = uint16(newNumberKey("lat", kindInt))
	b.num[0] = 40.71
	if eval(load(), b) {
		t.Fatal("a number preloaded for another kind was read")
	}
}
