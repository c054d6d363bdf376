package state

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Options configures a Redis store. Zero values are the documented
// defaults.
type Options struct {
	// Addrs is the address (host:port) of a standalone Redis, or several
	// seed addresses of a Redis Cluster. Required.
	Addrs []string
	// Cluster selects Redis Cluster with a single seed address (several
	// addresses always mean a Cluster).
	Cluster bool
	// Username and Password authenticate (ACL user, or Password alone for
	// requirepass).
	Username string
	Password string
	// DB is the database number of a standalone Redis; a Cluster has only
	// database 0.
	DB int
	// TLS, when set, connects with TLS.
	TLS *tls.Config
	// KeyPrefix starts every key Shrike writes (default "shrike"). It must
	// not contain '{' or '}', which would move the hash tag.
	KeyPrefix string
	// DialTimeout bounds connecting (default 5s).
	DialTimeout time.Duration
	// ReadTimeout bounds waiting for a reply, and writing a request
	// (default 5s). A deadline of the call's context applies as well.
	ReadTimeout time.Duration
	// PoolSize is the number of connections per Redis node (default 10
	// per CPU).
	PoolSize int
	// BatchSize is how many fields one HSET, HDEL or HMGET command carries
	// (default 1000). The commands of one commit or load are pipelined, so
	// this bounds the size of a command, not the number of round trips
	// (BenchmarkCommit measures the choice).
	BatchSize int
}

// Defaults of Options.
const (
	DefaultKeyPrefix   = "shrike"
	DefaultDialTimeout = 5 * time.Second
	DefaultReadTimeout = 5 * time.Second
	DefaultBatchSize   = 1000
)

// maxTxAttempts bounds the optimistic retries of a commit whose WATCHed
// checkpoint changed between reading and writing it. A second attempt
// normally settles it: the change was a newer owner's (ErrFenced).
const maxTxAttempts = 3

// Redis is a Store on Redis or Redis Cluster. Per partition it keeps up to
// four keys with one hash tag, so that they live in one Cluster slot:
//
//	<prefix>:{<group>/<topic>/<partition>}:keys   HASH   event key → encoded key state
//	<prefix>:{<group>/<topic>/<partition>}:cp     STRING the checkpoint (version byte first)
//	<prefix>:{<group>/<topic>/<partition>}:pend   STRING the pending checkpoint, while one is staged
//	<prefix>:{<group>/<topic>/<partition>}:pkeys  HASH   its staged key states; empty: the key is deleted
//
// ('%', '{' and '}' in the group and topic, and '/' in the topic, are
// written %25, %7B, %7D and %2F.) A commit is one MULTI/EXEC under WATCH
// of the checkpoint keys: the checkpoint's generation is read and compared
// in between, so a fenced commit writes nothing, and a newer owner's
// commit landing in between aborts the transaction, whose retry is fenced.
// (A Lua script carrying every field, the other way to get one atomic
// unit, measured about twice the cost per key of MULTI/EXEC in
// BenchmarkCommitLua.) Stage, Promote and Discard work the same way; only
// Promote runs a script, which moves the staged keys server-side. It is
// safe for concurrent use.
type Redis struct {
	client redis.UniversalClient
	prefix string
	batch  int
	// addrs, user and tls are the connection's, for Check's errors.
	addrs []string
	user  string
	tls   bool
	// beforeExec, when set (tests only), runs between the fencing check and
	// the transaction, where another owner's commit may slip in.
	beforeExec func()
}

