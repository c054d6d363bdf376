package registry

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shrike-cep/shrike/internal/pagetoken"
	"github.com/shrike-cep/shrike/rules"
)

// Managed lists (docs/language.md#lists): a ruleset declares
// `lists: {NAME: {managed: true, type: string|cidr}}`, and the list's items
// live here, edited through the API, not in the ruleset. Every instance
// keeps a rules.ManagedLists on them (LoadLists, WatchLists), which its
// compiled rulesets read at run time: an edit reaches every instance
// within a second without a reload, and rule versions (and so partial
// matches and alert ids) stay.
//
// Layout, under one hash tag of its own so that each change is one script
// on one Cluster slot:
//
//	<prefix>:{lists}:items:<name>  ZSET    the items, score 0: lexicographic order pages them
//	                                       and a prefix is a range
//	<prefix>:{lists}:versions      HASH    name → version, bumped by every change of the list
//	<prefix>:{lists}:changes       STRING  counter bumped by every change of any list
//	<prefix>:lists:changes         channel the list's name, published by every change
//
// Items stay when the last ruleset declaring a list goes; declaring it
// again finds them.

// Errors of the managed lists that callers branch on.
var (
	// ErrListNotFound: no live ruleset (or shadow) declares a managed list
	// of that name.
	ErrListNotFound = errors.New("list not found")
	// ErrInvalidListName: not a list name (a CEL identifier of at most
	// MaxListNameBytes).
	ErrInvalidListName = errors.New("invalid list name")
	// ErrListTooLarge: the change would take the list over
	// rules.MaxListItems items.
	ErrListTooLarge = errors.New("list too large")
	// ErrTooManyItems: one request holds more than MaxListItemsPerRequest
	// items.
	ErrTooManyItems = errors.New("too many items in one request")
)

// Limits of the managed lists besides rules.MaxListItemBytes and
// rules.MaxListItems.
const (
	// MaxListNameBytes bounds a list name (part of a Redis key and a REST
	// path).
	MaxListNameBytes = 128
	// MaxListItemsPerRequest bounds the items of one change: larger lists
	// are put in parts (PutList, then AddListItems), as `shrike lists put`
	// does.
	MaxListItemsPerRequest = 50_000
	// listScanBudget bounds the items one GetList with a contains filter
	// reads: past it the page ends early, with a token to go on.
	listScanBudget = 20_000
	// listReadChunk is how many items one read of a whole list fetches.
	listReadChunk = 10_000
)

var listNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func checkListName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty: a list name is a CEL identifier, as in lists.NAME", ErrInvalidListName)
	case len(name) > MaxListNameBytes || !listNameRE.MatchString(name):
		return fmt.Errorf("%w %q: a letter or '_', then letters, digits and '_', at most %d bytes (a CEL identifier, as in lists.NAME)", ErrInvalidListName, cutName(name), MaxListNameBytes)
	}
	return nil
}

