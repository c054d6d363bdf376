package gen

import (
	"strconv"
	"strings"
	"time"
)

// Scenario names of the payments stream, as written in the "scenario"
// field of injected events.
const (
	// ScenarioAccountTakeover is three to five failed logins from fresh IPs,
	// a successful login from yet another IP, then a transfer above 1000.
	ScenarioAccountTakeover = "account_takeover"
	// ScenarioCardTesting is three to six consecutive card authorisations
	// below 2.00 on one card at different merchants.
	ScenarioCardTesting = "card_testing"
	// ScenarioImpossibleTravel is a login at home and, minutes later, a login
	// from a city thousands of kilometres away.
	ScenarioImpossibleTravel = "impossible_travel"
	// ScenarioResetWithout2FA is a password reset that no 2fa_verified
	// follows, then a login from a new IP. The account_security stream
	// injects it too.
	ScenarioResetWithout2FA = "reset_without_2fa"
	// ScenarioStructuring is three to five transfers just below 10000 within
	// the hour.
	ScenarioStructuring = "structuring"
	// ScenarioBigForeignTransfer is one transfer above 10000 to a high-risk
	// country.
	ScenarioBigForeignTransfer = "big_foreign_transfer"
	// ScenarioLargeCardAuth is one card authorisation above 5000.
	ScenarioLargeCardAuth = "large_card_auth"
	// ScenarioVelocity is five to eight transfers of a few hundred, 4 to
	// 16 seconds apart: under two minutes in all.
	ScenarioVelocity = "velocity"
	// ScenarioCardSpree is five to seven authorisations of a few dozen to a
	// few hundred on as many cards the account never used, 10 to 60
	// seconds apart: stolen cards tried one after another through one
	// account, well within ten minutes.
	ScenarioCardSpree = "card_spree"
)

// paymentsScenarios is in injection order: instances cycle through it, so
// a run whose first len(paymentsScenarios) instances all fit before the
// end of the stream contains every scenario.
var paymentsScenarios = []string{
	ScenarioAccountTakeover,
	ScenarioCardTesting,
	ScenarioImpossibleTravel,
	ScenarioResetWithout2FA,
	ScenarioCardSpree,
	ScenarioStructuring,
	ScenarioBigForeignTransfer,
	ScenarioLargeCardAuth,
	ScenarioVelocity,
}

// Event types of the payments stream. The account_security stream uses
// the login, logout, password reset and 2fa types too.
const (
	TypeLogin         = "login"
	TypeLogout        = "logout"
	TypeTransfer      = "transfer"
	TypeCardAuth      = "card_auth"
	TypePasswordReset = "password_reset"
	Type2FAVerified   = "2fa_verified"
)

// AccountID returns the account_id of key number i (0 ≤ i < Keys) of the
// payments stream.
func AccountID(i int) string {
	return string(appendKey(make([]byte, 0, 12), "acct-", int32(i)))
}

// payments is the slotStream of card, login and transfer traffic.
type payments struct{}

// paymentsQuiet is how long an account stays out of background traffic
// after its scenario's last event: the window in which an ordinary event
// could spoil the pattern (a 2fa_verified after a reset without one) or
// pair with it into a second match (a login at home after a far-away one,
// a fifth transfer within two minutes).
var paymentsQuiet = map[string]time.Duration{
	ScenarioAccountTakeover:    10 * time.Minute,
	ScenarioCardTesting:        10 * time.Minute,
	ScenarioImpossibleTravel:   30 * time.Minute,
	ScenarioResetWithout2FA:    16 * time.Minute,
	ScenarioStructuring:        time.Hour,
	ScenarioBigForeignTransfer: time.Minute,
	ScenarioLargeCardAuth:      time.Minute,
	ScenarioVelocity:           2 * time.Minute,
	// The spree's cards leave the window ten minutes after the last; its
	// rule keeps quiet for the hour after an alert on its own.
	ScenarioCardSpree: 10 * time.Minute,
}

func (payments) quietAfter(name string) time.Duration { return paymentsQuiet[name] }