// New returns a Redis store. It does not connect: the first call does (use
// Ping to check the connection).
func New(opts Options) (*Redis, error) {
	var errs []error
	if len(opts.Addrs) == 0 {
		errs = append(errs, errors.New("no address"))
	}
	for _, a := range opts.Addrs {
		if strings.TrimSpace(a) == "" {
			errs = append(errs, errors.New("empty address"))
			break
		}
	}
	cluster := opts.Cluster || len(opts.Addrs) > 1
	if cluster && opts.DB != 0 {
		errs = append(errs, fmt.Errorf("db %d: a Redis Cluster has only database 0", opts.DB))
	}
	if opts.DB < 0 {
		errs = append(errs, fmt.Errorf("db %d: negative", opts.DB))
	}
	if strings.ContainsAny(opts.KeyPrefix, "{}") {
		errs = append(errs, fmt.Errorf("key prefix %q: must not contain '{' or '}'", opts.KeyPrefix))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"dial timeout", opts.DialTimeout}, {"read timeout", opts.ReadTimeout}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s %v: negative", d.name, d.v))
		}
	}
	if opts.PoolSize < 0 {
		errs = append(errs, fmt.Errorf("pool size %d: negative", opts.PoolSize))
	}
	if opts.BatchSize < 0 {
		errs = append(errs, fmt.Errorf("batch size %d: negative", opts.BatchSize))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("redis state store: %w", errors.Join(errs...))
	}

	prefix := cmp.Or(opts.KeyPrefix, DefaultKeyPrefix)
	read := cmp.Or(opts.ReadTimeout, DefaultReadTimeout)
	client := redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs:         opts.Addrs,
		IsClusterMode: cluster,
		Username:      opts.Username,
		Password:      opts.Password,
		DB:            opts.DB,
		TLSConfig:     opts.TLS,
		DialTimeout:   cmp.Or(opts.DialTimeout, DefaultDialTimeout),
		ReadTimeout:   read,
		WriteTimeout:  read,
		// The engine passes deadlines it means: honour them on the socket.
		ContextTimeoutEnabled: true,
		PoolSize:              opts.PoolSize,
		ClientName:            "shrike",
	})
	return &Redis{
		client: client, prefix: prefix, batch: cmp.Or(opts.BatchSize, DefaultBatchSize),
		addrs: opts.Addrs, user: opts.Username, tls: opts.TLS != nil,
	}, nil
}

// Ping checks that Redis answers (a Cluster: one of its nodes), for
// readiness checks.
func (r *Redis) Ping(ctx context.Context) error {
	if err := r.client.Ping(ctx).Err(); err != nil {
		return wrapErr("ping redis", err)
	}
	return nil
}

// LoadCheckpoint returns the partition's last committed checkpoint, in any
// version an earlier Shrike wrote.
func (r *Redis) LoadCheckpoint(ctx context.Context, p PartitionID) (Checkpoint, bool, error) {
	_, cpKey := redisKeys(r.prefix, p)
	cp, ok, err := loadCheckpoint(ctx, r.client, cpKey)
	if err != nil {
		return Checkpoint{}, false, wrapErr("load checkpoint of "+partName(p), err)
	}
	return cp, ok, nil
}

// LoadKeys returns the stored states of the given keys, with one HMGET per
// BatchSize keys, all in one pipeline (one round trip).
func (r *Redis) LoadKeys(ctx context.Context, p PartitionID, keys []string) (map[string][]byte, error) {
	out := make(map[string][]byte, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	keysKey, _ := redisKeys(r.prefix, p)
	cmds := make([]*redis.SliceCmd, 0, (len(keys)+r.batch-1)/r.batch)
	_, err := r.client.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for i := 0; i < len(keys); i += r.batch {
			cmds = append(cmds, pipe.HMGet(ctx, keysKey, keys[i:min(i+r.batch, len(keys))]...))
		}
		return nil
	})
	if err != nil {
		return nil, wrapErr("load keys of "+partName(p), err)
	}
	for i, cmd := range cmds {
		for j, v := range cmd.Val() {
			if s, ok := v.(string); ok {
				out[keys[i*r.batch+j]] = []byte(s)
			}
		}
	}
	return out, nil
}

