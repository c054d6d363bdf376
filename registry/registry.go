package registry

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"go.yaml.in/yaml/v3"

	"github.com/shrike-cep/shrike/internal/pagetoken"
	"github.com/shrike-cep/shrike/rules"
)

// RulesetRecord is one stored version of a ruleset.
type RulesetRecord struct {
	Name string
	// Version is 1, 2, 3 … per ruleset; every Put that changes the source,
	// every Rollback and every Delete makes a new version.
	Version int64
	// Source is the YAML; empty for a deletion.
	Source []byte
	// CreateTime is when the ruleset was created: its first version, or
	// the first version after its last deletion.
	CreateTime time.Time
	// UpdateTime is when this version was stored.
	UpdateTime time.Time
	// Deleted marks a tombstone version, stored by Delete.
	Deleted bool
	// RollbackOf is, for a version stored by Rollback, the version whose
	// source it restored; 0 otherwise.
	RollbackOf int64
}

// Errors of the Registry that callers branch on. Every other error is a
// failure to reach Redis, worth retrying.
var (
	// ErrRulesetNotFound: no ruleset of that name, or it was deleted.
	ErrRulesetNotFound = errors.New("ruleset not found")
	// ErrVersionNotFound: the ruleset exists but not that version (never
	// stored, or trimmed from the history: see Options.MaxVersions). It
	// matches ErrRulesetNotFound too (errors.Is).
	ErrVersionNotFound = fmt.Errorf("version not found: %w", ErrRulesetNotFound)
	// ErrInvalidName: not a ruleset name (a letter or digit, then letters,
	// digits, '_', '.' and '-'; at most MaxRulesetNameBytes).
	ErrInvalidName = errors.New("invalid ruleset name")
	// ErrDeletedVersion: Rollback was asked to restore a deletion.
	ErrDeletedVersion = errors.New("ruleset version is a deletion")
	// ErrNoPreviousVersion: Rollback to the previous version of a ruleset
	// that has none (see Rollback).
	ErrNoPreviousVersion = errors.New("no previous version to roll back to")
)

// MaxRulesetNameBytes bounds a ruleset name, which is part of Redis keys
// and REST paths.
const MaxRulesetNameBytes = 256

// Defaults of Options and of the page sizes.
const (
	DefaultRegistryKeyPrefix = "shrike"
	DefaultPageSize          = 50
	MaxPageSize              = 1000
	// DefaultMaxVersions is how many versions of a ruleset the registry
	// keeps by default: months of history for a ruleset changed daily,
	// at most ~100 MiB for one ruleset at the 1 MiB source limit.
	DefaultMaxVersions = 100
	// MinMaxVersions is the least MaxVersions: the current version and
	// the one before it, which a deletion leaves for the rollback that
	// undoes it.
	MinMaxVersions = 2
)

// registryPoll is how often Watch reads the change counter besides
// listening for change messages, so that a message lost to a reconnect
// delays a change by at most this.
const registryPoll = 500 * time.Millisecond

// Options configure a Registry. Zero values are the documented
// defaults.
type Options struct {
	// Client is the Redis (standalone or Cluster) holding the registry.
	// Required. The Registry does not close it.
	Client redis.UniversalClient
	// KeyPrefix starts every key of the registry. Default
	// DefaultRegistryKeyPrefix. It must not contain '{' or '}'.
	KeyPrefix string
	// Logger receives Watch's Redis trouble. Default: discard.
	Logger *slog.Logger
	// Clock stamps the versions. Default time.Now.
	Clock func() time.Time
	// CompileOptions are the limits every stored source is compiled under.
	CompileOptions rules.CompileOptions
	// MaxSourceBytes rejects larger sources; it overrides
	// CompileOptions.MaxSourceBytes when set. Default: the rules package's
	// (1 MiB).
	MaxSourceBytes int
	// MaxVersions bounds the history of each ruleset: every change that
	// stores a version deletes the oldest ones beyond this many, in the
	// same script. The current version, and the one before a deletion,
	// always stay. Default DefaultMaxVersions; at least MinMaxVersions.
	MaxVersions int
}