// background draws one ordinary event at ts. The amount bands are chosen so
// that ordinary traffic does not look like fraud: card auths are at least
// 3.00 (card testing is below 2.00) and at most 3000 (large auths are above
// 5000); transfers stay below 8500 (structuring is 9000..9999) or are
// domestic above 10000 (big foreign transfers go to high-risk countries).
// An account's ordinary transfers are rare enough that five within two
// minutes (velocity) do not happen by chance at the default key count, and
// its card authorisations are all on its one card (a card spree takes five).
func (payments) background(g *Generator, ts int64, budget int) *event {
	r := g.rng
	acct := g.pickKey(ts)
	p := g.profile(acct)
	x := r.Float64()
	if x < 0.01 && (budget < 2 || ts+255_000 >= g.endMs) {
		x = 0.5 // no room for the reset's 2fa follow-up
	}
	switch {
	case x < 0.01:
		// A user resets the password and confirms with 2fa: the absence
		// rule must not fire on it.
		e := g.newEvent(ts, TypePasswordReset, acct)
		g.jitterHome(e)
		v := g.newEvent(ts+15_000+r.Int64N(240_000), Type2FAVerified, acct)
		g.jitterHome(v)
		g.schedule(v)
		g.markBusy(acct, v.ts)
		return e
	case x < 0.51:
		e := g.newEvent(ts, TypeCardAuth, acct)
		e.amount = clamp(logNormal(r, 35, 0.9), 3, 3000)
		e.merchant = merchant(r.IntN(5000))
		e.cardID = p.cardID
		e.success = r.Float64() < 0.98
		if r.Float64() < 0.05 {
			c := homeCities[r.IntN(len(homeCities))]
			e.country, e.lat, e.lon = c.country, c.lat, c.lon
		}
		g.jitter(e, 0.05)
		return e
	case x < 0.78:
		e := g.newEvent(ts, TypeLogin, acct)
		e.success = r.Float64() < 0.97
		if r.Float64() < 0.2 {
			e.ip = p.ip2
		}
		g.jitterHome(e)
		return e
	case x < 0.93:
		e := g.newEvent(ts, TypeTransfer, acct)
		if r.Float64() < 0.01 {
			e.amount = round2(10000 + r.Float64()*30000)
		} else {
			e.amount = clamp(logNormal(r, 250, 1.1), 5, 8500)
			if r.Float64() < 0.05 {
				c := homeCities[r.IntN(len(homeCities))]
				e.country = c.country
			}
		}
		g.jitterHome(e)
		return e
	case x < 0.97:
		e := g.newEvent(ts, Type2FAVerified, acct)
		g.jitterHome(e)
		return e
	default:
		e := g.newEvent(ts, TypeLogout, acct)
		g.jitterHome(e)
		return e
	}
}