func cutName(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// ListDecl is what the live rulesets declare of one managed list.
type ListDecl struct {
	Name string
	// Types are the types it is declared with, sorted: one, unless
	// rulesets disagree, when an item must suit every one.
	Types []rules.ListType
	// Rulesets declare it, by name; a shadow counts as its ruleset.
	Rulesets []string
}

// ListChange is the outcome of a change of a managed list.
type ListChange struct {
	Name string
	// Version counts the list's changes; it is unchanged when the change
	// changed nothing.
	Version int64
	// ItemCount is how many items the list holds after the change.
	ItemCount int64
	// Changed is how many items the change added (PutList: the items it
	// holds now) or removed.
	Changed int64
}

// ListQuery selects a page of GetList.
type ListQuery struct {
	// PageSize 0 means DefaultPageSize; it is capped at MaxPageSize.
	PageSize  int
	PageToken string
	// Prefix keeps the items that start with it; Contains those that hold
	// it. Both may be given.
	Prefix, Contains string
}

// ListPage is a page of a managed list's items, in byte order.
type ListPage struct {
	ListDecl
	Version   int64
	ItemCount int64
	Items     []string
	// NextPageToken continues the listing; "" after the last page.
	NextPageToken string
}

func (r *Registry) listKeys() (items, versions, changes, channel string) {
	tag := "{" + r.prefix + ":lists}"
	return tag + ":items:", tag + ":versions", tag + ":changes", r.prefix + ":lists:changes"
}

// declCache keeps the managed list declarations of the live rulesets at
// one value of the rulesets' change counter.
type declCache struct {
	mu    sync.Mutex
	seq   int64
	valid bool
	decls map[string]*ListDecl
}

// ListDecls returns the managed lists the live rulesets and their
// shadows declare, by name. It reads the rulesets again only when they
// changed.
func (r *Registry) ListDecls(ctx context.Context) (map[string]*ListDecl, error) {
	seq, err := r.seq(ctx)
	if err != nil {
		return nil, err
	}
	r.decls.mu.Lock()
	if r.decls.valid && r.decls.seq == seq {
		d := r.decls.decls
		r.decls.mu.Unlock()
		return d, nil
	}
	r.decls.mu.Unlock()
	set, seq, err := r.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	decls := map[string]*ListDecl{}
	add := func(name string, src []byte) {
		rs, err := rules.Parse(name+".yaml", src)
		if err != nil {
			return // stored versions compiled when stored; a shadow may not run
		}
		for _, d := range rs.ManagedLists() {
			ld := decls[d.Name]
			if ld == nil {
				ld = &ListDecl{Name: d.Name}
				decls[d.Name] = ld
			}
			if !slices.Contains(ld.Types, d.Type) {
				ld.Types = append(ld.Types, d.Type)
				slices.Sort(ld.Types)
			}
			if !slices.Contains(ld.Rulesets, name) {
				ld.Rulesets = append(ld.Rulesets, name)
				slices.Sort(ld.Rulesets)
			}
		}
	}
	for _, rec := range set.Rulesets {
		add(rec.Name, rec.Source)
	}
	for _, sh := range set.Shadows {
		add(sh.Name, sh.Source)
	}
	r.decls.mu.Lock()
	r.decls.seq, r.decls.valid, r.decls.decls = seq, true, decls
	r.decls.mu.Unlock()
	return decls, nil
}

// listDecl returns the declaration of the managed list name, or
// ErrListNotFound.
func (r *Registry) listDecl(ctx context.Context, name string) (*ListDecl, error) {
	if err := checkListName(name); err != nil {
		return nil, err
	}
	decls, err := r.ListDecls(ctx)
	if err != nil {
		return nil, fmt.Errorf("registry: list %q: read the rulesets: %w", name, err)
	}
	d := decls[name]
	if d == nil {
		return nil, fmt.Errorf("%w: no ruleset declares a managed list %q (lists: {%s: {managed: true, type: string}})", ErrListNotFound, name, name)
	}
	return d, nil
}

// checkItems checks items against every type the list is declared with,
// returns them canonical (for cidr) and without duplicates, in the order
// given.
func checkItems(d *ListDecl, items []string) ([]string, error) {
	if len(items) > MaxListItemsPerRequest {
		return nil, fmt.Errorf("%w: %d items, over the limit of %d per request (put the rest with :add)", ErrTooManyItems, len(items), MaxListItemsPerRequest)
	}
	out := items
	for _, t := range d.Types {
		c, err := rules.CanonicalListItems(d.Name, t, items)
		if err != nil {
			return nil, err
		}
		if t == rules.ListCIDR {
			out = c
		}
	}
	seen := make(map[string]struct{}, len(out))
	uniq := make([]string, 0, len(out))
	for _, it := range out {
		if _, dup := seen[it]; !dup {
			seen[it] = struct{}{}
			uniq = append(uniq, it)
		}
	}
	return uniq, nil
}

// listScript changes a list's items, bumps its version and the counter and
// publishes, atomically; a change that changes nothing bumps nothing.
// KEYS: items, versions, changes. ARGV: mode (put | add | remove), max
// items, name, channel, items… (distinct). Returns {changed (-1: over
// the limit), version, count}.
var listScript = redis.NewScript(`
local mode = ARGV[1]
local maxItems = tonumber(ARGV[2])
local first = 5
local changed = 0
local function batches(cmd, withScore)
  local args = {}
  for i = first, #ARGV do
    if withScore then args[#args + 1] = 0 end
    args[#args + 1] = ARGV[i]
    if #args >= 1000 then
      changed = changed + redis.call(cmd, KEYS[1], unpack(args))
      args = {}
    end
  end
  if #args > 0 then changed = changed + redis.call(cmd, KEYS[1], unpack(args)) end
end
if mode == 'put' then
  if #ARGV - first + 1 > maxItems then return {-1, 0, #ARGV - first + 1} end
  local same = redis.call('ZCARD', KEYS[1]) == #ARGV - first + 1
  if same then
    for i = first, #ARGV do
      if not redis.call('ZSCORE', KEYS[1], ARGV[i]) then same = false; break end
    end
  end
  if same then
    local v = tonumber(redis.call('HGET', KEYS[2], ARGV[3]) or '0')
    return {0, v, #ARGV - first + 1}
  end
  redis.call('DEL', KEYS[1])
  batches('ZADD', true)
elseif mode == 'add' then
  local fresh = 0
  for i = first, #ARGV do
    if not redis.call('ZSCORE', KEYS[1], ARGV[i]) then fresh = fresh + 1 end
  end
  local total = redis.call('ZCARD', KEYS[1]) + fresh
  if total > maxItems then return {-1, 0, total} end
  if fresh > 0 then batches('ZADD', true) end
else
  batches('ZREM', false)
end
local count = redis.call('ZCARD', KEYS[1])
if changed == 0 and mode ~= 'put' then
  local v = tonumber(redis.call('HGET', KEYS[2], ARGV[3]) or '0')
  return {0, v, count}
end
local v = redis.call('HINCRBY', KEYS[2], ARGV[3], 1)
redis.call('INCR', KEYS[3])
redis.call('PUBLISH', ARGV[4], ARGV[3])
if mode == 'put' then changed = count end
return {changed, v, count}
`)

// PutList replaces the items of the managed list name (declared by a live
// ruleset, else ErrListNotFound). Items are checked against the list's
// type (a rules.ListItemsError names each bad one by index); duplicates
// count once. Putting the items the list holds changes nothing.
func (r *Registry) PutList(ctx context.Context, name string, items []string) (ListChange, error) {
	return r.changeList(ctx, "put", name, items)
}

// AddListItems adds items to the managed list name; those it holds already
// change nothing.
func (r *Registry) AddListItems(ctx context.Context, name string, items []string) (ListChange, error) {
	return r.changeList(ctx, "add", name, items)
}

// RemoveListItems removes items from the managed list name; those it does
// not hold change nothing.
func (r *Registry) RemoveListItems(ctx context.Context, name string, items []string) (ListChange, error) {
	return r.changeList(ctx, "remove", name, items)
}

func (r *Registry) changeList(ctx context.Context, mode, name string, items []string) (ListChange, error) {
	d, err := r.listDecl(ctx, name)
	if err != nil {
		return ListChange{}, err
	}
	items, err = checkItems(d, items)
	if err != nil {
		return ListChange{}, err
	}
	itemsKey, versions, changes, channel := r.listKeys()
	args := make([]any, 0, 4+len(items))
	args = append(args, mode, rules.MaxListItems, name, channel)
	for _, it := range items {
		args = append(args, it)
	}
	res, err := listScript.Run(ctx, r.client, []string{itemsKey + name, versions, changes}, args...).Int64Slice()
	if err != nil {
		return ListChange{}, fmt.Errorf("registry: %s list %q: %w", mode, name, err)
	}
	if len(res) != 3 {
		return ListChange{}, fmt.Errorf("registry: %s list %q: unexpected script reply %v", mode, name, res)
	}
	if res[0] < 0 {
		return ListChange{}, fmt.Errorf("%w: list %q would hold %d items, over the limit of %d", ErrListTooLarge, name, res[2], rules.MaxListItems)
	}
	return ListChange{Name: name, Changed: res[0], Version: res[1], ItemCount: res[2]}, nil
}

// GetList returns a page of the items of the managed list name, in byte
// order, with its declaration, version and item count. A list declared
// but never set is empty at version 0.
func (r *Registry) GetList(ctx context.Context, name string, q ListQuery) (ListPage, error) {
	d, err := r.listDecl(ctx, name)
	if err != nil {
		return ListPage{}, err
	}
	size := pageSizeOf(q.PageSize)
	// The token is bound to the list and the filter (hashed: the scope
	// of a token holds no NUL, and stays short).
	h := fnv.New64a()
	_, _ = h.Write([]byte(q.Prefix + "\x00" + q.Contains))
	scope := name + ":" + strconv.FormatUint(h.Sum64(), 16)
	itemsKey, versions, _, _ := r.listKeys()
	key := itemsKey + name
	from, to := "-", "+"
	if q.Prefix != "" {
		from, to = "["+q.Prefix, "("+q.Prefix+"\xff"
	}
	if q.PageToken != "" {
		last, err := pagetoken.Decode(q.PageToken, "list", scope)
		if err != nil {
			return ListPage{}, err
		}
		from = "(" + last
	}
	page := ListPage{ListDecl: *d}
	cmds, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.HGet(ctx, versions, name)
		p.ZCard(ctx, key)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return ListPage{}, fmt.Errorf("registry: get list %q: %w", name, err)
	}
	page.Version, _ = cmds[0].(*redis.StringCmd).Int64()
	page.ItemCount = cmds[1].(*redis.IntCmd).Val()
	scanned := 0
	for {
		chunk := size + 1
		if q.Contains != "" {
			chunk = 1000
		}
		got, err := r.client.ZRangeByLex(ctx, key, &redis.ZRangeBy{Min: from, Max: to, Count: int64(chunk)}).Result()
		if err != nil {
			return ListPage{}, fmt.Errorf("registry: get list %q: %w", name, err)
		}
		for i, it := range got {
			scanned++
			if q.Contains == "" || strings.Contains(it, q.Contains) {
				if len(page.Items) == size {
					page.NextPageToken = pagetoken.Encode("list", scope, page.Items[size-1])
					return page, nil
				}
				page.Items = append(page.Items, it)
			}
			if q.Contains != "" && scanned >= listScanBudget && i < len(got)-1 {
				// Enough read for one call: the next page goes on from here.
				page.NextPageToken = pagetoken.Encode("list", scope, it)
				return page, nil
			}
		}
		if len(got) < chunk {
			return page, nil
		}
		from = "(" + got[len(got)-1]
	}
}

