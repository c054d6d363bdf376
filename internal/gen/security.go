package gen

import (
	"strconv"
	"time"
)

// Scenario names of the account_security stream (besides
// ScenarioResetWithout2FA, which it shares with payments).
const (
	// ScenarioNewDeviceThenEmailChange is a login from a new IP and device, the
	// device added to the account one to three minutes later, and the
	// email address changed from that device two to six minutes after
	// that.
	ScenarioNewDeviceThenEmailChange = "new_device_then_email_change"
	// ScenarioMFAFatigue is a login with the stolen password, five to nine
	// denied MFA push prompts 15 to 45 seconds apart, then an approved one.
	ScenarioMFAFatigue = "mfa_fatigue"
)

var securityScenarios = []string{
	ScenarioResetWithout2FA,
	ScenarioNewDeviceThenEmailChange,
	ScenarioMFAFatigue,
}

// Event types of the account_security stream besides the login, logout,
// password reset and 2fa types of payments.
const (
	TypeMFAPush      = "mfa_push"
	TypeDeviceAdded  = "device_added"
	TypeEmailChanged = "email_changed"
)

// UserID returns the user_id of key number i (0 ≤ i < Keys) of the
// account_security stream.
func UserID(i int) string {
	return string(appendKey(make([]byte, 0, 12), "user-", int32(i)))
}

// security is the slotStream of identity audit events.
type security struct{}

// securityQuiet is how long a user stays out of background traffic after
// an instance: no 2fa_verified may follow a reset without one within its
// 15 minutes, and nothing else may need to be reasoned about.
var securityQuiet = map[string]time.Duration{
	ScenarioResetWithout2FA:          16 * time.Minute,
	ScenarioNewDeviceThenEmailChange: time.Minute,
	ScenarioMFAFatigue:               time.Minute,
}

func (security) quietAfter(name string) time.Duration { return securityQuiet[name] }

// background draws one ordinary audit event at ts. It is shaped so that
// no rule fires on it: a reset is always confirmed by 2fa within minutes;
// a device is added with a fresh device name that ordinary email changes
// (made from the user's usual device) never share; and MFA pushes are
// denied rarely enough that five denials of one user within ten minutes
// do not happen by chance.
func (security) background(g *Generator, ts int64, budget int) *event {
	r := g.rng
	user := g.pickKey(ts)
	p := g.profile(user)
	x := r.Float64()
	if x < 0.01 && (budget < 2 || ts+255_000 >= g.endMs) {
		x = 0.5 // no room for the reset's 2fa follow-up
	}
	switch {
	case x < 0.01:
		e := g.newEvent(ts, TypePasswordReset, user)
		v := g.newEvent(ts+15_000+r.Int64N(240_000), Type2FAVerified, user)
		g.schedule(v)
		g.markBusy(user, v.ts)
		return e
	case x < 0.02:
		// A new phone or browser: its name is new, as the rule expects.
		e := g.newEvent(ts, TypeDeviceAdded, user)
		e.device = randomDevice(r)
		return e
	case x < 0.025:
		return g.newEvent(ts, TypeEmailChanged, user)
	case x < 0.45:
		e := g.newEvent(ts, TypeLogin, user)
		e.success = r.Float64() < 0.96
		if r.Float64() < 0.2 {
			e.ip = p.ip2
		}
		return e
	case x < 0.65:
		e := g.newEvent(ts, TypeMFAPush, user)
		e.success = r.Float64() < 0.98
		return e
	case x < 0.85:
		return g.newEvent(ts, Type2FAVerified, user)
	default:
		return g.newEvent(ts, TypeLogout, user)
	}
}

func (security) scenario(g *Generator, name string, ts int64) []*event {
	r := g.rng
	user := g.pickKey(ts)
	var evs []*event
	add := func(at int64, typ string) *event {
		e := g.newEvent(at, typ, user)
		e.scenario = name
		evs = append(evs, e)
		return e
	}
	// The attacker comes from elsewhere, with a device of their own.
	ip, device := randomIP(r), randomDevice(r)
	country := homeCities[r.IntN(len(homeCities))].country
	attacker := func(e *event) { e.ip, e.device, e.country = ip, device, country }
	switch name {
	case ScenarioResetWithout2FA:
		attacker(add(ts, TypePasswordReset))
		attacker(add(ts+60_000+r.Int64N(120_000), TypeLogin))
	case ScenarioNewDeviceThenEmailChange:
		t := ts
		attacker(add(t, TypeLogin))
		t += 60_000 + r.Int64N(120_000)
		attacker(add(t, TypeDeviceAdded))
		t += 120_000 + r.Int64N(240_000)
		attacker(add(t, TypeEmailChanged))
	case ScenarioMFAFatigue:
		t := ts
		attacker(add(t, TypeLogin))
		for range 5 + r.IntN(5) {
			t += 15_000 + r.Int64N(30_000)
			push := add(t, TypeMFAPush)
			push.success = false
			attacker(push)
		}
		t += 15_000 + r.Int64N(30_000)
		attacker(add(t, TypeMFAPush))
	}
	return evs
}

func (security) appendJSON(b []byte, _ *Generator, e *event) []byte {
	b = append(b, `{"type":"`...)
	b = append(b, e.typ...)
	b = append(b, `","user_id":"`...)
	b = appendKey(b, "user-", e.key)
	b = append(b, `","ip":"`...)
	b = append(b, e.ip...)
	b = append(b, `","device":"`...)
	b = append(b, e.device...)
	b = append(b, `","country":"`...)
	b = append(b, e.country...)
	b = append(b, `","success":`...)
	b = strconv.AppendBool(b, e.success)
	b = append(b, `,"ts":`...)
	b = appendTime(b, e.ts)
	return appendScenario(b, e)
}
