package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"
)

// startRedis runs a redis-server of the test's own on a free port, its data
// in a temporary directory: with appendonly, every write is in the AOF
// (fsync every second) and survives a restart of the server.
func startRedis(t *testing.T, appendonly bool) string {
	t.Helper()
	port := freePort(t)
	aof := "no"
	if appendonly {
		aof = "yes"
	}
	startProc(t, "redis-server", nil, "redis-server",
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", t.TempDir(),
		"--save", "", "--appendonly", aof, "--daemonize", "no")
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	waitFor(t, 10*time.Second, "redis-server to answer PING", func() bool { return redisPing(addr) == nil })
	return addr
}

// redisPing sends PING in the Redis protocol and expects +PONG.
func redisPing(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer func() { _ = c.Close() }() // a probe: only the PONG read below matters
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := io.WriteString(c, "PING\r\n"); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

// tcpProxy forwards loopback connections to a target and can cut them: a
// Redis that becomes unreachable, as seen by its clients, without losing
// its data.
type tcpProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func startProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *tcpProxy) addr() string { return p.ln.Addr().String() }

func (p *tcpProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			// Accepted and closed at once: the client's dial succeeds,
			// its first command fails, as with a server that dies.
			p.mu.Unlock()
			_ = c.Close() // cutting the client off is the point
			continue
		}
		up, err := net.DialTimeout("tcp", p.target, time.Second)
		if err != nil {
			p.mu.Unlock()
			_ = c.Close() // no upstream: cut the client off, as a dead server would
			continue
		}
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

func (p *tcpProxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	_, _ = io.Copy(dst, src)
	// One direction ended: end both. The other pipe closes the same two
	// connections, so one of the Close calls reports them closed already.
	_ = dst.Close()
	_ = src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}

// setDown cuts every connection and refuses new ones (down), or lets them
// through again.
func (p *tcpProxy) setDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for c := range p.conns {
			_ = c.Close() // cutting is the point; a pipe may have closed it already
		}
	}
}

func (p *tcpProxy) close() {
	_ = p.ln.Close()
	p.setDown(true)
	p.wg.Wait()
}
