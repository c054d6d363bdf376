package rules

import (
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unicode"
	"unicode/utf8"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
)

// ListType is the item type of a list declared in the mapping form
// (docs/language.md#lists).
type ListType string

// List types.
const (
	// ListString: items are strings; `x in lists.NAME` is a hash lookup.
	ListString ListType = "string"
	// ListCIDR: items are networks (10.0.0.0/8, 2001:db8::/32) or single
	// addresses; `ip in lists.NAME` is true when the IP string ip lies in
	// one of them.
	ListCIDR ListType = "cidr"
)

// ListTypes returns the list types, for messages.
func ListTypes() []ListType { return []ListType{ListString, ListCIDR} }

// ListDecl declares a list in the mapping form: typed, and either managed
// (its items live outside the ruleset: the API's lists, or `--list` and a
// test file's lists offline) or given in the ruleset as items.
type ListDecl struct {
	Name    string
	Type    ListType
	Managed bool
	Pos     Pos
}

// Limits on list items (docs/language.md#lists, api/README.md).
const (
	// MaxListItemBytes bounds one item.
	MaxListItemBytes = 256
	// MaxListItems bounds the items of one list: a managed list of a
	// million short items holds about 100 MiB per instance.
	MaxListItems = 1_000_000
)

// ListItemProblem is one item a list cannot hold.
type ListItemProblem struct {
	Index int    // position in the items given, 0-based
	Item  string // the item as given, cut to 64 bytes
	Msg   string
}

// ListItemsError names the items a list cannot hold, each with its index
// (at most maxItemProblems of them; Total counts all).
type ListItemsError struct {
	List     string
	Type     ListType
	Problems []ListItemProblem
	Total    int
}

// maxItemProblems bounds the problems a ListItemsError holds, so that a
// request of a million bad items gets a short answer.
const maxItemProblems = 20

func (e *ListItemsError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "list %q (%s): ", e.List, e.Type)
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "item %d %s: %s", p.Index, strconv.Quote(p.Item), p.Msg)
	}
	if more := e.Total - len(e.Problems); more > 0 {
		fmt.Fprintf(&b, "; and %d more bad items", more)
	}
	return b.String()
}

// ErrBadListItems matches (errors.Is) every *ListItemsError.
var ErrBadListItems = errors.New("bad list items")

// Is makes errors.Is(err, ErrBadListItems) true.
func (e *ListItemsError) Is(target error) bool { return target == ErrBadListItems }

// CanonicalListItems checks items for a list of type t and returns them in
// canonical form (a CIDR item as netip prints it: 2001:db8::/32, a single
// address without a prefix length), in the order given. Every item must
// be 1 to MaxListItemBytes bytes of UTF-8 without control characters and
// without leading or trailing white space; a cidr item a network without
// host bits set, or an address.
func CanonicalListItems(name string, t ListType, items []string) ([]string, error) {
	out := make([]string, len(items))
	var bad *ListItemsError
	for i, it := range items {
		c, err := CanonicalListItem(t, it)
		if err != nil {
			if bad == nil {
				bad = &ListItemsError{List: name, Type: t}
			}
			bad.Total++
			if len(bad.Problems) < maxItemProblems {
				bad.Problems = append(bad.Problems, ListItemProblem{Index: i, Item: cut(it, 64), Msg: err.Error()})
			}
			continue
		}
		out[i] = c
	}
	if bad != nil {
		return nil, bad
	}
	return out, nil
}

// CanonicalListItem checks one item (see CanonicalListItems).
func CanonicalListItem(t ListType, item string) (string, error) {
	switch {
	case item == "":
		return "", errors.New("empty item")
	case len(item) > MaxListItemBytes:
		return "", fmt.Errorf("%d bytes, over the limit of %d", len(item), MaxListItemBytes)
	case !utf8.ValidString(item):
		return "", errors.New("not valid UTF-8")
	case strings.IndexFunc(item, unicode.IsControl) >= 0:
		return "", errors.New("holds a control character")
	case unicode.IsSpace(rune(item[0])) || unicode.IsSpace(rune(item[len(item)-1])):
		return "", errors.New("starts or ends with white space")
	}
	switch t {
	case ListString, "":
		return item, nil
	case ListCIDR:
		p, err := parseNetwork(item)
		if err != nil {
			return "", err
		}
		if p.Bits() == p.Addr().BitLen() {
			return p.Addr().String(), nil
		}
		return p.String(), nil
	}
	return "", fmt.Errorf("unknown list type %q", t)
}

