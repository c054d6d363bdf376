package registry

import (
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/shrike-cep/shrike/internal/testkit"
)

// The helpers the registry package's tests share.

// TestMain fails the package's tests if a goroutine outlives them.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func newTestClient(t *testing.T, addrs []string, cluster bool) redis.UniversalClient {
	c := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: addrs, IsClusterMode: cluster})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// cleanupPrefix deletes the registry keys of prefix at the end of the test.
func cleanupPrefix(t *testing.T, addrs []string, cluster bool, prefix string) {
	t.Cleanup(func() {
		testkit.DeleteRedisKeys(t, addrs, cluster, "{"+prefix+":rules}:*")
		testkit.DeleteRedisKeys(t, addrs, cluster, "{"+prefix+":lists}:*")
		testkit.DeleteRedisKeys(t, addrs, cluster, "{"+prefix+":stats}:*")
	})
}

func at(s int) time.Time { return clockStart.Add(time.Duration(s) * time.Second) }

// rulesetSource is a small valid ruleset named name whose rule fires above
// amount.
func rulesetSource(name string, amount int) []byte {
	return fmt.Appendf(nil, `ruleset: %s
stream:
  topic: payments
  key: event.account_id
rules:
  - id: big
    severity: high
    when: event.amount > %d.0
`, name, amount)
}
