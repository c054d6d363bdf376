package e2e

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Environment of the broker helper mode: when brokerEnv is set, the test
// binary runs a kfake broker instead of the tests (see runBroker).
const (
	brokerEnv       = "SHRIKE_E2E_BROKER"        // "1" selects the mode
	brokerDataEnv   = "SHRIKE_E2E_BROKER_DATA"   // data directory; empty keeps memory only
	brokerTopicsEnv = "SHRIKE_E2E_BROKER_TOPICS" // comma-separated topics to create
)

// brokerSessionTimeout caps the consumer group session timeout the helper
// broker grants (see runBroker).
const brokerSessionTimeout = 8 * time.Second

var tmpRoot string // removed at exit

func TestMain(m *testing.M) {
	if os.Getenv(brokerEnv) == "1" {
		os.Exit(runBroker())
	}
	var err error
	tmpRoot, err = os.MkdirTemp("", "shrike-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(tmpRoot)
	os.Exit(code)
}

// runBroker is the helper mode: a kfake cluster of one broker on a free
// loopback port, with the topics of brokerTopicsEnv, persisted in
// brokerDataEnv when set. It prints its address on the first line of
// stdout, and runs until SIGTERM or SIGINT, when it closes the cluster
// (which flushes the data directory) and exits 0.
//
// It caps the session timeout that consumer group members ask for (franz-go's
// default is 45 s) at brokerSessionTimeout, as a client configured with that
// timeout would: a member killed with SIGKILL never leaves its group, and
// the group waits for its session to expire before a restarted engine gets
// the partitions. A live member heartbeats every 3 s, well within it.
func runBroker() int {
	opts := []kfake.Opt{
		kfake.Ports(0),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(partitions),
	}
	if dir := os.Getenv(brokerDataEnv); dir != "" {
		opts = append(opts, kfake.DataDir(dir), kfake.SyncWrites())
	}
	if ts := os.Getenv(brokerTopicsEnv); ts != "" {
		opts = append(opts, kfake.SeedTopics(partitions, strings.Split(ts, ",")...))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "broker:", err)
		return 1
	}
	capMs := int32(brokerSessionTimeout / time.Millisecond)
	c.ControlKey(int16(kmsg.JoinGroup), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if jr, ok := req.(*kmsg.JoinGroupRequest); ok && jr.SessionTimeoutMillis > capMs {
			jr.SessionTimeoutMillis = capMs
		}
		return nil, nil, false // handled as usual, with the capped timeout
	})
	fmt.Println(strings.Join(c.ListenAddrs(), ","))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	<-ctx.Done()
	c.Close()
	return 0
}
