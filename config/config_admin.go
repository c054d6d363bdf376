package config

import (
	"net"
	"strings"
	"time"
)

// Defaults of the HTTP servers' limits and of the admin listener.
const (
	// DefaultAdminListen is the admin listener (/metrics, /debug/pprof/,
	// /healthz, /readyz): loopback, on a port none of serve's other
	// defaults use (8080 REST, 9090 gRPC, 9092 Kafka, 6379 Redis), nor
	// the ports of the next ones a second instance takes (8081, 9091).
	DefaultAdminListen = "127.0.0.1:8079"
	// DefaultReadHeaderTimeout bounds reading a request's headers, so
	// that a client that never finishes them (slowloris) is cut off.
	DefaultReadHeaderTimeout = 5 * time.Second
	// DefaultReadTimeout bounds reading a whole request, body included:
	// a 4 MiB body at 1 Mbit/s takes about 35 s.
	DefaultReadTimeout = time.Minute
	// DefaultIdleTimeout bounds how long a keep-alive connection waits
	// for its next request.
	DefaultIdleTimeout = 2 * time.Minute
	// DefaultMaxHeaderBytes bounds a request's line and headers; a CEL
	// filter in the query string of a subscription fits many times over.
	DefaultMaxHeaderBytes = 64 << 10
)

// AdminOff is the admin.listen value that serves no admin listener
// (an empty value does the same).
const AdminOff = "off"

// HTTPConfig is the HTTP listener of the REST API (and /healthz,
// /readyz), and the limits of every HTTP server of serve: the API's and
// the admin listener's.
type HTTPConfig struct {
	// Listen is host:port. A port of 0 picks a free one.
	Listen string `yaml:"listen"`
	// ReadHeaderTimeout bounds reading a request's line and headers, and
	// a new gRPC connection's TLS and HTTP/2 handshake.
	// Default DefaultReadHeaderTimeout.
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	// ReadTimeout bounds reading a whole request, headers and body. It
	// ends once the body has been read, so a response that lasts (an
	// alert stream, a CPU profile) is never cut by it; no write timeout
	// is set, for the same reason. Default DefaultReadTimeout.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// IdleTimeout bounds the wait for a keep-alive connection's next
	// request. Default DefaultIdleTimeout.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// MaxHeaderBytes bounds a request's line and headers; larger ones are
	// answered 431. Default DefaultMaxHeaderBytes.
	MaxHeaderBytes int `yaml:"max_header_bytes"`
}

// AdminConfig is the admin listener: /metrics, /debug/pprof/, /healthz
// and /readyz. It has no authentication, so it is kept apart from the
// API's listeners, which never serve /metrics or /debug/pprof/.
type AdminConfig struct {
	// Listen is host:port; "" or "off" serves no admin listener. Beyond
	// loopback anyone who reaches it reads the metrics and profiles: serve
	// warns at start. Default DefaultAdminListen.
	Listen string `yaml:"listen"`
}

// Enabled reports whether an admin listener is configured.
func (a AdminConfig) Enabled() bool {
	l := strings.TrimSpace(a.Listen)
	return l != "" && !strings.EqualFold(l, AdminOff)
}

func defaultHTTPConfig() HTTPConfig {
	return HTTPConfig{
		Listen:            DefaultHTTPListen,
		ReadHeaderTimeout: DefaultReadHeaderTimeout,
		ReadTimeout:       DefaultReadTimeout,
		IdleTimeout:       DefaultIdleTimeout,
		MaxHeaderBytes:    DefaultMaxHeaderBytes,
	}
}

// validateAdmin checks the HTTP servers' limits and the admin listener,
// which must differ from the API's.
func (c *Config) validateAdmin(bad func(path, format string, args ...any)) {
	for _, d := range []struct {
		path string
		v    time.Duration
	}{
		{"http.read_header_timeout", c.HTTP.ReadHeaderTimeout},
		{"http.read_timeout", c.HTTP.ReadTimeout},
		{"http.idle_timeout", c.HTTP.IdleTimeout},
	} {
		if d.v <= 0 {
			bad(d.path, "must be positive, not %s", d.v)
		}
	}
	if c.HTTP.ReadTimeout > 0 && c.HTTP.ReadHeaderTimeout > c.HTTP.ReadTimeout {
		bad("http.read_header_timeout", "%s is longer than http.read_timeout (%s), which includes the headers", c.HTTP.ReadHeaderTimeout, c.HTTP.ReadTimeout)
	}
	if c.HTTP.MaxHeaderBytes < 4096 {
		bad("http.max_header_bytes", "must be at least 4096, not %d", c.HTTP.MaxHeaderBytes)
	}
	if !c.Admin.Enabled() {
		return
	}
	if err := checkHostPort(c.Admin.Listen, true); err != nil {
		bad("admin.listen", "%q: %v (or %q for no admin listener)", c.Admin.Listen, err, AdminOff)
		return
	}
	for _, l := range []struct{ path, addr string }{{"http.listen", c.HTTP.Listen}, {"grpc.listen", c.GRPC.Listen}} {
		if sameListener(c.Admin.Listen, l.addr) {
			bad("admin.listen", "%q is also %s: the admin listener (no authentication) needs its own port", c.Admin.Listen, l.path)
		}
	}
}

// sameListener reports whether two listening addresses would bind the
// same port: equal ports other than 0, on the same host or where either
// is every interface.
func sameListener(a, b string) bool {
	ah, ap, err1 := net.SplitHostPort(a)
	bh, bp, err2 := net.SplitHostPort(b)
	if err1 != nil || err2 != nil || ap != bp || ap == "0" {
		return false
	}
	wild := func(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" }
	return strings.EqualFold(ah, bh) || wild(ah) || wild(bh)
}
