package registry

import (
	"github.com/redis/go-redis/v9"

	"github.com/shrike-cep/shrike/state"
)

// NewClient returns a Redis client for a Registry on the Redis the
// connection fields of opts name (Addrs, Cluster, Username, Password, DB,
// TLS), with the state store's timeouts; several addresses, or
// opts.Cluster, mean a Redis Cluster. It does not connect. Only state and
// registry import go-redis: the command line gets its client from here.
func NewClient(opts state.Options) redis.UniversalClient {
	return redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs:                 opts.Addrs,
		IsClusterMode:         opts.Cluster || len(opts.Addrs) > 1,
		Username:              opts.Username,
		Password:              opts.Password,
		DB:                    opts.DB,
		TLSConfig:             opts.TLS,
		DialTimeout:           state.DefaultDialTimeout,
		ReadTimeout:           state.DefaultReadTimeout,
		WriteTimeout:          state.DefaultReadTimeout,
		ContextTimeoutEnabled: true,
		ClientName:            "shrike-registry",
	})
}
