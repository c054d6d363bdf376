package registry

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shrike-cep/shrike/internal/pagetoken"
	"github.com/shrike-cep/shrike/rules"
)

// listsRuleset declares the managed lists mules (string) and nets (cidr).
func listsRuleset(name string) []byte {
	return fmt.Appendf(nil, `ruleset: %s
stream: {topic: payments, key: event.account}
lists:
  mules: {managed: true, type: string}
  nets: {managed: true, type: cidr}
rules:
  - id: mule
    when: event.account in lists.mules || event.ip in lists.nets
`, name)
}

func TestManagedListChanges(t *testing.T) {
	for _, tg := range redisTargets(t) {
		t.Run(tg.name, func(t *testing.T) {
			ctx := context.Background()
			r := newTestRegistry(t, tg, (&stepClock{}).Now)
			if _, err := r.PutList(ctx, "mules", []string{"a"}); !errors.Is(err, ErrListNotFound) || !strings.Contains(err.Error(), `no ruleset declares a managed list "mules"`) {
				t.Fatalf("PutList before any declaration: %v, want ErrListNotFound", err)
			}
			if _, err := r.Put(ctx, "fraud", listsRuleset("fraud")); err != nil {
				t.Fatal(err)
			}
			page, err := r.GetList(ctx, "mules", ListQuery{})
			if err != nil {
				t.Fatal(err)
			}
			if page.Version != 0 || page.ItemCount != 0 || len(page.Items) != 0 || !cmp.Equal(page.Rulesets, []string{"fraud"}) || !cmp.Equal(page.Types, []rules.ListType{rules.ListString}) {
				t.Errorf("a list never set: %+v", page)
			}
			steps := []struct {
				name   string
				do     func() (ListChange, error)
				want   ListChange
				wantIn []string
			}{
				{
					"put", func() (ListChange, error) { return r.PutList(ctx, "mules", []string{"c", "a", "b", "a"}) },
					ListChange{Name: "mules", Version: 1, ItemCount: 3, Changed: 3},
					[]string{"a", "b", "c"},
				},
				{
					"put the same", func() (ListChange, error) { return r.PutList(ctx, "mules", []string{"b", "c", "a"}) },
					ListChange{Name: "mules", Version: 1, ItemCount: 3, Changed: 0},
					[]string{"a", "b", "c"},
				},
				{
					"add", func() (ListChange, error) { return r.AddListItems(ctx, "mules", []string{"d", "a"}) },
					ListChange{Name: "mules", Version: 2, ItemCount: 4, Changed: 1},
					[]string{"a", "b", "c", "d"},
				},
				{
					"add held", func() (ListChange, error) { return r.AddListItems(ctx, "mules", []string{"d"}) },
					ListChange{Name: "mules", Version: 2, ItemCount: 4, Changed: 0},
					[]string{"a", "b", "c", "d"},
				},
				{
					"remove", func() (ListChange, error) { return r.RemoveListItems(ctx, "mules", []string{"a", "zz"}) },
					ListChange{Name: "mules", Version: 3, ItemCount: 3, Changed: 1},
					[]string{"b", "c", "d"},
				},
				{
					"remove absent", func() (ListChange, error) { return r.RemoveListItems(ctx, "mules", []string{"zz"}) },
					ListChange{Name: "mules", Version: 3, ItemCount: 3, Changed: 0},
					[]string{"b", "c", "d"},
				},
				{
					"put empty", func() (ListChange, error) { return r.PutList(ctx, "mules", nil) },
					ListChange{Name: "mules", Version: 4, ItemCount: 0, Changed: 0},
					nil,
				},
			}
			for _, st := range steps {
				got, err := st.do()
				if err != nil {
					t.Fatalf("%s: %v", st.name, err)
				}
				if diff := cmp.Diff(st.want, got); diff != "" {
					t.Errorf("%s (-want +got):\n%s", st.name, diff)
				}
				page, err := r.GetList(ctx, "mules", ListQuery{})
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(st.wantIn, page.Items); diff != "" {
					t.Errorf("%s: items (-want +got):\n%s", st.name, diff)
				}
			}
			// cidr items are checked and stored canonical.
			if _, err := r.PutList(ctx, "nets", []string{"10.0.0.0/8", "2001:DB8::/32", "10.0.0.0/8"}); err != nil {
				t.Fatal(err)
			}
			page, _ = r.GetList(ctx, "nets", ListQuery{})
			if diff := cmp.Diff([]string{"10.0.0.0/8", "2001:db8::/32"}, page.Items); diff != "" {
				t.Errorf("nets (-want +got):\n%s", diff)
			}
			if _, err := r.RemoveListItems(ctx, "nets", []string{"2001:0db8::/32"}); err != nil {
				t.Fatal(err)
			}
			page, _ = r.GetList(ctx, "nets", ListQuery{})
			if diff := cmp.Diff([]string{"10.0.0.0/8"}, page.Items); diff != "" {
				t.Errorf("nets after removing a non-canonical form (-want +got):\n%s", diff)
			}
			_, err = r.AddListItems(ctx, "nets", []string{"1.2.3.4", "1.2.3.4/16", "bogus"})
			var bad *rules.ListItemsError
			if !errors.As(err, &bad) || len(bad.Problems) != 2 || bad.Problems[0].Index != 1 || bad.Problems[1].Index != 2 {
				t.Fatalf("bad cidr items: %v", err)
			}
			if !strings.Contains(err.Error(), `item 1 "1.2.3.4/16": host bits set (the network is 1.2.0.0/16)`) {
				t.Errorf("error %q does not name the item", err)
			}
		})
	}
}