func (payments) scenario(g *Generator, name string, ts int64) []*event {
	r := g.rng
	acct := g.pickKey(ts)
	p := g.profile(acct)
	var evs []*event
	add := func(at int64, typ string) *event {
		e := g.newEvent(at, typ, acct)
		e.scenario = name
		evs = append(evs, e)
		return e
	}
	switch name {
	case ScenarioAccountTakeover:
		// Credential stuffing through residential proxies: new IPs, but
		// geolocated near home so that travel rules stay quiet.
		t := ts
		for range 3 + r.IntN(3) {
			e := add(t, TypeLogin)
			e.success = false
			e.ip = randomIP(r)
			e.device = randomDevice(r)
			g.jitterHome(e)
			t += 5_000 + r.Int64N(25_000)
		}
		t += 30_000 + r.Int64N(90_000)
		login := add(t, TypeLogin)
		login.ip = randomIP(r)
		login.device = randomDevice(r)
		g.jitterHome(login)
		t += 60_000 + r.Int64N(240_000)
		drain := add(t, TypeTransfer)
		drain.ip, drain.device = login.ip, login.device
		drain.amount = round2(1500 + r.Float64()*7000)
		g.jitterHome(drain)
	case ScenarioCardTesting:
		t := ts
		for range 3 + r.IntN(4) {
			e := add(t, TypeCardAuth)
			e.amount = round2(0.5 + r.Float64()*1.49)
			e.merchant = merchant(r.IntN(5000))
			e.cardID = p.cardID
			e.success = r.Float64() < 0.5
			g.jitter(e, 0.05)
			t += 2_000 + r.Int64N(20_000)
		}
	case ScenarioImpossibleTravel:
		home := add(ts, TypeLogin)
		g.jitterHome(home)
		far := add(ts+240_000+r.Int64N(960_000), TypeLogin)
		c := farCity(r, p.city)
		far.country, far.currency, far.lat, far.lon = c.country, c.currency, c.lat, c.lon
		far.ip = randomIP(r)
		g.jitterHome(far)
	case ScenarioResetWithout2FA:
		reset := add(ts, TypePasswordReset)
		reset.ip = randomIP(r)
		g.jitterHome(reset)
		login := add(ts+60_000+r.Int64N(120_000), TypeLogin)
		login.ip = reset.ip
		login.device = randomDevice(r)
		g.jitterHome(login)
	case ScenarioStructuring:
		t := ts
		for range 3 + r.IntN(3) {
			e := add(t, TypeTransfer)
			e.amount = round2(9000 + r.Float64()*990)
			g.jitterHome(e)
			t += 60_000 + r.Int64N(300_000)
		}
	case ScenarioBigForeignTransfer:
		e := add(ts, TypeTransfer)
		c := highRiskCities[r.IntN(len(highRiskCities))]
		e.country = c.country
		e.currency = "USD"
		e.amount = round2(12000 + r.Float64()*78000)
		g.jitterHome(e)
	case ScenarioLargeCardAuth:
		e := add(ts, TypeCardAuth)
		e.amount = round2(5200 + r.Float64()*19800)
		e.merchant = merchant(r.IntN(5000))
		e.cardID = p.cardID
		g.jitter(e, 0.05)
	case ScenarioVelocity:
		// A scripted payout: domestic transfers of a few hundred, each
		// below every other rule's threshold, in quick succession.
		t := ts
		for range 5 + r.IntN(4) {
			e := add(t, TypeTransfer)
			e.amount = round2(100 + r.Float64()*800)
			g.jitterHome(e)
			t += 4_000 + r.Int64N(12_000)
		}
	case ScenarioCardSpree:
		// Amounts above card testing's 2.00 and below a large
		// authorisation's 5000. Each card is a bijective hash of the
		// event's sequence number written in 16 hex digits: distinct from
		// one another, and from every account's own card, which has at
		// most 10.
		t := ts
		for range 5 + r.IntN(3) {
			e := add(t, TypeCardAuth)
			e.amount = round2(20 + r.Float64()*380)
			e.merchant = merchant(r.IntN(5000))
			e.cardID = spreeCard(g.keySalt, e.seq)
			e.success = r.Float64() < 0.8
			g.jitter(e, 0.05)
			t += 10_000 + r.Int64N(50_000)
		}
	}
	return evs
}

func (payments) appendJSON(b []byte, _ *Generator, e *event) []byte {
	b = append(b, `{"type":"`...)
	b = append(b, e.typ...)
	b = append(b, `","account_id":"`...)
	b = appendKey(b, "acct-", e.key)
	b = append(b, `","amount":`...)
	b = strconv.AppendFloat(b, e.amount, 'f', 2, 64)
	b = append(b, `,"currency":"`...)
	b = append(b, e.currency...)
	b = append(b, `","country":"`...)
	b = append(b, e.country...)
	b = append(b, `","ip":"`...)
	b = append(b, e.ip...)
	b = append(b, `","device":"`...)
	b = append(b, e.device...)
	b = append(b, `","success":`...)
	b = strconv.AppendBool(b, e.success)
	b = append(b, `,"merchant":"`...)
	b = append(b, e.merchant...)
	b = append(b, `","card_id":"`...)
	b = append(b, e.cardID...)
	b = append(b, `","lat":`...)
	b = strconv.AppendFloat(b, e.lat, 'f', 4, 64)
	b = append(b, `,"lon":`...)
	b = strconv.AppendFloat(b, e.lon, 'f', 4, 64)
	b = append(b, `,"ts":`...)
	b = appendTime(b, e.ts)
	return appendScenario(b, e)
}

// spreeCard is the card of the card spree event numbered seq.
func spreeCard(salt, seq uint64) string {
	h := strconv.FormatUint(splitmix(salt^seq), 16)
	return "card-" + strings.Repeat("0", 16-len(h)) + h
}
