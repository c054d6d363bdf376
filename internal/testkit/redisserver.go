package testkit

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisTLS is a redis-server a test started, listening with TLS only.
type RedisTLS struct {
	// Addr is its TLS port's address, 127.0.0.1:PORT.
	Addr string
	PKI  *PKI
}

// StartRedisTLS starts a redis-server (skipping the test when there is
// none on PATH) that listens on a free port with TLS only, its
// certificates from a fresh PKI in dir, requiring clients to present a
// certificate of that CA, and with the ACL users given as
// "name password" pairs (each may run every command on every key) besides
// the default user without a password. It is killed at cleanup.
func StartRedisTLS(t testing.TB, dir string, users ...[2]string) *RedisTLS {
	t.Helper()
	pki := NewPKI(t, dir, "redis")
	return &RedisTLS{Addr: startRedisTLS(t, dir, pki, nil, users), PKI: pki}
}

// startRedisTLS starts one TLS-only redis-server of pki in dir with
// extra arguments, and returns its address once it accepts TLS.
func startRedisTLS(t testing.TB, dir string, pki *PKI, extra []string, users [][2]string) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server is not installed: apt-get install redis-server")
	}
	port := FreePort(t)
	args := []string{
		"--port", "0", "--tls-port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--tls-cert-file", pki.CertFile, "--tls-key-file", pki.KeyFile, "--tls-ca-cert-file", pki.CAFile,
		"--tls-auth-clients", "yes", "--save", "", "--appendonly", "no", "--dir", dir,
	}
	args = append(args, extra...)
	for _, u := range users {
		args = append(args, "--user", u[0], "on", ">"+u[1], "~*", "&*", "+@all")
	}
	cmd := exec.Command(bin, args...)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait() // the exit is what matters; its log is in out
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // it may have exited already
		<-exited
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	clientCert, err := tls.LoadX509KeyPair(pki.ClientCertFile, pki.ClientKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{RootCAs: pki.Pool, Certificates: []tls.Certificate{clientCert}, MinVersion: tls.VersionTLS12}
	WaitFor(t, 30*time.Second, "redis-server to accept TLS on "+addr, func() bool {
		select {
		case <-exited:
			t.Fatalf("redis-server exited:\n%s", out.String())
		default:
		}
		d := tls.Dialer{Config: cfg}
		conn, err := d.Dial("tcp", addr)
		if err != nil {
			return false
		}
		_ = conn.Close() // the handshake was the check
		return true
	})
	return addr
}

// StartRedisTLSCluster starts a Redis Cluster of n TLS-only masters
// (cluster bus over TLS too), as StartRedisTLS starts one server, with the
// hash slots spread over them, and returns their addresses once the
// cluster is ok.
func StartRedisTLSCluster(t testing.TB, dir string, n int, users ...[2]string) ([]string, *PKI) {
	t.Helper()
	pki := NewPKI(t, dir, "redis-cluster")
	clientCert, err := tls.LoadX509KeyPair(pki.ClientCertFile, pki.ClientKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg := &tls.Config{RootCAs: pki.Pool, Certificates: []tls.Certificate{clientCert}, MinVersion: tls.VersionTLS12}
	addrs := make([]string, n)
	busPorts := make([]int, n)
	clients := make([]*redis.Client, n)
	for i := range n {
		nodeDir := filepath.Join(dir, "node-"+strconv.Itoa(i))
		if err := os.MkdirAll(nodeDir, 0o755); err != nil {
			t.Fatal(err)
		}
		busPorts[i] = FreePort(t)
		addrs[i] = startRedisTLS(t, nodeDir, pki, []string{
			"--cluster-enabled", "yes", "--tls-cluster", "yes", "--cluster-port", strconv.Itoa(busPorts[i]),
			"--cluster-config-file", filepath.Join(nodeDir, "nodes.conf"),
			// The bus connections between nodes present a client certificate.
			"--tls-client-cert-file", pki.ClientCertFile, "--tls-client-key-file", pki.ClientKeyFile,
		}, users)
		clients[i] = redis.NewClient(&redis.Options{Addr: addrs[i], TLSConfig: tlsCfg})
		t.Cleanup(func() { _ = clients[i].Close() }) // the server is killed anyway
	}
	ctx := context.Background()
	const slots = 16384
	for i, c := range clients {
		first, last := i*slots/n, (i+1)*slots/n-1
		if err := c.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", first, last).Err(); err != nil {
			t.Fatalf("CLUSTER ADDSLOTSRANGE on %s: %v", addrs[i], err)
		}
		if i > 0 {
			host, port, _ := net.SplitHostPort(addrs[i])
			if err := clients[0].Do(ctx, "CLUSTER", "MEET", host, port, busPorts[i]).Err(); err != nil {
				t.Fatalf("CLUSTER MEET %s: %v", addrs[i], err)
			}
		}
	}
	WaitFor(t, 30*time.Second, "the TLS Redis Cluster to be ok", func() bool {
		for _, c := range clients {
			info, err := c.ClusterInfo(ctx).Result()
			if err != nil || !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_known_nodes:"+strconv.Itoa(n)) {
				return false
			}
		}
		return true
	})
	return addrs, pki
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close() // the port is what we wanted
	return port
}

// syncBuffer is a bytes.Buffer a process writes and a test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
