package state

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"
)

// replyError is an error reply of Redis as go-redis types it.
type replyError string

func (e replyError) Error() string { return string(e) }
func (replyError) RedisError()     {}

func TestUnavailable(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"connection refused", refused, true},
		{"connection reset", &net.OpError{Op: "read", Net: "tcp", Err: &os.SyscallError{Syscall: "read", Err: syscall.ECONNRESET}}, true},
		{"read timeout", &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}, true},
		{"dial timeout", &net.OpError{Op: "dial", Net: "tcp", Err: context.DeadlineExceeded}, true},
		{"EOF", io.EOF, true},
		{"wrapped EOF", fmt.Errorf("pipeline: %w", io.ErrUnexpectedEOF), true},
		{"pool timeout", redis.ErrPoolTimeout, true},
		{"loading", replyError("LOADING Redis is loading the dataset in memory"), true},
		{"replica", replyError("READONLY You can't write against a read only replica."), true},
		{"cluster down", replyError("CLUSTERDOWN The cluster is down"), true},
		{"resharding", replyError("TRYAGAIN Multiple keys request during rehashing of slot"), true},
		{"moved", replyError("MOVED 3999 127.0.0.1:6381"), true},
		{"busy script", replyError("BUSY Redis is busy running a script."), true},
		{"too many clients", replyError("ERR max number of clients reached"), true},
		{"broken transaction connection", errors.New("redis: Conn is in a bad state: EOF"), true},
		{"wrong type", replyError("WRONGTYPE Operation against a key holding the wrong kind of value"), false},
		{"auth", replyError("WRONGPASS invalid username-password pair or user is disabled."), false},
		{"out of memory", replyError("OOM command not allowed when used memory > 'maxmemory'."), true},
		{"cancelled", context.Canceled, false},
		{"caller's deadline", fmt.Errorf("get: %w", context.DeadlineExceeded), false},
		{"closed client", redis.ErrClosed, false},
		{"fenced", ErrFenced, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := unavailable(tt.err); got != tt.want {
				t.Errorf("unavailable(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestWrapErr(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}}
	tests := []struct {
		name  string
		err   error
		msg   string
		is    []error
		isNot []error
	}{
		{
			"unavailable keeps its cause", refused, "load keys of partition g/t/1: state store unavailable: dial tcp: connect: connection refused",
			[]error{ErrUnavailable, syscall.ECONNREFUSED},
			[]error{ErrClosed},
		},
		{"closed", redis.ErrClosed, "load keys of partition g/t/1: state store closed", []error{ErrClosed}, []error{ErrUnavailable}},
		{
			"other", replyError("WRONGTYPE Operation against a key holding the wrong kind of value"),
			"load keys of partition g/t/1: WRONGTYPE Operation against a key holding the wrong kind of value", nil,
			[]error{ErrUnavailable},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := wrapErr("load keys of "+partName(PartitionID{"g", "t", 1}), tt.err)
			if err.Error() != tt.msg {
				t.Errorf("message:\n got %q\nwant %q", err.Error(), tt.msg)
			}
			for _, target := range tt.is {
				if !errors.Is(err, target) {
					t.Errorf("errors.Is(%v, %v) = false", err, target)
				}
			}
			for _, target := range tt.isNot {
				if errors.Is(err, target) {
					t.Errorf("errors.Is(%v, %v) = true", err, target)
				}
			}
		})
	}
}

// TestRedisCommitContention: a writer that keeps changing the checkpoint
// under the same generation (two workers believing they own the partition)
// makes a commit give up after a few attempts, writing nothing.
func TestRedisCommitContention(t *testing.T) {
	for _, b := range redisBackends() {
		t.Run(b.name, func(t *testing.T) {
			r := b.open(t, Options{KeyPrefix: "shrike-test-" + randHex(t)}).(*Redis)
			other := &Redis{client: r.client, prefix: r.prefix, batch: r.batch}
			commit(t, r, part, states("a", "1"), nil, Checkpoint{Offset: 1, Generation: 4})
			attempts := 0
			r.beforeExec = func() {
				attempts++
				commit(t, other, part, nil, nil, Checkpoint{Offset: int64(100 + attempts), Generation: 4})
			}
			err := r.Commit(context.Background(), part, states("a", "2"), nil, Checkpoint{Offset: 2, Generation: 4})
			if !errors.Is(err, redis.TxFailedErr) || errors.Is(err, ErrFenced) || errors.Is(err, ErrUnavailable) {
				t.Fatalf("Commit = %v, want the transaction failure, neither fenced nor unavailable", err)
			}
			if attempts != maxTxAttempts {
				t.Errorf("%d attempts, want %d", attempts, maxTxAttempts)
			}
			want := snapshot{Keys: byteMap("a", "1"), CP: Checkpoint{Offset: 100 + maxTxAttempts, Generation: 4}, HasCP: true}
			if diff := cmp.Diff(want, load(t, r, part), cmpEmpty); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
