package state

import (
	"context"
	"crypto/tls"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shrike-cep/shrike/internal/testkit"
)

// TestRedisOverTLSWithACLUser runs the store against a real redis-server
// that listens with TLS only, requires a client certificate and
// authenticates an ACL user; and checks that Check names what failed for
// each wrong setting, at once.
func TestRedisOverTLSWithACLUser(t *testing.T) {
	dir := t.TempDir()
	srv := testkit.StartRedisTLS(t, dir, [2]string{"shrike", "wonderland"})
	other := testkit.NewPKI(t, dir, "other")
	clientCert, err := tls.LoadX509KeyPair(srv.PKI.ClientCertFile, srv.PKI.ClientKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	good := Options{
		Addrs: []string{srv.Addr}, Username: "shrike", Password: "wonderland",
		TLS: &tls.Config{RootCAs: srv.PKI.Pool, Certificates: []tls.Certificate{clientCert}, MinVersion: tls.VersionTLS12},
	}
	r := newRedisT(t, good)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.Check(ctx); err != nil {
		t.Fatalf("Check with the right settings: %v", err)
	}
	commit(t, r, part, states("acct-1", "state-1"), nil, Checkpoint{Offset: 7})
	got, err := r.LoadKeys(ctx, part, []string{"acct-1"})
	if err != nil || string(got["acct-1"]) != "state-1" {
		t.Errorf("LoadKeys over TLS = %q, %v", got, err)
	}

	wrongPassword := good
	wrongPassword.Password = "looking-glass"
	wrongUser := good
	wrongUser.Username = "mallory"
	wrongCA := good
	wrongCA.TLS = &tls.Config{RootCAs: other.Pool, Certificates: []tls.Certificate{clientCert}, MinVersion: tls.VersionTLS12}
	wrongName := good
	wrongName.TLS = &tls.Config{RootCAs: srv.PKI.Pool, Certificates: []tls.Certificate{clientCert}, ServerName: "redis.example", MinVersion: tls.VersionTLS12}
	noTLS := good
	noTLS.TLS = nil
	for _, tt := range []struct {
		name string
		opts Options
		want []string
	}{
		{"wrong password", wrongPassword, []string{`redis AUTH as user "shrike" at ` + srv.Addr + " failed", "WRONGPASS"}},
		{"unknown user", wrongUser, []string{`redis AUTH as user "mallory" at ` + srv.Addr + " failed"}},
		{"wrong CA", wrongCA, []string{"redis TLS handshake with " + srv.Addr + " failed", "certificate signed by unknown authority"}},
		{"wrong server name", wrongName, []string{"redis TLS handshake with " + srv.Addr + " failed", "redis.example"}},
		{"plaintext to a TLS port", noTLS, []string{"redis at " + srv.Addr + " closed the connection at once (a TLS port needs redis.tls)"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := newRedisT(t, tt.opts).Check(ctx)
			if err == nil {
				t.Fatalf("Check = nil, want %q", tt.want)
			}
			if errors.Is(err, ErrUnavailable) {
				t.Errorf("Check = %v: a misconfiguration reported as unavailable (to be retried)", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Check = %v, want it to say %q", err, w)
				}
			}
			if ctx.Err() != nil {
				t.Errorf("Check took until its deadline: %v", err)
			}
		})
	}
}

// TestRedisCheckUnreachable reports a closed port as unavailable: the
// caller goes on and the store retries.
func TestRedisCheckUnreachable(t *testing.T) {
	r := newRedisT(t, Options{Addrs: []string{"127.0.0.1:1"}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.Check(ctx); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Check of a closed port = %v, want ErrUnavailable", err)
	}
}

// TestRedisClusterOverTLSWithACLUser runs the store on a real Redis
// Cluster whose nodes speak TLS only (client and cluster bus) and
// authenticate an ACL user: the partitions land on several nodes, every
// one reached over TLS with the user; a wrong password is named.
func TestRedisClusterOverTLSWithACLUser(t *testing.T) {
	dir := t.TempDir()
	addrs, pki := testkit.StartRedisTLSCluster(t, dir, 3, [2]string{"shrike", "wonderland"})
	clientCert, err := tls.LoadX509KeyPair(pki.ClientCertFile, pki.ClientKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg := &tls.Config{RootCAs: pki.Pool, Certificates: []tls.Certificate{clientCert}, MinVersion: tls.VersionTLS12}
	opts := Options{Addrs: addrs[:1], Cluster: true, Username: "shrike", Password: "wonderland", TLS: tlsCfg}
	r := newRedisT(t, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := r.Check(ctx); err != nil {
		t.Fatalf("Check: %v", err)
	}
	nodes := map[string]bool{}
	for p := range int32(8) {
		id := PartitionID{Group: "g", Topic: "payments", Partition: p}
		commit(t, r, id, states("acct", "s"), nil, Checkpoint{Offset: int64(p) + 1})
		cp, ok, err := r.LoadCheckpoint(ctx, id)
		if err != nil || !ok || cp.Offset != int64(p)+1 {
			t.Fatalf("checkpoint of partition %d = %v %v %v", p, cp, ok, err)
		}
		_, cpKey := redisKeys(r.prefix, id)
		node, err := r.client.(*redis.ClusterClient).MasterForKey(ctx, cpKey)
		if err != nil {
			t.Fatal(err)
		}
		nodes[node.Options().Addr] = true
	}
	if len(nodes) < 2 {
		t.Errorf("8 partitions landed on %d node(s), want them spread over the cluster", len(nodes))
	}

	wrong := opts
	wrong.Password = "looking-glass"
	err = newRedisT(t, wrong).Check(ctx)
	if err == nil || !strings.Contains(err.Error(), `redis AUTH as user "shrike"`) {
		t.Errorf("Check with a wrong password = %v, want a Redis AUTH error", err)
	}
}
