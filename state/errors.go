package state

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"

	"github.com/redis/go-redis/v9"
)

// ErrUnavailable marks an error of a store that could not be reached or
// could not serve the request for now: a refused or broken connection, a
// network timeout, a connection pool exhausted, or a Redis that is loading,
// failing over, resharding or out of memory (LOADING, READONLY, MASTERDOWN,
// CLUSTERDOWN, TRYAGAIN, MOVED, ASK, BUSY, NOREPLICAS, OOM). Such an
// operation may be retried with backoff; the engine reports itself not
// ready meanwhile.
//
// Every other error is permanent for the request: ErrFenced,
// ErrBadCheckpoint, ErrClosed, a cancelled or expired context of the
// caller (errors.Is with context.Canceled or context.DeadlineExceeded), and
// errors Redis replies with for a bad request (a wrong type under a Shrike
// key, a denied command, a wrong password).
//
// A Commit that failed with ErrFenced or ErrBadCheckpoint wrote nothing. One
// that failed otherwise may or may not have been applied (the reply may be
// what was lost), so the caller keeps its keys and checkpoint and commits
// them again (merged with later changes, or alone): applying a commit twice
// is harmless.
var ErrUnavailable = errors.New("state store unavailable")

// ErrBadCheckpoint wraps every error decoding a stored checkpoint: it is
// truncated, or it was written by a newer Shrike in a version this one does
// not know. A commit over such a checkpoint is refused rather than risk
// undoing a newer owner's fencing.
var ErrBadCheckpoint = errors.New("bad checkpoint")

// ErrClosed is returned by every operation on a closed store.
var ErrClosed = errors.New("state store closed")

// unavailable reports whether err (from go-redis) is one that ErrUnavailable
// describes.
func unavailable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) {
		// A dial that timed out wraps the context error of its own dial
		// deadline; any other expired context is the caller's.
		var op *net.OpError
		return errors.As(err, &op) && op.Op == "dial"
	}
	if errors.Is(err, redis.ErrClosed) {
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, redis.ErrPoolTimeout) || errors.Is(err, redis.ErrPoolExhausted) {
		return true
	}
	// go-redis reports a connection that broke under a transaction like
	// this, with no type to test for.
	if strings.Contains(err.Error(), "redis: Conn is in a bad state") {
		return true
	}
	var re redis.Error
	if !errors.As(err, &re) {
		return false
	}
	msg := re.Error()
	for _, prefix := range []string{"LOADING ", "READONLY ", "MASTERDOWN ", "CLUSTERDOWN ", "TRYAGAIN ", "MOVED ", "ASK ", "BUSY ", "NOREPLICAS ", "OOM ", "ERR max number of clients reached"} {
		if strings.HasPrefix(msg, prefix) {
			return true
		}
	}
	return false
}