// Registry keeps rulesets and their history in Redis so that every
// instance sees the same set (docs/operations.md). It is safe for concurrent use,
// also by several instances on one Redis.
//
// Layout, every key under one hash tag so that each change is one atomic
// script on one Cluster slot (the registry is small and rarely written; a
// slot of its own costs nothing):
//
//	<prefix>:{rules}:names      ZSET   live (not deleted) ruleset names, score 0, by name
//	<prefix>:{rules}:rs:<name>  HASH   n: latest version; d: "1" when it is a deletion;
//	                                   o: oldest version kept (absent: 1);
//	                                   c: create time of the current life (Unix ns);
//	                                   s:<v>: source of version v;
//	                                   m:<v>: "<update ns> <create ns> <deleted 0|1> <rollback of>"
//	<prefix>:{rules}:shadows    ZSET   names of the rulesets with a shadow, score 0
//	<prefix>:{rules}:sh:<name>  HASH   the shadow of a live ruleset (shadow.go): s: source;
//	                                   v: live version it was put against; t: start (Unix ns)
//	<prefix>:{rules}:changes    STRING counter, incremented by every change, shadows' too
//	<prefix>:rules:changes      channel: the counter's new value, published by every change
//
// (written with the literal tag {<prefix>:rules}.) Versions are never
// rewritten, so that a version read once stays what it was; the oldest go
// when the history exceeds Options.MaxVersions.
type Registry struct {
	client  redis.UniversalClient
	log     *slog.Logger
	clock   func() time.Time
	copts   rules.CompileOptions
	keep    int // Options.MaxVersions
	names   string
	changes string
	channel string
	rsKey   string // prefix of the per-ruleset hashes
	shKey   string // prefix of the per-ruleset shadow hashes
	shadows string
	poll    time.Duration // Watch's counter reads; tests lengthen it
	prefix  string
	decls   declCache // ListDecls
}

// New returns a Registry over opts.Client. It does not connect.
func New(opts Options) (*Registry, error) {
	if opts.Client == nil {
		return nil, errors.New("registry: no redis client")
	}
	prefix := cmp.Or(opts.KeyPrefix, DefaultRegistryKeyPrefix)
	if strings.ContainsAny(prefix, "{}") {
		return nil, fmt.Errorf("registry: key prefix %q: must not contain '{' or '}'", prefix)
	}
	if opts.MaxSourceBytes < 0 {
		return nil, fmt.Errorf("registry: max source bytes %d: negative", opts.MaxSourceBytes)
	}
	if opts.MaxVersions == 0 {
		opts.MaxVersions = DefaultMaxVersions
	}
	if opts.MaxVersions < MinMaxVersions {
		return nil, fmt.Errorf("registry: max versions %d: at least %d (the current version and the one a deletion leaves for rollback)", opts.MaxVersions, MinMaxVersions)
	}
	copts := opts.CompileOptions
	if opts.MaxSourceBytes > 0 {
		copts.MaxSourceBytes = opts.MaxSourceBytes
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	tag := "{" + prefix + ":rules}"
	return &Registry{
		client:  opts.Client,
		log:     opts.Logger,
		clock:   opts.Clock,
		copts:   copts,
		keep:    opts.MaxVersions,
		names:   tag + ":names",
		changes: tag + ":changes",
		channel: prefix + ":rules:changes",
		rsKey:   tag + ":rs:",
		shKey:   tag + ":sh:",
		shadows: tag + ":shadows",
		poll:    registryPoll,
		prefix:  prefix,
	}, nil
}

// rulesetNameRE is the rules package's ruleset name.
var rulesetNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

func checkName(name string) error {
	if len(name) > MaxRulesetNameBytes || !rulesetNameRE.MatchString(name) {
		return fmt.Errorf("%w %q: a letter or digit, then letters, digits, '_', '.' and '-', at most %d bytes", ErrInvalidName, name, MaxRulesetNameBytes)
	}
	return nil
}

// Compile parses, validates and compiles source as the ruleset name, as
// Put does before it stores anything: errors read `<name>.yaml:line:col:
// …`, and a `ruleset:` other than name is one of them. On invalid input
// the error is a rules.ErrorList.
func (r *Registry) Compile(name string, source []byte) (*rules.Compiled, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	file := name + ".yaml"
	c, err := rules.Load(file, source, r.copts)
	var list rules.ErrorList
	if err != nil && !errors.As(err, &list) {
		return nil, err
	}
	if e := nameMismatch(file, name, source); e != nil {
		list = append(list, e)
	}
	if c != nil {
		list = append(list, RequireTopic(c)...)
	}
	if len(list) > 1 {
		slices.SortStableFunc(list, func(a, b *rules.Error) int {
			return cmp.Or(cmp.Compare(a.Pos.Line, b.Pos.Line), cmp.Compare(a.Pos.Col, b.Pos.Col))
		})
	}
	if len(list) > 0 {
		return nil, list
	}
	return c, nil
}

// nameMismatch returns an error at the `ruleset:` value of source when it
// is a string other than name. A source that is not a YAML mapping is
// left to rules.Load to report.
func nameMismatch(file, name string, source []byte) *rules.Error {
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(source)).Decode(&doc); err != nil {
		return nil
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Value != "ruleset" || v.Kind != yaml.ScalarNode || v.Value == name {
			continue
		}
		return &rules.Error{
			Pos: rules.Pos{File: file, Line: v.Line, Col: v.Column},
			Msg: fmt.Sprintf("ruleset name %q differs from %q, the name it is stored under", v.Value, name),
		}
	}
	return nil
}

