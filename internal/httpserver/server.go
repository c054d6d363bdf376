package httpserver

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// DefaultShutdownTimeout bounds the wait for requests in flight when the
// server stops, when Options.ShutdownTimeout is zero. A running CPU
// profile is cut short rather than delay the engine's final checkpoint.
const DefaultShutdownTimeout = 5 * time.Second

// Limits of the HTTP server, by default those of config.DefaultConfig.
const (
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultReadTimeout       = time.Minute
	DefaultIdleTimeout       = 2 * time.Minute
	DefaultMaxHeaderBytes    = 64 << 10
)

// Options configure New. Zero values are the documented defaults.
type Options struct {
	// Name names the server in its errors and logs. Default "http
	// server".
	Name string
	// Addr is the host:port to listen on; port 0 picks a free one.
	// Required.
	Addr string
	// Admin serves /metrics and /debug/pprof/ besides /healthz and
	// /readyz. They need no authentication, so only a listener that
	// operators alone reach may set it; the API's listener does not.
	Admin bool
	// Gatherer supplies /metrics (Admin only). Default
	// prometheus.DefaultGatherer.
	Gatherer prometheus.Gatherer
	// Ready reports readiness for /readyz: nil means ready, an error is
	// the reason it is not. Default: always ready.
	Ready func() error
	// Logger receives errors of the server itself. Default: discard.
	Logger *slog.Logger
	// ShutdownTimeout: see DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// TLS, when set, serves HTTPS with it instead of plain HTTP.
	TLS *tls.Config
	// ReadHeaderTimeout bounds reading a request's line and headers, so
	// that a client that never finishes them (slowloris) is cut off.
	// Default DefaultReadHeaderTimeout.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included.
	// net/http lifts it once the body has been read to its end (at once
	// for a request without one), so a long response, an alert stream or
	// a CPU profile, is not cut by it. Default DefaultReadTimeout.
	ReadTimeout time.Duration
	// IdleTimeout bounds the wait for a keep-alive connection's next
	// request. Default DefaultIdleTimeout.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's line and headers (431 beyond).
	// Default DefaultMaxHeaderBytes.
	MaxHeaderBytes int
}

// Server is one HTTP server of serve: the API's listener or the admin
// one.
type Server struct {
	name    string
	ln      net.Listener
	mux     *http.ServeMux
	srv     *http.Server
	timeout time.Duration
	log     *slog.Logger
}

// New listens on opts.Addr and prepares the handlers; Run serves.
func New(opts Options) (*Server, error) {
	if opts.Name == "" {
		opts.Name = "http server"
	}
	if opts.Addr == "" {
		return nil, fmt.Errorf("%s: no listen address", opts.Name)
	}
	if opts.Gatherer == nil {
		opts.Gatherer = prometheus.DefaultGatherer
	}
	if opts.Ready == nil {
		opts.Ready = func() error { return nil }
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = DefaultShutdownTimeout
	}
	opts.ReadHeaderTimeout = cmp.Or(max(opts.ReadHeaderTimeout, 0), DefaultReadHeaderTimeout)
	opts.ReadTimeout = cmp.Or(max(opts.ReadTimeout, 0), DefaultReadTimeout)
	opts.IdleTimeout = cmp.Or(max(opts.IdleTimeout, 0), DefaultIdleTimeout)
	opts.MaxHeaderBytes = cmp.Or(max(opts.MaxHeaderBytes, 0), DefaultMaxHeaderBytes)
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", opts.Name, err)
	}
	if opts.TLS != nil {
		ln = tls.NewListener(ln, opts.TLS)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeText(w, http.StatusOK, "ok")
	})
	ready := opts.Ready
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := ready(); err != nil {
			writeText(w, http.StatusServiceUnavailable, "not ready: "+err.Error())
			return
		}
		writeText(w, http.StatusOK, "ready")
	})
	index := "shrike: /healthz /readyz /v1/ /ui/"
	if opts.Admin {
		mux.Handle("GET /metrics", promhttp.HandlerFor(opts.Gatherer, promhttp.HandlerOpts{
			ErrorLog: slog.NewLogLogger(opts.Logger.Handler(), slog.LevelWarn),
			// A collector failing must not hide every other metric.
			ErrorHandling: promhttp.ContinueOnError,
		}))
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		index = "shrike admin: /metrics /healthz /readyz /debug/pprof/"
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		writeText(w, http.StatusOK, index)
	})
	s := &Server{
		name:    opts.Name,
		ln:      ln,
		mux:     mux,
		timeout: opts.ShutdownTimeout,
		log:     opts.Logger,
	}
	s.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: opts.ReadHeaderTimeout,
		ReadTimeout:       opts.ReadTimeout,
		IdleTimeout:       opts.IdleTimeout,
		MaxHeaderBytes:    opts.MaxHeaderBytes,
		// No WriteTimeout: alert streams and CPU profiles last.
		ErrorLog: slog.NewLogLogger(opts.Logger.Handler(), slog.LevelDebug),
	}
	return s, nil
}

func writeText(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = fmt.Fprintln(w, msg)
}

// Addr returns the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Handle adds a handler (http.ServeMux patterns) before Run: the API's
// gateway under /v1/.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// Handler returns the server's handler.
func (s *Server) Handler() http.Handler { return s.mux }

// Run serves until ctx ends, then stops accepting connections and waits up
// to the shutdown timeout for requests in flight. It returns nil after a
// shutdown asked for by ctx, and the error when serving fails.
func (s *Server) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("%s: %w", s.name, err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
	defer cancel()
	err := s.srv.Shutdown(sctx)
	if err != nil {
		// Requests still running past the timeout (a long profile) are cut.
		s.log.Warn("http server: requests cut short at shutdown", "server", s.name, "err", err)
		_ = s.srv.Close()
	}
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		return fmt.Errorf("%s: %w", s.name, serr)
	}
	return nil
}

// Close releases the listener of a server that was never Run (Run
// releases it itself).
func (s *Server) Close() error {
	_ = s.srv.Close()
	if err := s.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("%s: %w", s.name, err)
	}
	return nil
}