// LoadAll returns every stored key state of the partition, read with HSCAN
// so that a large hash does not block Redis. It is meant for tests and
// tools (checking what a crash left behind), not for the engine, which
// loads the keys it needs; a concurrent commit may or may not be seen.
func (r *Redis) LoadAll(ctx context.Context, p PartitionID) (map[string][]byte, error) {
	keysKey, _ := redisKeys(r.prefix, p)
	out := map[string][]byte{}
	var cursor uint64
	for {
		kv, next, err := r.client.HScan(ctx, keysKey, cursor, "*", int64(r.batch)).Result()
		if err != nil {
			return nil, wrapErr("load all keys of "+partName(p), err)
		}
		for i := 0; i+1 < len(kv); i += 2 {
			out[kv[i]] = []byte(kv[i+1])
		}
		if cursor = next; cursor == 0 {
			return out, nil
		}
	}
}

// Commit writes the changed key states, deletes the emptied keys (a key in
// both is deleted) and replaces the checkpoint in one MULTI/EXEC: HSET
// and HDEL commands of BatchSize fields each, then SET. Before it, under
// WATCH of the checkpoint and the pending checkpoint, both are read: a
// greater stored Generation than cp's fails the commit with ErrFenced, a
// pending checkpoint with ErrPending, and either writes nothing.
func (r *Redis) Commit(ctx context.Context, p PartitionID, put []KeyState, del []string, cp Checkpoint) error {
	keysKey, cpKey := redisKeys(r.prefix, p)
	pendKey, _ := redisPendingKeys(r.prefix, p)
	enc := appendCheckpoint(nil, cp)
	err := r.watchTx(ctx, func(tx *redis.Tx) error {
		if _, err := loadUnpended(ctx, tx, cpKey, pendKey, cp.Generation); err != nil {
			return err
		}
		return r.exec(ctx, tx, func(pipe redis.Pipeliner) {
			r.queueWrites(ctx, pipe, keysKey, put, del)
			pipe.Set(ctx, cpKey, enc, 0)
		})
	}, cpKey, pendKey)
	return r.txErr(ctx, "commit "+partName(p), err)
}

// Claim takes the partition over: it reads the last committed checkpoint
// and stores it again with the next generation in one transaction under
// WATCH, so that of two owners claiming at once each gets its own
// generation (the second retries on the first's write) and the earlier
// one is fenced; a read followed by a Commit would give both the same.
// The pending checkpoint, if any, is left for the new owner to resolve.
func (r *Redis) Claim(ctx context.Context, p PartitionID) (prev Checkpoint, ok bool, claimed Checkpoint, err error) {
	_, cpKey := redisKeys(r.prefix, p)
	err = r.watchTx(ctx, func(tx *redis.Tx) error {
		var err error
		if prev, ok, err = loadCheckpoint(ctx, tx, cpKey); err != nil {
			return err
		}
		claimed = nextClaim(prev, ok)
		return r.exec(ctx, tx, func(pipe redis.Pipeliner) {
			pipe.Set(ctx, cpKey, appendCheckpoint(nil, claimed), 0)
		})
	}, cpKey)
	if err != nil {
		return Checkpoint{}, false, Checkpoint{}, r.txErr(ctx, "claim "+partName(p), err)
	}
	return prev, ok, claimed, nil
}