// parseNetwork parses a CIDR network or a single address (as a network of
// one address). An IPv4-mapped IPv6 address is its IPv4 address.
func parseNetwork(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, errors.New("not an IP address or CIDR network")
		}
		if a.Zone() != "" {
			return netip.Prefix{}, errors.New("an address with a zone is not a network")
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, errors.New("not an IP address or CIDR network")
	}
	if p.Addr().Is4In6() {
		if p.Bits() < 96 {
			return netip.Prefix{}, errors.New("an IPv4-mapped network shorter than /96 is not an IPv4 network")
		}
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	if m := p.Masked(); m != p {
		return netip.Prefix{}, fmt.Errorf("host bits set (the network is %s)", m)
	}
	return p, nil
}

func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}

// ParseListText reads the items of a list file (`--list NAME=FILE`): one
// item per line; blank lines, lines whose first non-blank character is #,
// and the rest of a line from a # preceded by white space are ignored;
// white space around an item is not part of it.
func ParseListText(src []byte) []string {
	var items []string
	for line := range strings.SplitSeq(string(src), "\n") {
		for _, sep := range []string{" #", "\t#"} {
			if i := strings.Index(line, sep); i >= 0 {
				line = line[:i]
			}
		}
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		items = append(items, line)
	}
	return items
}

// ManagedLists holds the items of managed lists by name for the rulesets
// compiled against it (CompileOptions.Lists). Set swaps a list's items
// atomically: every compiled ruleset that declares the list sees the new
// items from its next evaluation on, without recompiling, and its rule
// versions stay (items are data). It is safe for concurrent use; Set
// builds the new lookup structure before the swap, so evaluations never
// wait for it.
type ManagedLists struct {
	mu    sync.Mutex
	items map[string][]string
	// holders: by name, one per list type declared under that name.
	holders map[string]map[ListType]*managedList
}

// NewManagedLists returns an empty set of managed lists: every list is
// empty until Set.
func NewManagedLists() *ManagedLists {
	return &ManagedLists{items: map[string][]string{}, holders: map[string]map[ListType]*managedList{}}
}

// Set replaces the items of the managed list name. Items a cidr
// declaration of the list cannot read (see CanonicalListItem) are left
// out of it and counted in skipped; a string declaration takes every item.
func (m *ManagedLists) Set(name string, items []string) (skipped int) {
	items = slices.Clone(items)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.items[name] = items
	for t, h := range m.holders[name] {
		c, bad := buildList(t, items)
		h.cur.Store(c)
		if t == ListCIDR {
			skipped = bad
		}
	}
	return skipped
}

// Items returns the items last set for name, and whether any were.
func (m *ManagedLists) Items(name string) ([]string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	it, ok := m.items[name]
	return slices.Clone(it), ok
}

// holder returns the shared holder of list name read as type t, made with
// the items set so far.
func (m *ManagedLists) holder(name string, t ListType) *managedList {
	m.mu.Lock()
	defer m.mu.Unlock()
	byType := m.holders[name]
	if byType == nil {
		byType = map[ListType]*managedList{}
		m.holders[name] = byType
	}
	h := byType[t]
	if h == nil {
		h = &managedList{}
		c, _ := buildList(t, m.items[name])
		h.cur.Store(c)
		byType[t] = h
	}
	return h
}

// managedList is the current contents of one managed list, read once per
// evaluation that uses it (listsView).
type managedList struct {
	cur atomic.Pointer[listContents]
}

// listContents is one version of a list's items as a CEL value.
type listContents struct {
	val traits.Lister
}

// buildList makes the CEL value of a typed list; bad counts the items a
// cidr list could not read.
func buildList(t ListType, items []string) (c *listContents, bad int) {
	sorted := slices.Clone(items)
	sort.Strings(sorted)
	sorted = slices.Compact(sorted)
	if t == ListCIDR {
		s, bad := newCIDRSet(sorted)
		return &listContents{val: s}, bad
	}
	return &listContents{val: newStringSet(sorted)}, 0
}

// stringSet is a list of strings whose `in` is a hash lookup; every other
// list operation is the embedded list's.
type stringSet struct {
	traits.Lister
	set map[string]struct{}
}

func newStringSet(sorted []string) *stringSet {
	set := make(map[string]struct{}, len(sorted))
	for _, s := range sorted {
		set[s] = struct{}{}
	}
	return &stringSet{Lister: types.NewStringList(types.DefaultTypeAdapter, sorted), set: set}
}

// Contains implements traits.Container: a string is looked up, any other
// value is not in the list (CEL's heterogeneous equality).
func (s *stringSet) Contains(v ref.Val) ref.Val {
	str, ok := v.(types.String)
	if !ok {
		if types.IsUnknownOrError(v) {
			return v
		}
		return types.False
	}
	_, in := s.set[string(str)]
	return types.Bool(in)
}