// ListInfo describes a managed list without its items.
type ListInfo struct {
	ListDecl
	Version   int64
	ItemCount int64
}

// ListLists returns a page of the managed lists the live rulesets and
// their shadows declare, by name, with their versions and item counts,
// and the token of the next page ("" after the last). pageSize 0 means
// DefaultPageSize; it is capped at MaxPageSize.
func (r *Registry) ListLists(ctx context.Context, pageSize int, pageToken string) ([]ListInfo, string, error) {
	size := pageSizeOf(pageSize)
	var after string
	if pageToken != "" {
		var err error
		if after, err = pagetoken.Decode(pageToken, "lists", ""); err != nil {
			return nil, "", err
		}
	}
	decls, err := r.ListDecls(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("registry: list lists: read the rulesets: %w", err)
	}
	names := make([]string, 0, len(decls))
	for name := range decls {
		if name > after {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	next := ""
	if len(names) > size {
		names = names[:size]
		next = pagetoken.Encode("lists", "", names[len(names)-1])
	}
	if len(names) == 0 {
		return nil, next, nil
	}
	itemsKey, versions, _, _ := r.listKeys()
	cmds, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.HMGet(ctx, versions, names...)
		for _, name := range names {
			p.ZCard(ctx, itemsKey+name)
		}
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("registry: list lists: %w", err)
	}
	vs := cmds[0].(*redis.SliceCmd).Val()
	out := make([]ListInfo, len(names))
	for i, name := range names {
		out[i] = ListInfo{ListDecl: *decls[name], ItemCount: cmds[i+1].(*redis.IntCmd).Val()}
		if v, ok := vs[i].(string); ok {
			out[i].Version, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	return out, next, nil
}

// readList reads every item of the list name, in parts, consistent with
// one version of it; version 0 and no items when it was never set.
func (r *Registry) readList(ctx context.Context, name string) ([]string, int64, error) {
	itemsKey, versions, _, _ := r.listKeys()
	for {
		before, err := r.client.HGet(ctx, versions, name).Int64()
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, 0, err
		}
		var items []string
		from := "-"
		for {
			got, err := r.client.ZRangeByLex(ctx, itemsKey+name, &redis.ZRangeBy{Min: from, Max: "+", Count: listReadChunk}).Result()
			if err != nil {
				return nil, 0, err
			}
			items = append(items, got...)
			if len(got) < listReadChunk {
				break
			}
			from = "(" + got[len(got)-1]
		}
		after, err := r.client.HGet(ctx, versions, name).Int64()
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, 0, err
		}
		if after == before {
			return items, after, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, 0, err
		}
	}
}

// ListSync keeps a rules.ManagedLists on the registry's managed lists.
type ListSync struct {
	reg   *Registry
	store *rules.ManagedLists
	// applied holds the version of each list last set in store.
	applied map[string]int64
	// OnApply, when set, is called after a list's items are set, with
	// the number of items a cidr declaration could not read.
	OnApply func(name string, version int64, items, skipped int)
}

// NewListSync returns a ListSync that keeps store on r's managed lists.
func (r *Registry) NewListSync(store *rules.ManagedLists) *ListSync {
	return &ListSync{reg: r, store: store, applied: map[string]int64{}}
}

// Load reads every stored list whose version changed since the last Load
// into the store. Serve calls it once before it compiles the rulesets, so
// that they start with their items.
func (s *ListSync) Load(ctx context.Context) error {
	_, versions, _, _ := s.reg.listKeys()
	all, err := s.reg.client.HGetAll(ctx, versions).Result()
	if err != nil {
		return fmt.Errorf("registry: read the list versions: %w", err)
	}
	names := make([]string, 0, len(all))
	for name := range all {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		v, _ := strconv.ParseInt(all[name], 10, 64)
		if cur, ok := s.applied[name]; ok && cur == v {
			continue
		}
		items, v, err := s.reg.readList(ctx, name)
		if err != nil {
			return fmt.Errorf("registry: read list %q: %w", name, err)
		}
		skipped := s.store.Set(name, items)
		s.applied[name] = v
		if s.OnApply != nil {
			s.OnApply(name, v, len(items), skipped)
		}
	}
	return nil
}

// Run keeps the store on the registry's lists until ctx ends, then
// returns nil: it listens for the change messages and also reads the
// change counter every half second, which catches a message lost to a
// reconnect, so that every change reaches the store within a second.
// While Redis cannot be reached it logs and keeps trying.
func (s *ListSync) Run(ctx context.Context) error {
	_, _, changes, channel := s.reg.listKeys()
	sub := s.reg.client.Subscribe(ctx, channel)
	defer func() { _ = sub.Close() }()
	msgs := sub.Channel()
	tick := time.NewTicker(s.reg.poll)
	defer tick.Stop()
	last := int64(-1)
	failing := false
	for {
		seq, err := s.reg.client.Get(ctx, changes).Int64()
		if errors.Is(err, redis.Nil) {
			seq, err = 0, nil
		}
		if err == nil && seq != last {
			if err = s.Load(ctx); err == nil {
				last = seq
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		switch {
		case err != nil && !failing:
			failing = true
			s.reg.log.Warn("registry: cannot read the managed lists; retrying", "err", err)
		case err == nil && failing:
			failing = false
			s.reg.log.Info("registry: reading the managed lists again")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-msgs:
		case <-tick.C:
		}
	}
}
