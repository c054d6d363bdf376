package cep

import (
	"github.com/redis/go-redis/v9"

	"github.com/shrike-cep/shrike/state"
)

// NewRegistryClient returns a Redis client for a Registry on the Redis that
// serve's configuration names: addrs (the configured addresses, or the
// embedded server's), with c's credentials and database; several addresses,
// or c.Cluster, mean a Redis Cluster. It does not connect. (Only state and
// cep import go-redis: the command line gets the client from here.)
func NewRegistryClient(c RedisConfig, addrs []string) redis.UniversalClient {
	return redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs:                 addrs,
		IsClusterMode:         c.Cluster || len(addrs) > 1,
		Username:              c.Username,
		Password:              c.Password,
		DB:                    c.DB,
		DialTimeout:           state.DefaultDialTimeout,
		ReadTimeout:           state.DefaultReadTimeout,
		WriteTimeout:          state.DefaultReadTimeout,
		ContextTimeoutEnabled: true,
		ClientName:            "shrike-registry",
	})
}