func TestManagedListInputErrors(t *testing.T) {
	tg := redisTargets(t)[0]
	ctx := context.Background()
	r := newTestRegistry(t, tg, (&stepClock{}).Now)
	if _, err := r.Put(ctx, "fraud", listsRuleset("fraud")); err != nil {
		t.Fatal(err)
	}
	too := make([]string, MaxListItemsPerRequest+1)
	for i := range too {
		too[i] = fmt.Sprint(i)
	}
	for _, tc := range []struct {
		name  string
		list  string
		items []string
		want  error
		msg   string
	}{
		{"empty name", "", nil, ErrInvalidListName, "empty"},
		{"bad name", "mule-accounts", nil, ErrInvalidListName, `"mule-accounts": a letter or '_'`},
		{"long name", strings.Repeat("a", MaxListNameBytes+1), nil, ErrInvalidListName, "at most 128 bytes"},
		{"undeclared", "other", []string{"a"}, ErrListNotFound, `"other"`},
		{"too many", "mules", too, ErrTooManyItems, "50001 items, over the limit of 50000"},
		{"empty item", "mules", []string{"a", ""}, rules.ErrBadListItems, `item 1 "": empty item`},
		{"long item", "mules", []string{strings.Repeat("x", 300)}, rules.ErrBadListItems, "300 bytes, over the limit of 256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := r.AddListItems(ctx, tc.list, tc.items)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("err = %v, want %v with %q", err, tc.want, tc.msg)
			}
		})
	}
}

