package rules

import "testing"

// BenchmarkParseLayouts parses a stream of one shape and one whose events
// alternate between two shapes (a login without the card fields, a card
// authorisation with them), with and without a Layout.
func BenchmarkParseLayouts(b *testing.B) {
	login := []byte(`{"type":"login","account_id":"acct-0086421","ip":"68.238.224.31","device":"web-fb1cb6","success":true,"lat":34.0698,"lon":-118.2592,"ts":"2026-11-20T10:00:00.000Z"}`)
	auth := []byte(`{"type":"card_auth","account_id":"acct-0086421","amount":569.19,"currency":"USD","merchant":"m-1","card_id":"c-9","success":true,"ts":"2026-11-20T10:00:00.000Z"}`)
	for _, c := range []struct {
		name   string
		events [][]byte
	}{{"one-shape", [][]byte{login, login}}, {"alternating", [][]byte{login, auth}}} {
		for _, withLayout := range []bool{false, true} {
			name := c.name + "/parse"
			if withLayout {
				name = c.name + "/layout"
			}
			b.Run(name, func(b *testing.B) {
				var l *Layout
				if withLayout {
					l = new(Layout)
				}
				var ev Event
				i := 0
				for b.Loop() {
					ev = Event{}
					if err := ev.ParseWith(c.events[i%2], l); err != nil {
						b.Fatal(err)
					}
					i++
				}
			})
		}
	}
}
