package state

import (
	"bytes"
	"io"
	"net"
	"sync"
	"testing"
)

// faultProxy is a TCP proxy in front of a Redis that breaks connections on
// demand, the way a network or a crashing server would: a real-protocol
// fault, with no mock of the client library.
type faultProxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	mode   proxyMode
	budget int // bytes still forwarded in cutAfterBytes mode
	conns  map[net.Conn]bool
	wg     sync.WaitGroup
}

type proxyMode int

const (
	// pass forwards everything.
	pass proxyMode = iota
	// cutBeforeExec forwards a transaction up to its EXEC and then drops
	// the connection: Redis has queued every write and never runs them.
	cutBeforeExec
	// cutAfterBytes forwards budget more bytes from the client and then
	// drops the connection, in the middle of a command.
	cutAfterBytes
	// refuse drops every connection, open or new: Redis is down.
	refuse
)

// execCommand is EXEC as go-redis sends it (lowercase).
var execCommand = []byte("*1\r\n$4\r\nexec\r\n")

func newFaultProxy(t *testing.T, target string) *faultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		p.mu.Lock()
		for c := range p.conns {
			_ = c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *faultProxy) addr() string { return p.ln.Addr().String() }

// set changes the mode; a cut mode returns to pass after it cut once, so
// that a client that silently resent the transaction would be caught.
func (p *faultProxy) set(m proxyMode, budget int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode, p.budget = m, budget
	if m == refuse {
		for c := range p.conns {
			_ = c.Close()
		}
	}
}

func (p *faultProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.mode == refuse
		p.mu.Unlock()
		if down {
			_ = c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[up] = true, true
		p.mu.Unlock()
		p.wg.Add(2)
		go func() {
			defer p.wg.Done()
			_, _ = io.Copy(c, up)
			p.drop(c, up)
		}()
		go func() {
			defer p.wg.Done()
			p.forward(c, up)
			p.drop(c, up)
		}()
	}
}

func (p *faultProxy) drop(conns ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
		delete(p.conns, c)
	}
}

// forward copies client to server, cutting where the mode says.
func (p *faultProxy) forward(c, up net.Conn) {
	buf := make([]byte, 64<<10)
	var tail []byte // the last bytes forwarded, lowercased, to find EXEC across reads
	for {
		n, err := c.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			if cut := p.cutAt(tail, chunk); cut >= 0 {
				_, _ = up.Write(chunk[:cut])
				return
			}
			if _, werr := up.Write(chunk); werr != nil {
				return
			}
			tail = append(tail, bytes.ToLower(chunk)...)
			tail = tail[max(0, len(tail)-len(execCommand)):]
		}
		if err != nil {
			return
		}
	}
}

// cutAt returns how many bytes of chunk to forward before dropping the
// connection, or -1 to forward all of it.
func (p *faultProxy) cutAt(tail, chunk []byte) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch p.mode {
	case refuse:
		return 0
	case cutBeforeExec:
		i := bytes.Index(append(append([]byte{}, tail...), bytes.ToLower(chunk)...), execCommand)
		if i < 0 {
			return -1
		}
		p.mode = pass
		return max(0, i-len(tail))
	case cutAfterBytes:
		if len(chunk) <= p.budget {
			p.budget -= len(chunk)
			return -1
		}
		p.mode = pass
		return p.budget
	}
	return -1
}

func TestFaultProxy(t *testing.T) {
	// The proxy's own check: EXEC split over two reads is still found.
	p := &faultProxy{mode: cutBeforeExec}
	if got := p.cutAt([]byte("*1\r\n$4\r"), []byte("\nEXEC\r\nmore")); got != 0 {
		t.Errorf("split EXEC: cut at %d, want 0", got)
	}
	p.set(cutBeforeExec, 0)
	if got := p.cutAt(nil, []byte("+OK\r\n*1\r\n$4\r\nexec\r\n")); got != 5 {
		t.Errorf("EXEC after 5 bytes: cut at %d, want 5", got)
	}
	if p.mode != pass {
		t.Errorf("mode after a cut = %v, want pass", p.mode)
	}
}