func TestManagedListPages(t *testing.T) {
	tg := redisTargets(t)[0]
	ctx := context.Background()
	r := newTestRegistry(t, tg, (&stepClock{}).Now)
	if _, err := r.Put(ctx, "fraud", listsRuleset("fraud")); err != nil {
		t.Fatal(err)
	}
	var items []string
	for i := range 250 {
		items = append(items, fmt.Sprintf("acct-%03d", i))
	}
	items = append(items, "bank-1", "bank-2")
	if _, err := r.PutList(ctx, "mules", items); err != nil {
		t.Fatal(err)
	}
	all := func(q ListQuery) []string {
		t.Helper()
		var got []string
		for {
			page, err := r.GetList(ctx, "mules", q)
			if err != nil {
				t.Fatal(err)
			}
			if len(page.Items) > max(q.PageSize, 1) {
				t.Fatalf("page of %d items, page size %d", len(page.Items), q.PageSize)
			}
			if page.ItemCount != 252 {
				t.Fatalf("item count %d", page.ItemCount)
			}
			got = append(got, page.Items...)
			if page.NextPageToken == "" {
				return got
			}
			q.PageToken = page.NextPageToken
		}
	}
	if diff := cmp.Diff(items, all(ListQuery{PageSize: 7})); diff != "" {
		t.Errorf("pages (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"bank-1", "bank-2"}, all(ListQuery{PageSize: 1, Prefix: "bank"})); diff != "" {
		t.Errorf("prefix (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"acct-017", "acct-117", "acct-170", "acct-171", "acct-172", "acct-173", "acct-174", "acct-175", "acct-176", "acct-177", "acct-178", "acct-179", "acct-217"}, all(ListQuery{PageSize: 5, Contains: "17"})); diff != "" {
		t.Errorf("contains (-want +got):\n%s", diff)
	}
	page, err := r.GetList(ctx, "mules", ListQuery{PageSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.GetList(ctx, "mules", ListQuery{PageSize: 2, PageToken: page.NextPageToken, Prefix: "acct"}); !errors.Is(err, pagetoken.ErrInvalid) {
		t.Errorf("a token used with another filter: %v, want ErrInvalid", err)
	}
}

func TestManagedListTypesAgree(t *testing.T) {
	tg := redisTargets(t)[0]
	ctx := context.Background()
	r := newTestRegistry(t, tg, (&stepClock{}).Now)
	if _, err := r.Put(ctx, "fraud", listsRuleset("fraud")); err != nil {
		t.Fatal(err)
	}
	other := strings.Replace(string(listsRuleset("other")), "mules: {managed: true, type: string}", "mules: {managed: true, type: cidr}", 1)
	if _, err := r.Put(ctx, "other", []byte(other)); err != nil {
		t.Fatal(err)
	}
	decls, err := r.ListDecls(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := &ListDecl{Name: "mules", Types: []rules.ListType{rules.ListCIDR, rules.ListString}, Rulesets: []string{"fraud", "other"}}
	if diff := cmp.Diff(want, decls["mules"]); diff != "" {
		t.Errorf("decl (-want +got):\n%s", diff)
	}
	// Declared both ways, an item must suit both.
	if _, err := r.PutList(ctx, "mules", []string{"acct-1"}); !errors.Is(err, rules.ErrBadListItems) {
		t.Errorf("a string item in a list also declared cidr: %v", err)
	}
	if err := r.Delete(ctx, "other"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.PutList(ctx, "mules", []string{"acct-1"}); err != nil {
		t.Errorf("after the cidr declaration went: %v", err)
	}
}

func TestListSync(t *testing.T) {
	for _, tg := range redisTargets(t) {
		t.Run(tg.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			writer := newTestRegistry(t, tg, (&stepClock{}).Now)
			reader := newTestRegistry(t, tg, (&stepClock{}).Now)
			if _, err := writer.Put(ctx, "fraud", listsRuleset("fraud")); err != nil {
				t.Fatal(err)
			}
			if _, err := writer.PutList(ctx, "mules", []string{"acct-1"}); err != nil {
				t.Fatal(err)
			}
			store := rules.NewManagedLists()
			sync := reader.NewListSync(store)
			if err := sync.Load(ctx); err != nil {
				t.Fatal(err)
			}
			if got, _ := store.Items("mules"); !cmp.Equal(got, []string{"acct-1"}) {
				t.Fatalf("after Load: %v", got)
			}
			done := make(chan error, 1)
			go func() { done <- sync.Run(ctx) }()
			if _, err := writer.AddListItems(ctx, "mules", []string{"acct-2"}); err != nil {
				t.Fatal(err)
			}
			for {
				if got, _ := store.Items("mules"); cmp.Equal(got, []string{"acct-1", "acct-2"}) {
					break
				}
				select {
				case <-time.After(10 * time.Millisecond):
				case <-ctx.Done():
				}
			}
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
}

// TestListLists: every managed list the live rulesets declare, by name,
// with its declaration, version and item count, a page at a time; a list
// no live ruleset declares any more is not listed.
func TestListLists(t *testing.T) {
	for _, tg := range redisTargets(t) {
		t.Run(tg.name, func(t *testing.T) {
			ctx := context.Background()
			r := newTestRegistry(t, tg, (&stepClock{}).Now)
			if got, next, err := r.ListLists(ctx, 0, ""); err != nil || len(got) != 0 || next != "" {
				t.Fatalf("no rulesets: %v, %q, %v", got, next, err)
			}
			if _, err := r.Put(ctx, "fraud", listsRuleset("fraud")); err != nil {
				t.Fatal(err)
			}
			if _, err := r.Put(ctx, "aml", []byte(`ruleset: aml
stream: {topic: payments, key: event.account}
lists:
  mules: {managed: true, type: string}
  blocked: {managed: true, type: string}
rules:
  - id: mule
    when: event.account in lists.mules || event.account in lists.blocked
`)); err != nil {
				t.Fatal(err)
			}
			if _, err := r.PutList(ctx, "mules", []string{"a", "b"}); err != nil {
				t.Fatal(err)
			}
			if _, err := r.AddListItems(ctx, "mules", []string{"c"}); err != nil {
				t.Fatal(err)
			}
			want := []ListInfo{
				{ListDecl: ListDecl{Name: "blocked", Types: []rules.ListType{rules.ListString}, Rulesets: []string{"aml"}}},
				{ListDecl: ListDecl{Name: "mules", Types: []rules.ListType{rules.ListString}, Rulesets: []string{"aml", "fraud"}}, Version: 2, ItemCount: 3},
				{ListDecl: ListDecl{Name: "nets", Types: []rules.ListType{rules.ListCIDR}, Rulesets: []string{"fraud"}}},
			}
			var got []ListInfo
			var pages int
			for tok := ""; ; pages++ {
				page, next, err := r.ListLists(ctx, 2, tok)
				if err != nil {
					t.Fatal(err)
				}
				if len(page) > 2 {
					t.Fatalf("page of %d lists, page size 2", len(page))
				}
				got = append(got, page...)
				if next == "" {
					break
				}
				tok = next
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("lists (-want +got):\n%s", diff)
			}
			if pages != 1 {
				t.Errorf("%d pages after the first, want 1", pages)
			}
			if err := r.Delete(ctx, "aml"); err != nil {
				t.Fatal(err)
			}
			got, _, err := r.ListLists(ctx, 0, "")
			if err != nil {
				t.Fatal(err)
			}
			if names := []string{got[0].Name, got[1].Name}; len(got) != 2 || !cmp.Equal(names, []string{"mules", "nets"}) {
				t.Errorf("after aml's deletion: %+v, want mules and nets", got)
			}
			if _, _, err := r.ListLists(ctx, 0, "bogus"); !errors.Is(err, pagetoken.ErrInvalid) {
				t.Errorf("a bad token: %v, want ErrInvalid", err)
			}
		})
	}
}
