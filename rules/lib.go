package rules

import (
	"math"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
	"cel.dev/cel-go/ext"
)

// Library returns Shrike's own CEL functions as one cel.EnvOption:
//
//	sum(list) / list.sum()     ints sum to int, doubles to double, mixed to double; [] is 0
//	                           (0.0 unless the list is statically list(int) or list(uint))
//	avg(list) / list.avg()     the mean as a double; an empty list is an error
//	distance_km(lat1, lon1, lat2, lon2)   great-circle distance (haversine), ints or doubles
//
// It is exported so that other parts of Shrike (alert filters) offer the
// same functions.
func Library() cel.EnvOption { return cel.Lib(shrikeLib{}) }

type shrikeLib struct{}

// LibraryName implements cel.SingletonLibrary so the library is added once.
func (shrikeLib) LibraryName() string { return "shrike" }

// CompileOptions implements cel.Library.
func (shrikeLib) CompileOptions() []cel.EnvOption {
	// distance_km takes any mix of int and double: one overload per
	// combination, so that calls with dyn arguments dispatch at runtime on
	// the actual types and calls with strings fail type-checking.
	var dist []cel.FunctionOpt
	for mask := 0; mask < 16; mask++ {
		args := make([]*cel.Type, 4)
		id := "distance_km"
		for i := range args {
			if mask&(1<<i) != 0 {
				args[i] = cel.IntType
				id += "_int"
			} else {
				args[i] = cel.DoubleType
				id += "_double"
			}
		}
		dist = append(dist, cel.Overload(id, args, cel.DoubleType, cel.FunctionBinding(distanceKm)))
	}
	// sum and avg have one overload per element type. A statically typed
	// list picks its overload at check time, so sum of an empty list(int)
	// is the int 0. A dyn list (fields of events without a schema) is
	// dispatched at runtime on its first element; an empty one goes to the
	// first overload, double, so that sum(xs) + event.price works on the
	// first event of a loop too.
	var sums, avgs []cel.FunctionOpt
	for _, et := range []struct {
		name string
		t    *cel.Type
		zero ref.Val
	}{
		{"double", cel.DoubleType, types.Double(0)},
		{"int", cel.IntType, types.Int(0)},
		{"uint", cel.UintType, types.Uint(0)},
	} {
		lt := []*cel.Type{cel.ListType(et.t)}
		f := sumWithZero(et.zero)
		sums = append(sums,
			cel.Overload("sum_list_"+et.name, lt, et.t, cel.UnaryBinding(f)),
			cel.MemberOverload("list_"+et.name+"_sum", lt, et.t, cel.UnaryBinding(f)))
		avgs = append(avgs,
			cel.Overload("avg_list_"+et.name, lt, cel.DoubleType, cel.UnaryBinding(avg)),
			cel.MemberOverload("list_"+et.name+"_avg", lt, cel.DoubleType, cel.UnaryBinding(avg)))
	}
	return []cel.EnvOption{
		cel.Function("sum", sums...),
		cel.Function("avg", avgs...),
		cel.Function("distance_km", dist...),
	}
}

// ProgramOptions implements cel.Library.
func (shrikeLib) ProgramOptions() []cel.ProgramOption { return nil }

// envLibraries is the CEL environment every ruleset expression sees
// besides its variables.
func envLibraries() []cel.EnvOption {
	return []cel.EnvOption{
		cel.OptionalTypes(), // before ext.Regex, which needs it
		ext.Strings(),
		ext.Lists(),
		ext.Math(),
		ext.Sets(),
		ext.Regex(),
		ext.Network(),
		ext.TwoVarComprehensions(),
		ext.Encoders(),
		cel.CrossTypeNumericComparisons(true),
		Library(),
	}
}

// sumWithZero returns sum with the value of an empty list.
func sumWithZero(zero ref.Val) func(ref.Val) ref.Val {
	return func(v ref.Val) ref.Val {
		if l, ok := v.(traits.Lister); ok && l.Size() == types.IntZero {
			return zero
		}
		return sum(v)
	}
}

// sum adds numbers: all ints stay int (an overflow is an error), any
// double makes the result double.
func sum(v ref.Val) ref.Val {
	l, ok := v.(traits.Lister)
	if !ok {
		return types.MaybeNoSuchOverloadErr(v)
	}
	var (
		isum    int64
		usum    uint64
		fsum    float64
		double  bool
		hasUint bool
		hasInt  bool
	)
	it := l.Iterator()
	for it.HasNext() == types.True {
		switch x := it.Next().(type) {
		case types.Int:
			hasInt = true
			n := int64(x)
			if (n > 0 && isum > math.MaxInt64-n) || (n < 0 && isum < math.MinInt64-n) {
				return types.NewErr("sum: int overflow")
			}
			isum += n
			fsum += float64(n)
		case types.Uint:
			hasUint = true
			if usum > math.MaxUint64-uint64(x) {
				return types.NewErr("sum: uint overflow")
			}
			usum += uint64(x)
			fsum += float64(x)
		case types.Double:
			double = true
			fsum += float64(x)
		default:
			return types.NewErr("sum: element of type %s is not a number", x.Type().TypeName())
		}
	}
	switch {
	case double || (hasInt && hasUint):
		return types.Double(fsum)
	case hasUint:
		return types.Uint(usum)
	}
	return types.Int(isum)
}

// avg is the mean of a non-empty list of numbers.
func avg(v ref.Val) ref.Val {
	l, ok := v.(traits.Lister)
	if !ok {
		return types.MaybeNoSuchOverloadErr(v)
	}
	n, _ := l.Size().(types.Int)
	if n == 0 {
		return types.NewErr("avg: empty list")
	}
	var s float64
	it := l.Iterator()
	for it.HasNext() == types.True {
		f, ok := toFloat(it.Next())
		if !ok {
			return types.NewErr("avg: element is not a number")
		}
		s += f
	}
	return types.Double(s / float64(n))
}

func toFloat(v ref.Val) (float64, bool) {
	switch x := v.(type) {
	case types.Int:
		return float64(x), true
	case types.Uint:
		return float64(x), true
	case types.Double:
		return float64(x), true
	}
	return 0, false
}

// earthRadiusKm is the mean Earth radius (IUGG).
const earthRadiusKm = 6371.0088

// distanceKm is the haversine great-circle distance between two points
// given in degrees.
func distanceKm(args ...ref.Val) ref.Val {
	var c [4]float64
	for i, a := range args {
		f, ok := toFloat(a)
		if !ok {
			return types.MaybeNoSuchOverloadErr(a)
		}
		c[i] = f
	}
	return types.Double(haversine(c[0], c[1], c[2], c[3]))
}

func haversine(lat1, lon1, lat2, lon2 float64) float64 {
	const rad = math.Pi / 180
	dLat := (lat2 - lat1) * rad
	dLon := (lon2 - lon1) * rad
	a := math.Sin(dLat/2)*math.Sin(dLat/2) +
		math.Cos(lat1*rad)*math.Cos(lat2*rad)*math.Sin(dLon/2)*math.Sin(dLon/2)
	return 2 * earthRadiusKm * math.Asin(math.Min(1, math.Sqrt(a)))
}