// Stage writes the pending checkpoint and its key states beside the
// committed ones in one MULTI/EXEC: DEL of the staged-keys hash (a leftover
// of nothing, as a promotion or discard deletes it), HSET commands of
// BatchSize fields each, a deleted key staged as an empty value, then SET
// of the pending checkpoint. Under WATCH of the checkpoint and the pending
// checkpoint it checks first, writing nothing on failure: the stored
// Generation is not greater than pend's (ErrFenced), no checkpoint is
// pending (ErrPending), and pend.Seq follows the committed Seq. A key state
// must not be empty, as that stands for a deleted key.
func (r *Redis) Stage(ctx context.Context, p PartitionID, put []KeyState, del []string, pend Checkpoint) error {
	op := "stage " + partName(p)
	for _, ks := range put {
		if len(ks.State) == 0 {
			return fmt.Errorf("%s: key %q: empty state (a key without state is deleted, not staged)", op, ks.Key)
		}
	}
	_, cpKey := redisKeys(r.prefix, p)
	pendKey, pkeysKey := redisPendingKeys(r.prefix, p)
	staged := put
	if len(del) > 0 {
		staged = make([]KeyState, 0, len(put)+len(del))
		staged = append(staged, put...)
		for _, k := range del {
			staged = append(staged, KeyState{Key: k})
		}
	}
	enc := appendCheckpoint(nil, pend)
	err := r.watchTx(ctx, func(tx *redis.Tx) error {
		cp, err := loadUnpended(ctx, tx, cpKey, pendKey, pend.Generation)
		if err != nil {
			return err
		}
		if want := cp.Seq + 1; pend.Seq != want {
			return fmt.Errorf("sequence %d, want %d (the committed one's plus one)", pend.Seq, want)
		}
		return r.exec(ctx, tx, func(pipe redis.Pipeliner) {
			pipe.Del(ctx, pkeysKey)
			// A deleted key comes after the puts: a key in both is
			// deleted, as in Commit.
			r.queueWrites(ctx, pipe, pkeysKey, staged, nil)
			pipe.Set(ctx, pendKey, enc, 0)
		})
	}, cpKey, pendKey)
	return r.txErr(ctx, op, err)
}

// LoadPending returns the partition's pending checkpoint.
func (r *Redis) LoadPending(ctx context.Context, p PartitionID) (Checkpoint, bool, error) {
	pendKey, _ := redisPendingKeys(r.prefix, p)
	pend, ok, err := loadCheckpoint(ctx, r.client, pendKey)
	if err != nil {
		return Checkpoint{}, false, wrapErr("load pending checkpoint of "+partName(p), err)
	}
	return pend, ok, nil
}

// promoteScript moves the staged key states (KEYS[1]) into the committed
// ones (KEYS[2]): it HSETs every staged field, then HDELs those staged
// empty (deleted keys), in commands of at most 1000 fields (Lua's unpack
// takes a few thousand values at most). Then it UNLINKs the staged keys
// (freed off the main thread) and the pending checkpoint (KEYS[4]), and
// stores the committed checkpoint (KEYS[3] = ARGV[1]). The checkpoint
// comes last because Redis rolls back neither a script nor EXEC on an
// error: a move that fails leaves the pending checkpoint in place, to be
// promoted again.
const promoteScript = `
local kv = redis.call('HGETALL', KEYS[1])
for i = 1, #kv, 2000 do
  redis.call('HSET', KEYS[2], unpack(kv, i, math.min(i + 1999, #kv)))
end
local del = {}
for i = 2, #kv, 2 do
  if kv[i] == '' then
    del[#del + 1] = kv[i - 1]
    if #del == 1000 then
      redis.call('HDEL', KEYS[2], unpack(del))
      del = {}
    end
  end
end
if #del > 0 then redis.call('HDEL', KEYS[2], unpack(del)) end
redis.call('UNLINK', KEYS[1], KEYS[4])
redis.call('SET', KEYS[3], ARGV[1])
return #kv / 2`

// Promote makes the pending checkpoint the committed one: under WATCH of
// the checkpoint and the pending checkpoint it reads both (a stored
// Generation greater than gen fails with ErrFenced), then runs
// promoteScript inside MULTI/EXEC. EVAL, not EVALSHA: a script missing from
// the server's cache would fail inside the transaction, where go-redis
// cannot fall back. Without a pending checkpoint it returns the committed
// one unchanged, as when a promotion is retried after its reply was lost.
func (r *Redis) Promote(ctx context.Context, p PartitionID, gen int64) (Checkpoint, error) {
	keysKey, cpKey := redisKeys(r.prefix, p)
	pendKey, pkeysKey := redisPendingKeys(r.prefix, p)
	var out Checkpoint
	err := r.watchTx(ctx, func(tx *redis.Tx) error {
		st, err := loadStored(ctx, tx, cpKey, pendKey, gen)
		if err != nil || !st.hasPend {
			out = st.cp
			return err
		}
		pend := st.pend
		pend.Generation = gen
		out = pend
		return r.exec(ctx, tx, func(pipe redis.Pipeliner) {
			pipe.Eval(ctx, promoteScript, []string{pkeysKey, keysKey, cpKey, pendKey}, appendCheckpoint(nil, pend))
		})
	}, cpKey, pendKey)
	if err != nil {
		return Checkpoint{}, r.txErr(ctx, "promote "+partName(p), err)
	}
	return out, nil
}