// RequireTopic returns the error of a ruleset that serve cannot run
// because it names no stream.topic, positioned at its `stream` field (or
// the document's start when it has none); nil when it names one. The
// registry refuses such a ruleset (Compile), and so does a --rules folder,
// while the offline commands take it: they read files, not topics.
func RequireTopic(c *rules.Compiled) rules.ErrorList {
	if c.Stream.Topic != "" {
		return nil
	}
	pos := rules.Pos{File: c.Pos.File, Line: 1, Col: 1}
	var doc yaml.Node
	if yaml.NewDecoder(bytes.NewReader(c.Source)).Decode(&doc) == nil {
		root := &doc
		if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
			root = root.Content[0]
		}
		if root.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(root.Content); i += 2 {
				if k := root.Content[i]; k.Value == "stream" {
					pos.Line, pos.Col = k.Line, k.Column
				}
			}
		}
	}
	return rules.ErrorList{{Pos: pos, Msg: "stream: no topic: serve needs the Kafka topic the rules read (only the offline check, test and run do without)"}}
}

// The one script that writes a version: it appends a version to a
// ruleset, keeps the names index and bumps and publishes the change
// counter, atomically, so that two instances writing at once get versions
// n and n+1. A deletion drops the ruleset's shadow with it; a promotion
// stores the shadow's source as a put does and drops the shadow, in the
// same script, so that no reader sees the new version beside the shadow
// it came from, nor the shadow gone without its version.
//
// It also trims the history: the versions older than the newest keep
// (ARGV[7]) are deleted, and o moves to the oldest kept, in batches that
// stay within Lua's limit on unpacked arguments.
//
// KEYS: the ruleset's hash, names, changes, the ruleset's shadow hash,
// shadows. ARGV: name, source, now (ns), mode (put | rollback | delete |
// promote), rollback-of, channel, keep, and for promote the start time
// (ns) of the shadow read, which must still be the one stored.
// Returns {version, changed (0|1), create ns}; version 0 when a delete or
// a promote found no live ruleset, -1 when a promote found another shadow
// or none. Times stay strings: Lua numbers are doubles.
var writeScript = redis.NewScript(`
local n = tonumber(redis.call('HGET', KEYS[1], 'n') or '0')
local live = n > 0 and redis.call('HGET', KEYS[1], 'd') ~= '1'
local mode = ARGV[4]
local created = ARGV[3]
if live then created = redis.call('HGET', KEYS[1], 'c') end
if mode == 'promote' then
  if not live then return {0, 0, ''} end
  if redis.call('HGET', KEYS[4], 't') ~= ARGV[8] then return {-1, 0, ''} end
  redis.call('DEL', KEYS[4])
  redis.call('ZREM', KEYS[5], ARGV[1])
  if redis.call('HGET', KEYS[1], 's:' .. n) == ARGV[2] then
    -- The live version already has the shadow's source: no new version,
    -- but the shadow is gone, which every instance must hear of.
    local seq = redis.call('INCR', KEYS[3])
    redis.call('PUBLISH', ARGV[6], seq)
    return {n, 0, created}
  end
end
if mode == 'delete' then
  if not live then return {0, 0, ''} end
  n = n + 1
  redis.call('HSET', KEYS[1], 'n', n, 'd', '1', 's:' .. n, '', 'm:' .. n, ARGV[3] .. ' ' .. created .. ' 1 0')
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('DEL', KEYS[4])
  redis.call('ZREM', KEYS[5], ARGV[1])
else
  if mode == 'put' and live and redis.call('HGET', KEYS[1], 's:' .. n) == ARGV[2] then
    return {n, 0, created}
  end
  n = n + 1
  redis.call('HSET', KEYS[1], 'n', n, 'd', '0', 'c', created, 's:' .. n, ARGV[2],
    'm:' .. n, ARGV[3] .. ' ' .. created .. ' 0 ' .. ARGV[5])
  redis.call('ZADD', KEYS[2], 0, ARGV[1])
end
local oldest = tonumber(redis.call('HGET', KEYS[1], 'o') or '1')
local keepFrom = n - tonumber(ARGV[7]) + 1
if keepFrom > oldest then
  local fields = {}
  for v = oldest, keepFrom - 1 do
    fields[#fields + 1] = 's:' .. v
    fields[#fields + 1] = 'm:' .. v
    if #fields >= 1000 then
      redis.call('HDEL', KEYS[1], unpack(fields))
      fields = {}
    end
  end
  if #fields > 0 then redis.call('HDEL', KEYS[1], unpack(fields)) end
  redis.call('HSET', KEYS[1], 'o', keepFrom)
end
local seq = redis.call('INCR', KEYS[3])
redis.call('PUBLISH', ARGV[6], seq)
return {n, 1, created}
`)

