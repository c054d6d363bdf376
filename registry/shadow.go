package registry

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// ShadowRecord is the shadow of a ruleset: a candidate source that every
// instance runs beside the live version (rules.Compiled.Shadow), so that
// the two versions' alerts can be compared before the candidate goes live
// (docs/operations.md#shadow-versions). A ruleset has at most one.
type ShadowRecord struct {
	Name string
	// Source is the candidate's YAML.
	Source []byte
	// LiveVersion is the ruleset's version when the shadow was put: the
	// live version it was meant to be compared with.
	LiveVersion int64
	// StartTime is when the shadow was put, on the clock of the instance
	// that stored it: its alerts are compared from then on.
	StartTime time.Time
}

// Errors of the shadow methods that callers branch on.
var (
	// ErrShadowNotFound: the ruleset has no shadow (or does not exist).
	ErrShadowNotFound = errors.New("shadow not found")
	// ErrShadowReplaced: PromoteShadow found another shadow than the one
	// it compiled (a PutShadow or DeleteShadow landed in between); nothing
	// changed, and promoting again promotes the shadow there is now.
	ErrShadowReplaced = errors.New("shadow replaced while it was promoted")
)

// putShadowScript stores the shadow of a live ruleset, bumps and publishes
// the change counter. The source of the shadow there is already stores
// nothing (a retried put keeps the start time, as Put keeps the version).
//
// KEYS: the ruleset's hash, its shadow hash, shadows, changes. ARGV: name,
// source, now (ns), channel. Returns {live version, changed (0|1), start
// ns}; live version 0 when the ruleset is not live.
var putShadowScript = redis.NewScript(`
local n = tonumber(redis.call('HGET', KEYS[1], 'n') or '0')
if n == 0 or redis.call('HGET', KEYS[1], 'd') == '1' then return {0, 0, ''} end
local cur = redis.call('HMGET', KEYS[2], 's', 'v', 't')
if cur[1] == ARGV[2] then return {tonumber(cur[2]), 0, cur[3]} end
redis.call('HSET', KEYS[2], 's', ARGV[2], 'v', n, 't', ARGV[3])
redis.call('ZADD', KEYS[3], 0, ARGV[1])
local seq = redis.call('INCR', KEYS[4])
redis.call('PUBLISH', ARGV[4], seq)
return {n, 1, ARGV[3]}
`)

// deleteShadowScript drops the shadow of a ruleset, bumps and publishes
// the change counter. KEYS: the shadow hash, shadows, changes. ARGV: name,
// channel. Returns 1, or 0 when there was no shadow.
var deleteShadowScript = redis.NewScript(`
if redis.call('DEL', KEYS[1]) == 0 then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
local seq = redis.call('INCR', KEYS[3])
redis.call('PUBLISH', ARGV[2], seq)
return 1
`)

// PutShadow validates and compiles source as the ruleset name (Compile:
// the limits, errors and name check of Put) and stores it as the shadow of
// the live ruleset name, replacing its shadow if it has one; every
// instance then runs it beside the live version. A ruleset that does not
// exist, or is deleted, is ErrRulesetNotFound; an invalid source is the
// rules.ErrorList. Putting the source of the current shadow again changes
// nothing and returns it as stored, start time included.
func (r *Registry) PutShadow(ctx context.Context, name string, source []byte) (ShadowRecord, error) {
	if err := checkName(name); err != nil {
		return ShadowRecord{}, err
	}
	// Before compiling, which costs more than this read: a shadow of
	// nothing is refused for what it is, not for its source. The script
	// checks again.
	head, err := r.client.HMGet(ctx, r.rsKey+name, "n", "d").Result()
	if err != nil {
		return ShadowRecord{}, fmt.Errorf("registry: put shadow of %q: %w", name, err)
	}
	if int64Field(head[0]) == 0 || head[1] == "1" {
		return ShadowRecord{}, r.noLive(name)
	}
	if _, err := r.Compile(name, source); err != nil {
		return ShadowRecord{}, err
	}
	now := r.clock()
	res, err := putShadowScript.Run(ctx, r.client,
		[]string{r.rsKey + name, r.shKey + name, r.shadows, r.changes},
		name, source, strconv.FormatInt(now.UnixNano(), 10), r.channel,
	).Slice()
	if err != nil {
		return ShadowRecord{}, fmt.Errorf("registry: put shadow of %q: %w", name, err)
	}
	if len(res) != 3 {
		return ShadowRecord{}, fmt.Errorf("registry: put shadow of %q: unexpected script reply %v", name, res)
	}
	live, _ := res[0].(int64)
	start, _ := res[2].(string)
	if live == 0 {
		return ShadowRecord{}, r.noLive(name)
	}
	ns, err := strconv.ParseInt(start, 10, 64)
	if err != nil {
		return ShadowRecord{}, fmt.Errorf("registry: shadow of %q: corrupt start time %q in redis", name, start)
	}
	return ShadowRecord{Name: name, Source: source, LiveVersion: live, StartTime: time.Unix(0, ns)}, nil
}