// Discard drops the pending checkpoint and its staged keys (UNLINK: freed
// off the main thread), and stores the committed checkpoint again with the
// pending one's Seq (if greater), in one MULTI/EXEC under WATCH of both
// checkpoints. A partition never
// committed gets the checkpoint a claim would store: Kafka's offset (-1)
// and generation gen. A stored Generation greater than gen fails with
// ErrFenced; without a pending checkpoint nothing changes.
func (r *Redis) Discard(ctx context.Context, p PartitionID, gen int64) error {
	_, cpKey := redisKeys(r.prefix, p)
	pendKey, pkeysKey := redisPendingKeys(r.prefix, p)
	err := r.watchTx(ctx, func(tx *redis.Tx) error {
		st, err := loadStored(ctx, tx, cpKey, pendKey, gen)
		if err != nil || !st.hasPend {
			return err
		}
		cp := st.cp
		if !st.hasCP {
			cp = Checkpoint{Offset: -1, Generation: gen}
		}
		cp.Seq = max(cp.Seq, st.pend.Seq)
		return r.exec(ctx, tx, func(pipe redis.Pipeliner) {
			pipe.Set(ctx, cpKey, appendCheckpoint(nil, cp), 0)
			pipe.Unlink(ctx, pendKey, pkeysKey)
		})
	}, cpKey, pendKey)
	return r.txErr(ctx, "discard "+partName(p), err)
}

// watchTx runs fn under WATCH of keys (one partition's, so one Cluster
// slot), again when a watched key changed before EXEC, up to maxTxAttempts
// times: fn reads what it checks and queues its writes with exec, so that
// a change by another writer in between aborts them and the next attempt
// checks again (and is fenced, when the writer was a newer owner).
func (r *Redis) watchTx(ctx context.Context, fn func(tx *redis.Tx) error, keys ...string) error {
	var err error
	for range maxTxAttempts {
		err = r.client.Watch(ctx, fn, keys...)
		if !errors.Is(err, redis.TxFailedErr) || ctx.Err() != nil {
			break
		}
	}
	return err
}

// exec runs the commands queue adds as one MULTI/EXEC on tx, after the
// beforeExec hook of tests.
func (r *Redis) exec(ctx context.Context, tx *redis.Tx, queue func(pipe redis.Pipeliner)) error {
	if r.beforeExec != nil {
		r.beforeExec()
	}
	_, err := tx.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		queue(pipe)
		return nil
	})
	return err
}

// txErr names the operation op in the error of a watchTx, and classifies
// it (see ErrUnavailable).
func (r *Redis) txErr(ctx context.Context, op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrFenced), errors.Is(err, ErrPending), errors.Is(err, ErrBadCheckpoint):
		return fmt.Errorf("%s: %w", op, err)
	case errors.Is(err, redis.TxFailedErr):
		return fmt.Errorf("%s: checkpoint changed by another writer %d times in a row: %w", op, maxTxAttempts, err)
	}
	if c, ok := r.client.(*redis.ClusterClient); ok && movedOrAsk(err) {
		// The slot moved while the transaction ran inside WATCH, where
		// go-redis does not follow the redirection: learn the new layout
		// now so that the caller's retry goes to the right node.
		c.ReloadState(ctx)
	}
	return wrapErr(op, err)
}

