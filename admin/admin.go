// Package admin serves fastsocks' admin endpoints on their own listener:
// Prometheus metrics (/metrics), readiness (/healthz) and the Go profiler
// (/debug/pprof/). It reads the engine's counters at scrape time; it adds
// nothing to the proxy's hot path.
//
// It keeps no counters of its own and decides nothing about the proxy: the
// engine counts (engine.Stats), the binary decides when the process is
// ready or draining (Server.SetReady) and whether the listener is on at
// all. Nothing here is registered on http.DefaultServeMux or the default
// Prometheus registry.
package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/fastsocks/fastsocks/engine"
)

// Source is what the metrics read: *engine.Engine satisfies it.
type Source interface{ Stats() engine.Stats }

// Config sets up a Server.
type Config struct {
	// Addr is the TCP host:port to listen on, e.g. 127.0.0.1:9090. Port 0
	// picks a free port (see Server.Addr). The endpoints have no
	// authentication: bind it to loopback or a monitoring network.
	Addr string
	// Source is read once per scrape of /metrics. It must not be nil.
	Source Source
	// Logger receives the server's own errors (a failed scrape, a broken
	// connection). If nil, slog.Default() is used.
	Logger *slog.Logger
}

// Timeouts and limits of the admin HTTP server. The listener may face a
// farm's monitoring network, so slow or oversized clients are cut off.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	// writeTimeout must outlast the longest profile a client may ask for
	// (net/http/pprof refuses a ?seconds= beyond it; the default is 30 s).
	writeTimeout   = 2 * time.Minute
	idleTimeout    = time.Minute
	maxHeaderBytes = 16 << 10
	// maxScrapes bounds concurrent /metrics requests; more get a 503.
	maxScrapes = 8
	// closeTimeout is how long Close lets requests in flight finish.
	closeTimeout = 2 * time.Second
)

// Server is a running admin listener. Its methods are safe for concurrent
// use.
type Server struct {
	ln    net.Listener
	srv   *http.Server
	reg   *prometheus.Registry
	log   *slog.Logger
	state atomic.Pointer[readiness]
	done  chan struct{} // closed when Serve has returned

	closeOnce sync.Once
	closeErr  error
}

// readiness is what /healthz answers; replaced whole, never mutated.
type readiness struct {
	ready  bool
	reason string
}

// Start listens on cfg.Addr and serves in its own goroutines. It returns an
// error naming the address if it cannot listen. The server starts NOT
// ready: /healthz answers 503 "starting" until SetReady(true, "").
func Start(cfg Config) (*Server, error) {
	if cfg.Source == nil {
		return nil, errors.New("admin: Config.Source is nil")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "admin")

	reg := prometheus.NewRegistry()
	if err := reg.Register(newCollector(cfg.Source)); err != nil {
		return nil, fmt.Errorf("admin: register metrics: %w", err)
	}
	if err := reg.Register(collectors.NewGoCollector()); err != nil {
		return nil, fmt.Errorf("admin: register Go metrics: %w", err)
	}
	if err := reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return nil, fmt.Errorf("admin: register process metrics: %w", err)
	}

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("admin: listen on %s: %w", cfg.Addr, err)
	}
	s := &Server{ln: ln, reg: reg, log: log, done: make(chan struct{})}
	s.state.Store(&readiness{reason: "starting"})
	s.srv = &http.Server{
		Handler:           s.routes(),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin server stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
	log.Info("admin listening", "addr", ln.Addr().String())
	return s, nil
}

// routes is the server's own mux: /metrics, /healthz, /debug/pprof/...;
// any other path is 404.
func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{
		ErrorLog:            slog.NewLogLogger(s.log.Handler(), slog.LevelError),
		ErrorHandling:       promhttp.ContinueOnError, // one failing collector does not blank the rest
		Registry:            s.reg,                    // counts failed scrapes: promhttp_metric_handler_errors_total
		MaxRequestsInFlight: maxScrapes,
	}))
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("/debug/pprof/", pprof.Index) // the index and named profiles (heap, goroutine, ...)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	st := s.state.Load()
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if st.ready {
		_, _ = w.Write([]byte("ok\n"))
		return
	}
	w.WriteHeader(http.StatusServiceUnavailable)
	_, _ = w.Write([]byte(st.reason + "\n"))
}

// Addr returns the address the server listens on (with the port picked
// when Config.Addr had port 0).
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// SetReady sets what /healthz answers: 200 "ok\n" when ready, 503 with a
// one-line reason otherwise (SetReady(false, "draining") during drain;
// before the first SetReady(true, "") the reason is "starting"). reason is
// ignored when ready; an empty reason reads "not ready", and line breaks
// in it become spaces.
func (s *Server) SetReady(ready bool, reason string) {
	if ready {
		s.state.Store(&readiness{ready: true})
		return
	}
	reason = strings.Join(strings.Fields(reason), " ")
	if reason == "" {
		reason = "not ready"
	}
	s.state.Store(&readiness{reason: reason})
}

// Close stops the server: it stops accepting, lets requests in flight
// finish for a short while (http.Server.Shutdown), then closes whatever is
// left (a long profile, say). It waits for the serving goroutine to end.
// Calling it again returns the first call's result.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		defer cancel()
		if err := s.srv.Shutdown(ctx); err != nil {
			// Requests still running after closeTimeout: cut them off.
			if cerr := s.srv.Close(); cerr != nil {
				s.closeErr = fmt.Errorf("admin: close %s: %w", s.ln.Addr(), cerr)
			}
		}
		<-s.done
	})
	return s.closeErr
}

// Registry returns the Prometheus registry the server serves, so tests (and
// the binary) can add to it.
func (s *Server) Registry() *prometheus.Registry { return s.reg }
