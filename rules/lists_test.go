package rules

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const managedSrc = `ruleset: t
lists:
  mules: {managed: true, type: string}
  nets: {managed: true, type: cidr}
  office: {type: cidr, items: [10.0.0.0/8, "192.168.1.7", "2001:db8::/32"]}
  countries: [KP, IR]
rules:
  - id: mule
    when: event.account in lists.mules
  - id: net
    when: event.ip in lists.nets
  - id: office
    when: event.ip in lists.office
  - id: country
    when: event.country in lists.countries
`

func evalRule(t *testing.T, c *Compiled, id, event string) (bool, error) {
	t.Helper()
	ev, err := ParseEvent([]byte(event))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range c.Rules {
		if r.ID == id {
			return r.When.EvalBool(ev, nil)
		}
	}
	t.Fatalf("no rule %q", id)
	return false, nil
}

func mustEval(t *testing.T, c *Compiled, id, event string) bool {
	t.Helper()
	ok, err := evalRule(t, c, id, event)
	if err != nil {
		t.Fatalf("rule %s on %s: %v", id, event, err)
	}
	return ok
}

func TestParseListDecls(t *testing.T) {
	c, err := Load("t.yaml", []byte(managedSrc), CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []ListDecl{
		{Name: "mules", Type: ListString, Managed: true, Pos: Pos{File: "t.yaml", Line: 3, Col: 3}},
		{Name: "nets", Type: ListCIDR, Managed: true, Pos: Pos{File: "t.yaml", Line: 4, Col: 3}},
	}
	if diff := cmp.Diff(want, c.ManagedLists()); diff != "" {
		t.Errorf("ManagedLists (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]any{"10.0.0.0/8", "192.168.1.7", "2001:db8::/32"}, c.Lists["office"]); diff != "" {
		t.Errorf("office items (-want +got):\n%s", diff)
	}
	if _, ok := c.Lists["mules"]; ok {
		t.Errorf("a managed list has items in Lists")
	}
}

func TestListDeclErrors(t *testing.T) {
	for _, tc := range []struct {
		name, lists string
		want        []string
	}{
		{"managed with items", `{l: {managed: true, items: [a]}}`, []string{`2:35: list "l" is managed: its items are not in the ruleset but set through the API (PUT /v1/lists/l), or offline with --list or a test file's lists`}},
		{"unknown type", `{l: {managed: true, type: ip}}`, []string{`2:34: list "l": unknown type "ip" (want string or cidr)`}},
		{"no items", `{l: {type: cidr}}`, []string{`2:12: list "l": give its items, or declare it managed: true`}},
		{"unknown field", `{l: {managed: true, size: 3}}`, []string{`2:28: unknown field "size" in list "l"`}},
		{"managed not bool", `{l: {managed: yes please}}`, []string{`2:22: managed must be true or false, not a string`}},
		{"bad cidr item", `{l: {type: cidr, items: [10.0.0.1/24, "::1", x]}}`, []string{
			`2:33: list "l" item 0 "10.0.0.1/24": host bits set (the network is 10.0.0.0/24)`,
			`2:53: list "l" item 2 "x": not an IP address or CIDR network`,
		}},
		{"items not strings", `{l: {type: string, items: [[a]]}}`, []string{`2:35: list "l" item 0 must be a string, not a list`}},
		{"item with a newline", `{l: {type: string, items: ["a\nb"]}}`, []string{`2:35: list "l" item 0 "a\nb": holds a control character`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := "ruleset: t\nlists: " + tc.lists + "\nrules:\n  - id: r\n    when: 'true'\n"
			_, err := Load("t.yaml", []byte(src), CompileOptions{})
			if diff := cmp.Diff(tc.want, errLines(t, err)); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}

func TestManagedListsSwap(t *testing.T) {
	store := NewManagedLists()
	store.Set("mules", []string{"acct-1"})
	c, err := Load("t.yaml", []byte(managedSrc), CompileOptions{Lists: store})
	if err != nil {
		t.Fatal(err)
	}
	// A second ruleset compiled against the same store shares the list.
	c2, err := Load("t.yaml", []byte(managedSrc), CompileOptions{Lists: store})
	if err != nil {
		t.Fatal(err)
	}
	versions := func(c *Compiled) []string {
		var vs []string
		for _, r := range c.Rules {
			vs = append(vs, r.Version)
		}
		return vs
	}
	before := versions(c)
	if !mustEval(t, c, "mule", `{"account":"acct-1"}`) || mustEval(t, c, "mule", `{"account":"acct-2"}`) {
		t.Fatalf("items set before compiling: want acct-1 in, acct-2 out")
	}
	store.Set("mules", []string{"acct-2", "acct-3"})
	for i, cc := range []*Compiled{c, c2} {
		if mustEval(t, cc, "mule", `{"account":"acct-1"}`) || !mustEval(t, cc, "mule", `{"account":"acct-2"}`) {
			t.Errorf("ruleset %d after Set: want acct-1 out, acct-2 in", i)
		}
	}
	if diff := cmp.Diff(before, versions(c)); diff != "" {
		t.Errorf("rule versions changed with managed items (-before +after):\n%s", diff)
	}
	// Recompiling with other items keeps the versions too.
	store.Set("mules", nil)
	c3, err := Load("t.yaml", []byte(managedSrc), CompileOptions{Lists: store})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, versions(c3)); diff != "" {
		t.Errorf("rule versions differ after a recompile (-before +after):\n%s", diff)
	}
	if mustEval(t, c3, "mule", `{"account":"acct-2"}`) {
		t.Errorf("emptied list still holds acct-2")
	}
	// A given list's items are part of the version.
	other := strings.Replace(managedSrc, "10.0.0.0/8", "11.0.0.0/8", 1)
	c4, err := Load("t.yaml", []byte(other), CompileOptions{Lists: store})
	if err != nil {
		t.Fatal(err)
	}
	if versions(c4)[2] == before[2] {
		t.Errorf("office rule version did not change with its items")
	}
}

func TestManagedListsPrivateStore(t *testing.T) {
	c, err := Load("t.yaml", []byte(managedSrc), CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if mustEval(t, c, "mule", `{"account":"acct-1"}`) {
		t.Fatalf("managed list not empty by default")
	}
	c.ManagedItems.Set("mules", []string{"acct-1"})
	if !mustEval(t, c, "mule", `{"account":"acct-1"}`) {
		t.Fatalf("Set on ManagedItems not seen")
	}
}

func TestCIDRMembership(t *testing.T) {
	store := NewManagedLists()
	skipped := store.Set("nets", []string{"10.0.0.0/8", "192.168.1.0/24", "203.0.113.7", "2001:db8::/32", "::1", "not-a-net", "0.0.0.0/0"[:0] + "172.16.0.0/12"})
	if skipped != 0 {
		// No cidr declaration exists yet: nothing is read as cidr.
		t.Errorf("skipped %d before any cidr declaration", skipped)
	}
	c, err := Load("t.yaml", []byte(managedSrc), CompileOptions{Lists: store})
	if err != nil {
		t.Fatal(err)
	}
	if skipped := store.Set("nets", []string{"10.0.0.0/8", "192.168.1.0/24", "203.0.113.7", "2001:db8::/32", "::1", "not-a-net", "172.16.0.0/12"}); skipped != 1 {
		t.Errorf("skipped = %d, want 1 (not-a-net)", skipped)
	}
	for _, tc := range []struct {
		ip   string
		want bool
	}{
		{"10.1.2.3", true},
		{"10.255.255.255", true},
		{"11.0.0.1", false},
		{"192.168.1.200", true},
		{"192.168.2.1", false},
		{"203.0.113.7", true},
		{"203.0.113.8", false},
		{"172.31.0.1", true},
		{"172.32.0.1", false},
		{"::ffff:10.9.9.9", true}, // IPv4-mapped is its IPv4 address
		{"2001:db8:1::5", true},
		{"2001:db9::5", false},
		{"::1", true},
		{"::2", false},
		{"10.2.0.0/16", true}, // a network inside a listed one
		{"10.0.0.0/7", false},
		{"10.2.3.4/16", true}, // host bits of an event's network are ignored
	} {
		got, err := evalRule(t, c, "net", fmt.Sprintf(`{"ip":%q}`, tc.ip))
		if err != nil || got != tc.want {
			t.Errorf("%s in nets = %v, %v; want %v", tc.ip, got, err, tc.want)
		}
	}
	for _, ip := range []string{"nope", "", "10.0.0", "fe80::1%eth0"} {
		if _, err := evalRule(t, c, "net", fmt.Sprintf(`{"ip":%q}`, ip)); err == nil || !strings.Contains(err.Error(), "not an IP address") {
			t.Errorf("%q in nets: err = %v, want not an IP address", ip, err)
		}
	}
	if _, err := evalRule(t, c, "net", `{"ip":42}`); err == nil {
		t.Errorf("a number in a cidr list: no error")
	}
	// A given cidr list works the same.
	if !mustEval(t, c, "office", `{"ip":"10.3.3.3"}`) || !mustEval(t, c, "office", `{"ip":"192.168.1.7"}`) || mustEval(t, c, "office", `{"ip":"192.168.1.8"}`) {
		t.Errorf("office cidr list membership wrong")
	}
	// The plain list keeps CEL's list semantics.
	if !mustEval(t, c, "country", `{"country":"KP"}`) || mustEval(t, c, "country", `{"country":"DE"}`) {
		t.Errorf("plain list membership wrong")
	}
}

func TestLargeManagedList(t *testing.T) {
	const n = 300_000
	items := make([]string, n)
	nets := make([]string, 0, n)
	for i := range items {
		items[i] = fmt.Sprintf("acct-%07d", i)
		nets = append(nets, fmt.Sprintf("10.%d.%d.0/24", i/256%256, i%256))
	}
	store := NewManagedLists()
	store.Set("mules", items)
	store.Set("nets", nets[:65536])
	// The summary reads a list of unknown length: the rule runs under
	// runtime cost tracking, where `in` over a hashed list must cost one
	// probe, not the list's length (which is over the cost limit).
	src := managedSrc + `  - id: tracked
    when: event.account in lists.mules && event.tags.exists(t, t in lists.mules)
`
	c, err := Load("t.yaml", []byte(src), CompileOptions{Lists: store})
	if err != nil {
		t.Fatal(err)
	}
	var tracked *CompiledRule
	for _, r := range c.Rules {
		if r.ID == "tracked" {
			tracked = r
		}
	}
	if !tracked.When.costTracked {
		t.Fatalf("the tracked rule is not cost tracked; the test does not test what it says")
	}
	if !mustEval(t, c, "mule", `{"account":"acct-0299999"}`) || mustEval(t, c, "mule", `{"account":"acct-0300000"}`) {
		t.Errorf("membership in a large list wrong")
	}
	if !mustEval(t, c, "tracked", `{"account":"acct-0000001","tags":["x","acct-0000002"]}`) {
		t.Errorf("tracked rule false")
	}
	if !mustEval(t, c, "net", `{"ip":"10.255.255.9"}`) || mustEval(t, c, "net", `{"ip":"11.0.0.1"}`) {
		t.Errorf("membership in a large cidr list wrong")
	}
	allocs := testing.AllocsPerRun(100, func() {
		ev, _ := ParseEvent([]byte(`{"account":"acct-0123456"}`))
		_, _ = c.Rules[0].When.EvalBool(ev, nil)
	})
	if allocs > 10 {
		t.Errorf("an evaluation against a large list allocates %v times", allocs)
	}
}

func TestCanonicalListItems(t *testing.T) {
	got, err := CanonicalListItems("nets", ListCIDR, []string{"10.0.0.0/8", "2001:DB8::/32", "::ffff:1.2.3.4", "1.2.3.4/32"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"10.0.0.0/8", "2001:db8::/32", "1.2.3.4", "1.2.3.4"}, got); diff != "" {
		t.Errorf("canonical (-want +got):\n%s", diff)
	}
	long := strings.Repeat("a", MaxListItemBytes+1)
	_, err = CanonicalListItems("nets", ListCIDR, []string{"10.0.0.0/8", "", " 1.2.3.4", "1.2.3.4/33", long, "\xff"})
	var bad *ListItemsError
	if !errors.As(err, &bad) || !errors.Is(err, ErrBadListItems) {
		t.Fatalf("err = %v, want a ListItemsError", err)
	}
	var idx []int
	for _, p := range bad.Problems {
		idx = append(idx, p.Index)
	}
	if diff := cmp.Diff([]int{1, 2, 3, 4, 5}, idx); diff != "" {
		t.Errorf("bad indexes (-want +got):\n%s", diff)
	}
	for _, frag := range []string{`item 1 "": empty item`, `item 2 " 1.2.3.4": starts or ends with white space`, `item 3 "1.2.3.4/33": not an IP address or CIDR network`, "257 bytes, over the limit of 256", `item 5 "\xff": not valid UTF-8`} {
		if !strings.Contains(err.Error(), frag) {
			t.Errorf("error %q lacks %q", err, frag)
		}
	}
	many := make([]string, 100)
	_, err = CanonicalListItems("l", ListString, many)
	if !errors.As(err, &bad) || len(bad.Problems) != maxItemProblems || bad.Total != 100 || !strings.Contains(err.Error(), "and 80 more bad items") {
		t.Errorf("100 bad items: %v", err)
	}
}

func TestParseListText(t *testing.T) {
	src := "# mule accounts\nacct-1\n\n  acct-2  \nacct-3 # added by case 7\n\t# indented comment\nacct#4\n"
	if diff := cmp.Diff([]string{"acct-1", "acct-2", "acct-3", "acct#4"}, ParseListText([]byte(src))); diff != "" {
		t.Errorf("items (-want +got):\n%s", diff)
	}
}

// BenchmarkManagedListIn measures `in` over managed lists of 500,000
// items: a string set and a cidr set of /24 networks.
func BenchmarkManagedListIn(b *testing.B) {
	store := NewManagedLists()
	items := make([]string, 500_000)
	nets := make([]string, 0, 65536)
	for i := range items {
		items[i] = fmt.Sprintf("acct-%07d", i)
	}
	for i := range 65536 {
		nets = append(nets, fmt.Sprintf("10.%d.%d.0/24", i/256, i%256))
	}
	store.Set("mules", items)
	store.Set("nets", nets)
	c, err := Load("t.yaml", []byte(managedSrc), CompileOptions{Lists: store})
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct{ name, rule, event string }{
		{"string", "mule", `{"account":"acct-0312345"}`},
		{"cidr", "net", `{"ip":"10.200.7.9"}`},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var x *Expr
			for _, r := range c.Rules {
				if r.ID == tc.rule {
					x = r.When
				}
			}
			ev, err := ParseEvent([]byte(tc.event))
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				ok, err := x.EvalBool(ev, nil)
				if err != nil || !ok {
					b.Fatalf("%v %v", ok, err)
				}
			}
		})
	}
}

// TestManagedListsConcurrentSet evaluates while the list is swapped: run
// with -race, it shows the swap safe; each evaluation sees either the old
// or the new items, both of which hold acct-1.
func TestManagedListsConcurrentSet(t *testing.T) {
	store := NewManagedLists()
	store.Set("mules", []string{"acct-1"})
	c, err := Load("t.yaml", []byte(managedSrc), CompileOptions{Lists: store})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			ev, _ := ParseEvent([]byte(`{"account":"acct-1"}`))
			for {
				select {
				case <-done:
					errs <- nil
					return
				default:
				}
				ok, err := c.Rules[0].When.EvalBool(ev, nil)
				if err != nil || !ok {
					errs <- fmt.Errorf("acct-1 in mules = %v, %w", ok, err)
					return
				}
			}
		}()
	}
	for i := range 200 {
		store.Set("mules", []string{"acct-1", fmt.Sprintf("acct-%d", i+2)})
	}
	close(done)
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
