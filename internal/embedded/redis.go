package embedded

import (
	"fmt"
	"sync"

	"github.com/alicebob/miniredis/v2"
)

// RedisOptions configure NewRedis. Zero values are the documented
// defaults.
type RedisOptions struct {
	// Port is the server's port on 127.0.0.1. Zero picks a free port.
	Port int
}

// Redis is an in-process Redis server (miniredis): enough of Redis for
// Shrike's state store (hashes, MULTI/EXEC, Lua scripts, TTLs), kept in
// memory only.
type Redis struct {
	m    *miniredis.Miniredis
	addr string // kept: miniredis cannot tell it once closed
	once sync.Once
}

// NewRedis starts the server.
func NewRedis(opts RedisOptions) (*Redis, error) {
	if opts.Port < 0 || opts.Port > 65535 {
		return nil, fmt.Errorf("embedded redis: bad port %d", opts.Port)
	}
	m := miniredis.NewMiniRedis()
	// Without it TTLs would only move when told to: idle keys set to
	// expire would live for ever in a long-running embedded engine.
	m.ClockTTL(true)
	if err := m.StartAddr(fmt.Sprintf("127.0.0.1:%d", opts.Port)); err != nil {
		return nil, fmt.Errorf("embedded redis: %w", err)
	}
	return &Redis{m: m, addr: m.Addr()}, nil
}

// Addr returns the server's host:port.
func (r *Redis) Addr() string { return r.addr }

// Close stops the server and drops its data.
func (r *Redis) Close() {
	r.once.Do(r.m.Close)
}
