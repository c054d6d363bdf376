package gen

import (
	"math"
	"math/rand/v2"
	"strconv"
)

type city struct {
	country  string
	currency string
	lat, lon float64
}

// homeCities are where accounts live and where ordinary traffic comes from.
// None is in a high-risk country.
var homeCities = []city{
	{"US", "USD", 40.7128, -74.0060},  // New York
	{"US", "USD", 34.0522, -118.2437}, // Los Angeles
	{"GB", "GBP", 51.5074, -0.1278},   // London
	{"DE", "EUR", 52.5200, 13.4050},   // Berlin
	{"FR", "EUR", 48.8566, 2.3522},    // Paris
	{"ES", "EUR", 40.4168, -3.7038},   // Madrid
	{"IT", "EUR", 41.9028, 12.4964},   // Rome
	{"NL", "EUR", 52.3676, 4.9041},    // Amsterdam
	{"SE", "SEK", 59.3293, 18.0686},   // Stockholm
	{"PL", "PLN", 52.2297, 21.0122},   // Warsaw
	{"CH", "CHF", 47.3769, 8.5417},    // Zurich
	{"CA", "CAD", 43.6532, -79.3832},  // Toronto
	{"MX", "MXN", 19.4326, -99.1332},  // Mexico City
	{"BR", "BRL", -23.5505, -46.6333}, // São Paulo
	{"ZA", "ZAR", -26.2041, 28.0473},  // Johannesburg
	{"AE", "AED", 25.2048, 55.2708},   // Dubai
	{"IN", "INR", 19.0760, 72.8777},   // Mumbai
	{"SG", "SGD", 1.3521, 103.8198},   // Singapore
	{"JP", "JPY", 35.6762, 139.6503},  // Tokyo
	{"AU", "AUD", -33.8688, 151.2093}, // Sydney
}

// HighRiskCountries are the destination countries of the big foreign
// transfer scenario; rulesets/payments.yaml lists the same ones.
var HighRiskCountries = []string{"KP", "IR", "SY", "CU"}

var highRiskCities = []city{
	{"KP", "KPW", 39.0392, 125.7625}, // Pyongyang
	{"IR", "IRR", 35.6892, 51.3890},  // Tehran
	{"SY", "SYP", 33.5138, 36.2765},  // Damascus
	{"CU", "CUP", 23.1136, -82.3666}, // Havana
}

// FarKm is the least distance between the two logins of the impossible
// travel scenario.
const FarKm = 3000

type profile struct {
	city   city
	ip     string // usual IP
	ip2    string // second usual IP (mobile network, office)
	device string
	cardID string
}

// profile derives account a's stable attributes from a hash rather than a
// table, so that a million keys cost no memory.
func (g *Generator) profile(a int32) profile {
	h := splitmix(g.keySalt ^ uint64(a)*0xbf58476d1ce4e5b9)
	h2 := splitmix(h)
	h3 := splitmix(h2)
	return profile{
		city:   homeCities[h%uint64(len(homeCities))],
		ip:     hashIP(h2),
		ip2:    hashIP(h2 >> 32),
		device: deviceName(h3),
		cardID: "card-" + strconv.FormatUint(h3>>16&0xffffffffff, 16),
	}
}

// homeNets are first octets of ordinary consumer address space (no
// loopback, private or carrier-grade NAT ranges), so IPs look real.
var homeNets = [...]uint64{24, 50, 68, 73, 81, 84, 86, 92, 94, 98, 109, 151, 174, 188, 203, 217}

func hashIP(h uint64) string {
	b := strconv.AppendUint(nil, homeNets[h%uint64(len(homeNets))], 10)
	for i := range 3 {
		b = append(b, '.')
		b = strconv.AppendUint(b, 1+(h>>(8*(i+1)))%254, 10)
	}
	return string(b)
}

// farCity returns a home city at least FarKm from c.
func farCity(r *rand.Rand, c city) city {
	var far []city
	for _, o := range homeCities {
		if DistanceKm(c.lat, c.lon, o.lat, o.lon) >= FarKm+500 {
			far = append(far, o)
		}
	}
	return far[r.IntN(len(far))]
}

// DistanceKm is the great-circle (haversine) distance between two points
// in degrees, on a sphere of the Earth's mean radius.
func DistanceKm(lat1, lon1, lat2, lon2 float64) float64 {
	const earthKm = 6371.0
	rad := math.Pi / 180
	dLat := (lat2 - lat1) * rad
	dLon := (lon2 - lon1) * rad
	a := math.Sin(dLat/2)*math.Sin(dLat/2) +
		math.Cos(lat1*rad)*math.Cos(lat2*rad)*math.Sin(dLon/2)*math.Sin(dLon/2)
	return 2 * earthKm * math.Asin(math.Min(1, math.Sqrt(a)))
}

// splitmix is SplitMix64's finaliser: a cheap, well-mixed hash of x.
func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}