// cidrSet is a list of networks whose `in` takes an IP string and looks
// for a network holding it: one map per prefix length in use, so a lookup
// costs one probe per distinct length (at most 33 for IPv4, 129 for IPv6).
type cidrSet struct {
	traits.Lister
	nets map[netip.Prefix]struct{}
	// lens4 and lens6 are the prefix lengths in use, longest first.
	lens4, lens6 []int
}

func newCIDRSet(sorted []string) (*cidrSet, int) {
	s := &cidrSet{nets: map[netip.Prefix]struct{}{}}
	kept := make([]string, 0, len(sorted))
	seen4, seen6 := map[int]bool{}, map[int]bool{}
	bad := 0
	for _, it := range sorted {
		p, err := parseNetwork(it)
		if err != nil {
			bad++
			continue
		}
		kept = append(kept, it)
		s.nets[p] = struct{}{}
		if p.Addr().Is4() {
			seen4[p.Bits()] = true
		} else {
			seen6[p.Bits()] = true
		}
	}
	for l := range seen4 {
		s.lens4 = append(s.lens4, l)
	}
	for l := range seen6 {
		s.lens6 = append(s.lens6, l)
	}
	slices.Sort(s.lens4)
	slices.Reverse(s.lens4)
	slices.Sort(s.lens6)
	slices.Reverse(s.lens6)
	s.Lister = types.NewStringList(types.DefaultTypeAdapter, kept)
	return s, bad
}

// Contains implements traits.Container: an IP address string is in the
// list when a network of the list holds it; a CIDR string when a network
// of the list holds all of it. Any other string is an error, so that a
// malformed address neither matches nor passes a `!(… in …)` check
// silently (the condition is false and the error counted).
func (s *cidrSet) Contains(v ref.Val) ref.Val {
	str, ok := v.(types.String)
	if !ok {
		if types.IsUnknownOrError(v) {
			return v
		}
		return types.NewErr("cidr list membership needs an IP address string, not %s", v.Type().TypeName())
	}
	p, err := parseNetwork(string(str))
	if err != nil {
		if p2, err2 := netip.ParsePrefix(string(str)); err2 == nil {
			p, err = p2.Masked(), nil
		}
	}
	if err != nil {
		return types.NewErr("cidr list membership: %q is not an IP address", cut(string(str), 64))
	}
	return types.Bool(s.holds(p))
}

func (s *cidrSet) holds(p netip.Prefix) bool {
	lens := s.lens6
	if p.Addr().Is4() {
		lens = s.lens4
	}
	for _, l := range lens {
		if l > p.Bits() {
			continue
		}
		q, err := p.Addr().Prefix(l)
		if err != nil {
			continue
		}
		if _, ok := s.nets[q]; ok {
			return true
		}
	}
	return false
}

// hashedList reports whether v is a list whose `in` costs a hash lookup
// (or one per prefix length), for the runtime cost tracker.
func hashedList(v ref.Val) bool {
	switch v.(type) {
	case *stringSet, *cidrSet:
		return true
	}
	return false
}

// listsView is the value of `lists` in one evaluation: it reads each
// managed list's current contents once, so that an evaluation sees one
// version of every list even while Set swaps it.
type listsView struct {
	v *listsValue
	// loaded holds, per managed list index, the contents read in this
	// evaluation; nil until read.
	loaded []*listContents
}

func (l *listsView) get(name string, managedIdx int) ref.Val {
	if managedIdx < 0 {
		return l.v.m[name]
	}
	if l.loaded == nil {
		// A shared view (listsValue.shared) reads the pointer every time.
		return l.v.managed[managedIdx].cur.Load().val
	}
	c := l.loaded[managedIdx]
	if c == nil {
		c = l.v.managed[managedIdx].cur.Load()
		l.loaded[managedIdx] = c
	}
	return c.val
}

// reset forgets what the last evaluation read.
func (l *listsView) reset() { clear(l.loaded) }

// ConvertToNative implements ref.Val.
func (l *listsView) ConvertToNative(reflect.Type) (any, error) {
	return nil, errors.New("lists cannot be converted")
}

// ConvertToType implements ref.Val.
func (l *listsView) ConvertToType(t ref.Type) ref.Val {
	if t == types.TypeType {
		return types.NewObjectType(listsTypeName)
	}
	return types.NewErr("lists cannot be converted to %s", t.TypeName())
}

// Equal implements ref.Val.
func (l *listsView) Equal(o ref.Val) ref.Val { return types.Bool(o == ref.Val(l)) }

// Type implements ref.Val.
func (l *listsView) Type() ref.Type { return types.NewObjectType(listsTypeName) }

// Value implements ref.Val.
func (l *listsView) Value() any { return l }