// noLive is the error of a shadow asked of a ruleset that is not live.
func (r *Registry) noLive(name string) error {
	return fmt.Errorf("%w: %q: a shadow runs beside a live ruleset; put the ruleset first", ErrRulesetNotFound, name)
}

// GetShadow returns the shadow of the ruleset name; ErrShadowNotFound when
// it has none.
func (r *Registry) GetShadow(ctx context.Context, name string) (ShadowRecord, error) {
	if err := checkName(name); err != nil {
		return ShadowRecord{}, err
	}
	vals, err := r.client.HMGet(ctx, r.shKey+name, "s", "v", "t").Result()
	if err != nil {
		return ShadowRecord{}, fmt.Errorf("registry: get shadow of %q: %w", name, err)
	}
	return decodeShadow(name, vals)
}

// decodeShadow makes a record of the fields s, v and t of a shadow hash.
func decodeShadow(name string, vals []any) (ShadowRecord, error) {
	if len(vals) != 3 || vals[0] == nil {
		return ShadowRecord{}, fmt.Errorf("%w: ruleset %q has no shadow", ErrShadowNotFound, name)
	}
	src, ok := vals[0].(string)
	live, err1 := strconv.ParseInt(fmt.Sprint(vals[1]), 10, 64)
	start, err2 := strconv.ParseInt(fmt.Sprint(vals[2]), 10, 64)
	if !ok || err1 != nil || err2 != nil {
		return ShadowRecord{}, fmt.Errorf("registry: shadow of %q: missing or corrupt in redis", name)
	}
	return ShadowRecord{Name: name, Source: []byte(src), LiveVersion: live, StartTime: time.Unix(0, start)}, nil
}

// DeleteShadow drops the shadow of the ruleset name: every instance stops
// it and drops its partial matches. ErrShadowNotFound when it has none.
func (r *Registry) DeleteShadow(ctx context.Context, name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	n, err := deleteShadowScript.Run(ctx, r.client, []string{r.shKey + name, r.shadows, r.changes}, name, r.channel).Int64()
	if err != nil {
		return fmt.Errorf("registry: delete shadow of %q: %w", name, err)
	}
	if n == 0 {
		return fmt.Errorf("%w: ruleset %q has no shadow", ErrShadowNotFound, name)
	}
	return nil
}

// PromoteShadow stores the source of the shadow of the ruleset name as its
// next version, as Put does (compiled again first, under today's limits),
// and drops the shadow, in one script: either both happen or neither. It
// returns the ruleset's new version (or, when the live version already had
// the shadow's source, the current one: no version is stored then, and the
// shadow is dropped all the same). ErrShadowNotFound when there is no
// shadow; ErrShadowReplaced when another client replaced or deleted it
// between this call's read and its write.
func (r *Registry) PromoteShadow(ctx context.Context, name string) (RulesetRecord, error) {
	sh, err := r.GetShadow(ctx, name)
	if err != nil {
		return RulesetRecord{}, err
	}
	if _, err := r.Compile(name, sh.Source); err != nil {
		return RulesetRecord{}, err
	}
	rec, _, err := r.write(ctx, "promote", name, sh.Source, 0, sh.StartTime)
	switch {
	case errors.Is(err, ErrRulesetNotFound):
		return RulesetRecord{}, r.noLive(name)
	case errors.Is(err, ErrShadowReplaced):
		return RulesetRecord{}, fmt.Errorf("%w: ruleset %q: promote again to promote the shadow it has now", ErrShadowReplaced, name)
	case err != nil:
		return RulesetRecord{}, fmt.Errorf("registry: promote the shadow of %q: %w", name, err)
	}
	return rec, nil
}

// allShadows reads every shadow, by name.
func (r *Registry) allShadows(ctx context.Context) ([]ShadowRecord, error) {
	names, err := r.client.ZRangeByLex(ctx, r.shadows, &redis.ZRangeBy{Min: "-", Max: "+"}).Result()
	if err != nil || len(names) == 0 {
		return nil, err
	}
	cmds := make([]*redis.SliceCmd, len(names))
	_, err = r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, name := range names {
			cmds[i] = p.HMGet(ctx, r.shKey+name, "s", "v", "t")
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]ShadowRecord, 0, len(names))
	for i, name := range names {
		sh, err := decodeShadow(name, cmds[i].Val())
		if errors.Is(err, ErrShadowNotFound) {
			continue // dropped since the names were read; the counter tells
		}
		if err != nil {
			return nil, err
		}
		out = append(out, sh)
	}
	return out, nil
}