// loadCheckpoint reads and decodes the checkpoint stored under key (ok
// false: none).
func loadCheckpoint(ctx context.Context, c redis.Cmdable, key string) (cp Checkpoint, ok bool, err error) {
	b, err := c.Get(ctx, key).Bytes()
	if errors.Is(err, redis.Nil) {
		return Checkpoint{}, false, nil
	}
	if err != nil {
		return Checkpoint{}, false, err
	}
	if cp, err = decodeCheckpoint(b); err != nil {
		return Checkpoint{}, false, err
	}
	return cp, true, nil
}

// stored is what a transaction checks of a partition: its committed and
// its pending checkpoint.
type stored struct {
	cp, pend       Checkpoint
	hasCP, hasPend bool
}

// loadStored reads both checkpoints (one MGET: one round trip), and fails
// with ErrFenced when the committed one's generation is greater than gen.
func loadStored(ctx context.Context, tx *redis.Tx, cpKey, pendKey string, gen int64) (stored, error) {
	vals, err := tx.MGet(ctx, cpKey, pendKey).Result()
	if err != nil {
		return stored{}, err
	}
	var st stored
	if b, ok := vals[0].(string); ok {
		if st.cp, st.hasCP, err = decodeStored([]byte(b), "stored checkpoint"); err != nil {
			return stored{}, err
		}
	}
	if b, ok := vals[1].(string); ok {
		if st.pend, st.hasPend, err = decodeStored([]byte(b), "pending checkpoint"); err != nil {
			return stored{}, err
		}
	}
	if st.hasCP && st.cp.Generation > gen {
		return stored{}, fmt.Errorf("generation %d, stored %d: %w", gen, st.cp.Generation, ErrFenced)
	}
	return st, nil
}

// loadUnpended is loadStored for a write that a pending checkpoint
// forbids (ErrPending); it returns the committed checkpoint.
func loadUnpended(ctx context.Context, tx *redis.Tx, cpKey, pendKey string, gen int64) (Checkpoint, error) {
	st, err := loadStored(ctx, tx, cpKey, pendKey, gen)
	if err == nil && st.hasPend {
		err = ErrPending
	}
	return st.cp, err
}

// decodeStored decodes a stored checkpoint; what names it in the error.
func decodeStored(b []byte, what string) (Checkpoint, bool, error) {
	cp, err := decodeCheckpoint(b)
	if err != nil {
		return Checkpoint{}, false, fmt.Errorf("%s: %w", what, err)
	}
	return cp, true, nil
}

// queueWrites queues the HSET and HDEL commands of a commit.
func (r *Redis) queueWrites(ctx context.Context, pipe redis.Pipeliner, keysKey string, put []KeyState, del []string) {
	for i := 0; i < len(put); i += r.batch {
		chunk := put[i:min(i+r.batch, len(put))]
		// Do with the whole command in one slice saves HSet's copy of it.
		args := make([]any, 0, 2+2*len(chunk))
		args = append(args, "hset", keysKey)
		for _, ks := range chunk {
			args = append(args, ks.Key, ks.State)
		}
		pipe.Do(ctx, args...)
	}
	for i := 0; i < len(del); i += r.batch {
		pipe.HDel(ctx, keysKey, del[i:min(i+r.batch, len(del))]...)
	}
}

// Close closes the connections.
func (r *Redis) Close() error {
	if err := r.client.Close(); err != nil {
		return fmt.Errorf("close redis state store: %w", err)
	}
	return nil
}

// wrapErr names the operation and classifies err (see ErrUnavailable).
func wrapErr(op string, err error) error {
	switch {
	case errors.Is(err, redis.ErrClosed):
		return fmt.Errorf("%s: %w", op, ErrClosed)
	case unavailable(err):
		return fmt.Errorf("%s: %w: %w", op, ErrUnavailable, err)
	default:
		return fmt.Errorf("%s: %w", op, err)
	}
}

func movedOrAsk(err error) bool {
	var re redis.Error
	return errors.As(err, &re) && (strings.HasPrefix(re.Error(), "MOVED ") || strings.HasPrefix(re.Error(), "ASK "))
}
