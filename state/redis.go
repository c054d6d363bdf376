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

// Redis is a Store on Redis or Redis Cluster. Per partition it keeps two
// keys with one hash tag, so that they live in one Cluster slot:
//
//	<prefix>:{<group>/<topic>/<partition>}:keys   HASH  event key → encoded key state
//	<prefix>:{<group>/<topic>/<partition>}:cp     STRING the checkpoint (version byte first)
//
// ('%', '{' and '}' in the group and topic, and '/' in the topic, are
// written %25, %7B, %7D and %2F.) A commit is one MULTI/EXEC under WATCH
// of the checkpoint key: the checkpoint's generation is read and compared
// in between, so a fenced commit writes nothing, and a newer owner's
// commit landing in between aborts the transaction, whose retry is fenced. (A Lua script carrying every field, the
// other way to get one atomic unit, measured about twice the cost per key
// of MULTI/EXEC in BenchmarkCommitLua.) It is safe for concurrent use.
type Redis struct {
	client redis.UniversalClient
	prefix string
	batch  int
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
	return &Redis{client: client, prefix: prefix, batch: cmp.Or(opts.BatchSize, DefaultBatchSize)}, nil
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
	b, err := r.client.Get(ctx, cpKey).Bytes()
	if errors.Is(err, redis.Nil) {
		return Checkpoint{}, false, nil
	}
	if err != nil {
		return Checkpoint{}, false, wrapErr("load checkpoint of "+partName(p), err)
	}
	cp, err := decodeCheckpoint(b)
	if err != nil {
		return Checkpoint{}, false, fmt.Errorf("load checkpoint of %s: %w", partName(p), err)
	}
	return cp, true, nil
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
// WATCH of the checkpoint key, the stored checkpoint is read: a greater
// Generation than cp's fails the commit with ErrFenced and writes nothing.
func (r *Redis) Commit(ctx context.Context, p PartitionID, put []KeyState, del []string, cp Checkpoint) error {
	keysKey, cpKey := redisKeys(r.prefix, p)
	enc := appendCheckpoint(nil, cp)
	var err error
	for range maxTxAttempts {
		err = r.client.Watch(ctx, func(tx *redis.Tx) error {
			if err := checkFence(ctx, tx, cpKey, cp.Generation); err != nil {
				return err
			}
			if r.beforeExec != nil {
				r.beforeExec()
			}
			_, err := tx.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
				r.queueWrites(ctx, pipe, keysKey, put, del)
				pipe.Set(ctx, cpKey, enc, 0)
				return nil
			})
			return err
		}, cpKey)
		if !errors.Is(err, redis.TxFailedErr) || ctx.Err() != nil {
			break
		}
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrFenced), errors.Is(err, ErrBadCheckpoint):
		return fmt.Errorf("commit %s: %w", partName(p), err)
	case errors.Is(err, redis.TxFailedErr):
		return fmt.Errorf("commit %s: checkpoint changed by another writer %d times in a row: %w", partName(p), maxTxAttempts, err)
	}
	if c, ok := r.client.(*redis.ClusterClient); ok && movedOrAsk(err) {
		// The slot moved while the commit ran inside WATCH, where go-redis
		// does not follow the redirection: learn the new layout now so
		// that the caller's retry goes to the right node.
		c.ReloadState(ctx)
	}
	return wrapErr("commit "+partName(p), err)
}

// Claim takes the partition over: it reads the last committed checkpoint
// and stores it again with the next generation in one transaction under
// WATCH, so that of two owners claiming at once each gets its own
// generation (the second retries on the first's write) and the earlier
// one is fenced; a read followed by a Commit would give both the same.
func (r *Redis) Claim(ctx context.Context, p PartitionID) (prev Checkpoint, ok bool, claimed Checkpoint, err error) {
	_, cpKey := redisKeys(r.prefix, p)
	for range maxTxAttempts {
		err = r.client.Watch(ctx, func(tx *redis.Tx) error {
			prev, ok = Checkpoint{}, false
			b, err := tx.Get(ctx, cpKey).Bytes()
			switch {
			case errors.Is(err, redis.Nil):
			case err != nil:
				return err
			default:
				if prev, err = decodeCheckpoint(b); err != nil {
					return fmt.Errorf("stored checkpoint: %w", err)
				}
				ok = true
			}
			claimed = nextClaim(prev, ok)
			if r.beforeExec != nil {
				r.beforeExec()
			}
			_, err = tx.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
				pipe.Set(ctx, cpKey, appendCheckpoint(nil, claimed), 0)
				return nil
			})
			return err
		}, cpKey)
		if !errors.Is(err, redis.TxFailedErr) || ctx.Err() != nil {
			break
		}
	}
	switch {
	case err == nil:
		return prev, ok, claimed, nil
	case errors.Is(err, ErrBadCheckpoint):
		return Checkpoint{}, false, Checkpoint{}, fmt.Errorf("claim %s: %w", partName(p), err)
	case errors.Is(err, redis.TxFailedErr):
		return Checkpoint{}, false, Checkpoint{}, fmt.Errorf("claim %s: checkpoint changed by another writer %d times in a row: %w", partName(p), maxTxAttempts, err)
	}
	if c, isCluster := r.client.(*redis.ClusterClient); isCluster && movedOrAsk(err) {
		c.ReloadState(ctx)
	}
	return Checkpoint{}, false, Checkpoint{}, wrapErr("claim "+partName(p), err)
}

// Stage is not written yet.
func (r *Redis) Stage(ctx context.Context, p PartitionID, put []KeyState, del []string, pend Checkpoint) error {
	return errors.New("redis: stage: not implemented")
}

// LoadPending is not written yet.
func (r *Redis) LoadPending(ctx context.Context, p PartitionID) (Checkpoint, bool, error) {
	return Checkpoint{}, false, nil
}

// Promote is not written yet.
func (r *Redis) Promote(ctx context.Context, p PartitionID, gen int64) (Checkpoint, error) {
	return Checkpoint{}, errors.New("redis: promote: not implemented")
}

// Discard is not written yet.
func (r *Redis) Discard(ctx context.Context, p PartitionID, gen int64) error {
	return errors.New("redis: discard: not implemented")
}

// checkFence fails with ErrFenced when the stored checkpoint's generation
// is greater than gen.
func checkFence(ctx context.Context, tx *redis.Tx, cpKey string, gen int64) error {
	b, err := tx.Get(ctx, cpKey).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil
	}
	if err != nil {
		return err
	}
	stored, err := decodeCheckpoint(b)
	if err != nil {
		return fmt.Errorf("stored checkpoint: %w", err)
	}
	if stored.Generation > gen {
		return fmt.Errorf("generation %d, stored %d: %w", gen, stored.Generation, ErrFenced)
	}
	return nil
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