// write runs writeScript and returns the new (or, for an unchanged put,
// current) version. shadowStart is, for a promote, the start time of the
// shadow promoted (ShadowRecord.StartTime).
func (r *Registry) write(ctx context.Context, mode, name string, source []byte, rollbackOf int64, shadowStart time.Time) (RulesetRecord, bool, error) {
	now := r.clock()
	start := ""
	if mode == "promote" {
		start = strconv.FormatInt(shadowStart.UnixNano(), 10)
	}
	res, err := writeScript.Run(ctx, r.client,
		[]string{r.rsKey + name, r.names, r.changes, r.shKey + name, r.shadows},
		name, source, strconv.FormatInt(now.UnixNano(), 10), mode, strconv.FormatInt(rollbackOf, 10), r.channel, r.keep, start,
	).Slice()
	if err != nil {
		return RulesetRecord{}, false, err
	}
	if len(res) != 3 {
		return RulesetRecord{}, false, fmt.Errorf("unexpected script reply %v", res)
	}
	v, _ := res[0].(int64)
	changed, _ := res[1].(int64)
	cs, _ := res[2].(string)
	switch v {
	case 0:
		return RulesetRecord{}, false, ErrRulesetNotFound
	case -1:
		return RulesetRecord{}, false, ErrShadowReplaced
	}
	created, _ := strconv.ParseInt(cs, 10, 64)
	rec := RulesetRecord{
		Name:       name,
		Version:    v,
		CreateTime: time.Unix(0, created),
		UpdateTime: now,
		Deleted:    mode == "delete",
	}
	if mode != "delete" {
		rec.Source = source
	}
	if mode == "rollback" {
		rec.RollbackOf = rollbackOf
	}
	if changed == 0 {
		// The current version already holds this source: it is returned as
		// stored.
		cur, err := r.Get(ctx, name, v)
		return cur, false, err
	}
	return rec, true, nil
}

// Put validates and compiles source as the ruleset name (see Compile) and
// stores it as the next version. On invalid input it returns the
// rules.ErrorList and stores nothing. Putting the source of the current
// version again stores nothing and returns that version, so that a retried
// Put, or every instance loading the same folder, makes one version.
func (r *Registry) Put(ctx context.Context, name string, source []byte) (RulesetRecord, error) {
	if _, err := r.Compile(name, source); err != nil {
		return RulesetRecord{}, err
	}
	rec, _, err := r.write(ctx, "put", name, source, 0, time.Time{})
	if err != nil {
		return RulesetRecord{}, fmt.Errorf("registry: put %q: %w", name, err)
	}
	return rec, nil
}

// Get returns version of the ruleset name, or its current version when
// version is 0. The current version of a deleted ruleset is
// ErrRulesetNotFound; an earlier version of it is still returned, as is a
// deletion asked for by number (Deleted set).
func (r *Registry) Get(ctx context.Context, name string, version int64) (RulesetRecord, error) {
	if err := checkName(name); err != nil {
		return RulesetRecord{}, err
	}
	key := r.rsKey + name
	head, err := r.client.HMGet(ctx, key, "n", "d", "o").Result()
	if err != nil {
		return RulesetRecord{}, fmt.Errorf("registry: get %q: %w", name, err)
	}
	n, oldest := int64Field(head[0]), max(1, int64Field(head[2]))
	switch {
	case n == 0:
		return RulesetRecord{}, fmt.Errorf("%w: %q", ErrRulesetNotFound, name)
	case version == 0 && head[1] == "1":
		return RulesetRecord{}, fmt.Errorf("%w: %q was deleted", ErrRulesetNotFound, name)
	case version == 0:
		version = n
	case version < 0 || version > n:
		return RulesetRecord{}, fmt.Errorf("%w: %q has no version %d", ErrVersionNotFound, name, version)
	case version < oldest:
		return RulesetRecord{}, r.trimmed(name, version, oldest)
	}
	recs, err := r.versions(ctx, name, []int64{version})
	if err != nil {
		return RulesetRecord{}, fmt.Errorf("registry: get %q: %w", name, err)
	}
	return recs[0], nil
}

// trimmed is the error of a version the history no longer holds.
func (r *Registry) trimmed(name string, version, oldest int64) error {
	return fmt.Errorf("%w: %q version %d was trimmed from the history, which keeps the newest %d versions of a ruleset (rules.max_versions); the oldest kept is version %d",
		ErrVersionNotFound, name, version, r.keep, oldest)
}

// versions reads the given versions of a ruleset, which must exist.
func (r *Registry) versions(ctx context.Context, name string, vs []int64) ([]RulesetRecord, error) {
	return r.readVersions(ctx, name, vs, true)
}

// readVersions reads the given versions of a ruleset, which must exist;
// without source, their metadata only (Source nil).
func (r *Registry) readVersions(ctx context.Context, name string, vs []int64, source bool) ([]RulesetRecord, error) {
	fields := make([]string, 0, 2*len(vs))
	for _, v := range vs {
		n := strconv.FormatInt(v, 10)
		if source {
			fields = append(fields, "s:"+n)
		}
		fields = append(fields, "m:"+n)
	}
	vals, err := r.client.HMGet(ctx, r.rsKey+name, fields...).Result()
	if err != nil {
		return nil, err
	}
	out := make([]RulesetRecord, len(vs))
	for i, v := range vs {
		src, meta := any(""), vals[i]
		if source {
			src, meta = vals[2*i], vals[2*i+1]
		}
		rec, err := decodeVersion(name, v, src, meta)
		if err != nil {
			return nil, err
		}
		if !source {
			rec.Source = nil
		}
		out[i] = rec
	}
	return out, nil
}

// decodeVersion makes a record of the fields s:<v> and m:<v>.
func decodeVersion(name string, v int64, src, meta any) (RulesetRecord, error) {
	s, ok1 := src.(string)
	m, ok2 := meta.(string)
	f := strings.Fields(m)
	if !ok1 || !ok2 || len(f) != 4 {
		return RulesetRecord{}, fmt.Errorf("ruleset %q version %d: missing or corrupt in redis", name, v)
	}
	var nums [4]int64
	for i, x := range f {
		n, err := strconv.ParseInt(x, 10, 64)
		if err != nil {
			return RulesetRecord{}, fmt.Errorf("ruleset %q version %d: corrupt metadata %q", name, v, m)
		}
		nums[i] = n
	}
	rec := RulesetRecord{
		Name:       name,
		Version:    v,
		UpdateTime: time.Unix(0, nums[0]),
		CreateTime: time.Unix(0, nums[1]),
		Deleted:    nums[2] == 1,
		RollbackOf: nums[3],
	}
	if !rec.Deleted {
		rec.Source = []byte(s)
	}
	return rec, nil
}

func int64Field(v any) int64 {
	s, _ := v.(string)
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}

// List returns a page of the rulesets that are not deleted, by name, each
// at its current version, and the token of the next page ("" after the
// last). pageSize 0 means DefaultPageSize; it is capped at MaxPageSize.
func (r *Registry) List(ctx context.Context, pageSize int, pageToken string) ([]RulesetRecord, string, error) {
	size := pageSizeOf(pageSize)
	from := "-"
	if pageToken != "" {
		after, err := pagetoken.Decode(pageToken, "rulesets", "")
		if err != nil {
			return nil, "", err
		}
		from = "(" + after
	}
	names, err := r.client.ZRangeByLex(ctx, r.names, &redis.ZRangeBy{Min: from, Max: "+", Count: int64(size) + 1}).Result()
	if err != nil {
		return nil, "", fmt.Errorf("registry: list: %w", err)
	}
	next := ""
	if len(names) > size {
		names = names[:size]
		next = pagetoken.Encode("rulesets", "", names[len(names)-1])
	}
	recs, err := r.current(ctx, names)
	if err != nil {
		return nil, "", fmt.Errorf("registry: list: %w", err)
	}
	return recs, next, nil
}

// current reads the current versions of names, leaving out those deleted
// since they were listed.
func (r *Registry) current(ctx context.Context, names []string) ([]RulesetRecord, error) {
	heads := make([]*redis.SliceCmd, len(names))
	_, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, name := range names {
			heads[i] = p.HMGet(ctx, r.rsKey+name, "n", "d")
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	type ver struct {
		name string
		cmd  *redis.SliceCmd
		v    int64
	}
	var vers []ver
	_, err = r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, name := range names {
			h := heads[i].Val()
			n := int64Field(h[0])
			if n == 0 || h[1] == "1" {
				continue
			}
			s := strconv.FormatInt(n, 10)
			vers = append(vers, ver{name, p.HMGet(ctx, r.rsKey+name, "s:"+s, "m:"+s), n})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]RulesetRecord, 0, len(vers))
	for _, v := range vers {
		vals := v.cmd.Val()
		rec, err := decodeVersion(v.name, v.v, vals[0], vals[1])
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	return out, nil
}

// Versions returns a page of the stored versions of a ruleset, newest
// first, deletions included, with their sources, and the token of the next
// page. A deleted ruleset keeps its history.
func (r *Registry) Versions(ctx context.Context, name string, pageSize int, pageToken string) ([]RulesetRecord, string, error) {
	return r.ListVersions(ctx, name, VersionQuery{PageSize: pageSize, PageToken: pageToken, Source: true})
}

// VersionQuery selects a page of ListVersions.
type VersionQuery struct {
	// PageSize 0 means DefaultPageSize; it is capped at MaxPageSize.
	PageSize  int
	PageToken string
	// Source reads the versions' sources too; without it Source is nil
	// and Redis sends none.
	Source bool
	// MaxSourceBytes, with Source, ends the page before the version whose
	// source would take the page's sources over this many bytes (a page
	// holds one version at least), so that a page of large sources fits a
	// response. 0: no bound.
	MaxSourceBytes int
}

// ListVersions returns a page of the stored versions of a ruleset, newest
// first, deletions included, and the token of the next page ("" after the
// oldest version kept). A deleted ruleset keeps its history.
func (r *Registry) ListVersions(ctx context.Context, name string, q VersionQuery) ([]RulesetRecord, string, error) {
	if err := checkName(name); err != nil {
		return nil, "", err
	}
	size := pageSizeOf(q.PageSize)
	head, err := r.client.HMGet(ctx, r.rsKey+name, "n", "o").Result()
	if err != nil {
		return nil, "", fmt.Errorf("registry: versions of %q: %w", name, err)
	}
	n, oldest := int64Field(head[0]), max(1, int64Field(head[1]))
	if n == 0 {
		return nil, "", fmt.Errorf("%w: %q", ErrRulesetNotFound, name)
	}
	hi := n
	if q.PageToken != "" {
		last, err := pagetoken.Decode(q.PageToken, "versions", name)
		if err != nil {
			return nil, "", err
		}
		v, err := strconv.ParseInt(last, 10, 64)
		if err != nil || v < 2 || v > n+1 {
			return nil, "", pagetoken.Invalid(q.PageToken)
		}
		hi = v - 1
	}
	if hi < oldest {
		// The rest of the history was trimmed since the last page.
		return nil, "", nil
	}
	lo := max(oldest, hi-int64(size)+1)
	if q.Source && q.MaxSourceBytes > 0 {
		if lo, err = r.fitSources(ctx, name, hi, lo, q.MaxSourceBytes); err != nil {
			return nil, "", fmt.Errorf("registry: versions of %q: %w", name, err)
		}
	}
	vs := make([]int64, 0, hi-lo+1)
	for v := hi; v >= lo; v-- {
		vs = append(vs, v)
	}
	recs, err := r.readVersions(ctx, name, vs, q.Source)
	if err != nil {
		return nil, "", fmt.Errorf("registry: versions of %q: %w", name, err)
	}
	next := ""
	if lo > oldest {
		next = pagetoken.Encode("versions", name, strconv.FormatInt(lo, 10))
	}
	return recs, next, nil
}

// fitSources returns the lowest version from hi down to lo whose source,
// with those of the versions above it, stays within most bytes; hi
// itself at least.
func (r *Registry) fitSources(ctx context.Context, name string, hi, lo int64, most int) (int64, error) {
	lens := make([]*redis.IntCmd, 0, hi-lo+1)
	_, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for v := hi; v >= lo; v-- {
			lens = append(lens, p.HStrLen(ctx, r.rsKey+name, "s:"+strconv.FormatInt(v, 10)))
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	total := int64(0)
	for i, c := range lens {
		total += c.Val()
		if i > 0 && total > int64(most) {
			return hi - int64(i) + 1, nil
		}
	}
	return lo, nil
}

// Delete deletes the ruleset name: a tombstone version is stored, every
// instance stops its rules, and the history stays for Versions and
// Rollback. A later Put creates the ruleset again, numbering on.
func (r *Registry) Delete(ctx context.Context, name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	if _, _, err := r.write(ctx, "delete", name, nil, 0, time.Time{}); err != nil {
		if errors.Is(err, ErrRulesetNotFound) {
			return fmt.Errorf("%w: %q", ErrRulesetNotFound, name)
		}
		return fmt.Errorf("registry: delete %q: %w", name, err)
	}
	return nil
}

// Rollback stores the source of an earlier version as a new version (the
// history only grows) and returns it. The source is compiled again first,
// under today's limits; a deleted ruleset comes back this way.
//
// Version 0 is the previous version, as with `kubectl rollout undo` and
// `helm rollback`: the newest version before the current one that is not
// a deletion and has another source (for a deleted ruleset, the version
// it had when deleted), so that two rollbacks in a row go back and forth.
// A ruleset without one is ErrNoPreviousVersion.
func (r *Registry) Rollback(ctx context.Context, name string, version int64) (RulesetRecord, error) {
	var old RulesetRecord
	var err error
	switch {
	case version < 0:
		return RulesetRecord{}, fmt.Errorf("%w: %q has no version %d", ErrVersionNotFound, name, version)
	case version == 0:
		old, err = r.previous(ctx, name)
		version = old.Version
	default:
		old, err = r.Get(ctx, name, version)
	}
	if err != nil {
		return RulesetRecord{}, err
	}
	if old.Deleted {
		return RulesetRecord{}, fmt.Errorf("%w: %q version %d", ErrDeletedVersion, name, version)
	}
	if _, err := r.Compile(name, old.Source); err != nil {
		return RulesetRecord{}, err
	}
	rec, _, err := r.write(ctx, "rollback", name, old.Source, version, time.Time{})
	if err != nil {
		return RulesetRecord{}, fmt.Errorf("registry: roll back %q to version %d: %w", name, version, err)
	}
	return rec, nil
}

// previous is the version Rollback with no version restores: the newest
// one before the current one that is not a deletion and whose source
// differs from the current one's (a Put of the current source makes no
// version, so that rolling back twice goes back and forth).
func (r *Registry) previous(ctx context.Context, name string) (RulesetRecord, error) {
	if err := checkName(name); err != nil {
		return RulesetRecord{}, err
	}
	head, err := r.client.HMGet(ctx, r.rsKey+name, "n", "o").Result()
	if err != nil {
		return RulesetRecord{}, fmt.Errorf("registry: versions of %q: %w", name, err)
	}
	n, oldest := int64Field(head[0]), max(1, int64Field(head[1]))
	if n == 0 {
		return RulesetRecord{}, fmt.Errorf("%w: %q", ErrRulesetNotFound, name)
	}
	if n == 1 {
		return RulesetRecord{}, fmt.Errorf("%w: %q has only version 1", ErrNoPreviousVersion, name)
	}
	cur, err := r.versions(ctx, name, []int64{n})
	if err != nil {
		return RulesetRecord{}, fmt.Errorf("registry: versions of %q: %w", name, err)
	}
	// A page of versions per call: a long history of deletions and equal
	// sources is walked in few round trips.
	for hi := n - 1; hi >= oldest; hi -= DefaultPageSize {
		vs := make([]int64, 0, DefaultPageSize)
		for v := hi; v >= oldest && v > hi-DefaultPageSize; v-- {
			vs = append(vs, v)
		}
		recs, err := r.versions(ctx, name, vs)
		if err != nil {
			return RulesetRecord{}, fmt.Errorf("registry: versions of %q: %w", name, err)
		}
		for _, rec := range recs {
			if !rec.Deleted && (cur[0].Deleted || !bytes.Equal(rec.Source, cur[0].Source)) {
				return rec, nil
			}
		}
	}
	if oldest > 1 {
		return RulesetRecord{}, fmt.Errorf("%w: %q has no version before version %d with another source among the %d versions kept (rules.max_versions)", ErrNoPreviousVersion, name, n, r.keep)
	}
	return RulesetRecord{}, fmt.Errorf("%w: %q has no version before version %d with another source", ErrNoPreviousVersion, name, n)
}

// Set is the registry at one change: every live ruleset at its current
// version, by name, and the shadows of those that have one, by name.
type Set struct {
	Rulesets []RulesetRecord
	Shadows  []ShadowRecord
}

// snapshot returns the registry's Set, consistent with one value of the
// change counter, and that value.
func (r *Registry) snapshot(ctx context.Context) (Set, int64, error) {
	for {
		before, err := r.seq(ctx)
		if err != nil {
			return Set{}, 0, err
		}
		names, err := r.client.ZRangeByLex(ctx, r.names, &redis.ZRangeBy{Min: "-", Max: "+"}).Result()
		if err != nil {
			return Set{}, 0, err
		}
		recs, err := r.current(ctx, names)
		if err != nil {
			return Set{}, 0, err
		}
		shadows, err := r.allShadows(ctx)
		if err != nil {
			return Set{}, 0, err
		}
		after, err := r.seq(ctx)
		if err != nil {
			return Set{}, 0, err
		}
		// Every change bumps the counter in the script that makes it: an
		// unchanged counter means no change landed in between.
		if after == before {
			return Set{Rulesets: recs, Shadows: shadows}, after, nil
		}
		if err := ctx.Err(); err != nil {
			return Set{}, 0, err
		}
	}
}

func (r *Registry) seq(ctx context.Context) (int64, error) {
	n, err := r.client.Get(ctx, r.changes).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	return n, err
}

// Watch calls fn with the complete current Set (the rulesets not deleted
// and their shadows) at start and after every change made by any instance, within a
// second: it listens for the change messages and also reads the change
// counter every half second, which catches a message lost to a
// reconnect. Changes that land while fn runs are coalesced into the next
// call. fn runs on Watch's goroutine. While Redis cannot be reached, Watch
// logs it and keeps trying; it returns nil when ctx ends.
func (r *Registry) Watch(ctx context.Context, fn func(Set)) error {
	sub := r.client.Subscribe(ctx, r.channel)
	defer func() { _ = sub.Close() }()
	msgs := sub.Channel()
	tick := time.NewTicker(r.poll)
	defer tick.Stop()
	last := int64(-1)
	failing := false
	for {
		seq, err := r.seq(ctx)
		if err == nil && seq != last {
			var set Set
			set, seq, err = r.snapshot(ctx)
			if err == nil {
				last = seq
				fn(set)
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		switch {
		case err != nil && !failing:
			failing = true
			r.log.Warn("registry: cannot read the rulesets; retrying", "err", err)
		case err == nil && failing:
			failing = false
			r.log.Info("registry: reading the rulesets again")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-msgs:
		case <-tick.C:
		}
	}
}

func pageSizeOf(n int) int {
	switch {
	case n <= 0:
		return DefaultPageSize
	case n > MaxPageSize:
		return MaxPageSize
	default:
		return n
	}
}

// Page tokens are base64 of "<kind>\x00<scope>\x00<last>": the last name
// (List) or version (Versions) returned, bound to the call they continue.
