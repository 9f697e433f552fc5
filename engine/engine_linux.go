package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fastsocks/fastsocks/dial"
)

// Engine is a running proxy: its loops, listeners and counters.
type Engine struct {
	cfg     Config
	log     *slog.Logger
	pool    *dial.Pool
	ownPool bool
	tenants atomic.Pointer[tenantSet]
	loops   []*loop
	wg      sync.WaitGroup

	// specs are the configured listeners, in order; reloadMu serialises
	// Reload, specMu guards specs for readers (Addrs).
	reloadMu  sync.Mutex
	specMu    sync.Mutex
	specs     []*lnSpec
	unixCount int // unix listeners bound so far, to spread them over loops

	// ticks derived from the timeouts, fixed at start.
	tick                                  time.Duration
	hsTicks, dialTicks, idleTicks         uint32
	lifeTicks, lingerTicks, acceptPauseTk uint32
	attemptTicks                          uint32

	active     atomic.Int64
	handshakes atomic.Int64
	tunnels    atomic.Int64
	access     *slog.Logger
	clients    *perClient
	// maxHandshakes is Config.MaxHandshakes with its default applied.
	maxHandshakes int64
	secondTicks   uint32
	byTenant      sync.Map // name -> *tenantCounters
	dialErrs      dialKinds
	dialLat       dialHist

	closeOnce  sync.Once
	stopAccept sync.Once
	accepting  atomic.Bool
}

// Start binds every listen address, starts the loops and returns the
// running engine. On error nothing is left open.
func Start(cfg Config) (*Engine, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if err := initRuntimePoller(); err != nil {
		return nil, err
	}
	ts, err := newTenantSet(cfg.Tenants)
	if err == nil {
		err = checkListeners(cfg.Listeners, ts)
	}
	if err != nil {
		return nil, err
	}
	e := &Engine{cfg: cfg, log: cfg.Logger, access: cfg.AccessLog, pool: cfg.Dialer}
	e.bindCounters(cfg.Tenants)
	e.tenants.Store(ts)
	e.tick = cfg.tickFor()
	ticks := func(d time.Duration) uint32 {
		if d <= 0 {
			return 0
		}
		n := (d + e.tick - 1) / e.tick
		if n > 1<<30 {
			n = 1 << 30
		}
		return uint32(n)
	}
	e.hsTicks = ticks(cfg.HandshakeTimeout)
	// The dial timeout covers lookup and connect. The pool enforces it on
	// lookups and chained dials; the engine on its own connects (and, a
	// tick later, as a backstop on the pool).
	e.dialTicks = ticks(cfg.DialTimeout) + 1
	e.attemptTicks = ticks(attemptDelay)
	e.idleTicks = ticks(cfg.IdleTimeout)
	e.lifeTicks = ticks(cfg.MaxLifetime)
	e.lingerTicks = ticks(cfg.Linger)
	e.acceptPauseTk = ticks(100 * time.Millisecond)
	e.secondTicks = ticks(time.Second)
	e.clients = newPerClient()
	switch {
	case cfg.MaxHandshakes > 0:
		e.maxHandshakes = int64(cfg.MaxHandshakes)
	case cfg.MaxHandshakes == 0:
		var rl unix.Rlimit
		if unix.Getrlimit(unix.RLIMIT_NOFILE, &rl) == nil && rl.Cur > 0 {
			e.maxHandshakes = max(int64(rl.Cur/4), 64)
		}
	}

	if e.pool == nil {
		e.pool = dial.New(dial.Config{Timeout: cfg.DialTimeout})
		e.ownPool = true
	}

	for i := 0; i < cfg.Loops; i++ {
		var l *loop
		if l, err = newLoop(e, i); err != nil {
			break
		}
		e.loops = append(e.loops, l)
	}
	if err == nil {
		e.specs, err = e.bindSpecs(cfg.Listeners)
	}
	if err != nil {
		for _, l := range e.loops {
			l.release()
		}
		if e.ownPool {
			e.pool.Close()
		}
		return nil, err
	}
	for _, s := range e.specs {
		for _, ln := range s.socks {
			ln.loop.addListener(ln) // the loops are not running yet
		}
	}
	e.accepting.Store(true)
	for _, l := range e.loops {
		e.wg.Add(1)
		go l.run()
	}
	return e, nil
}

// initRuntimePoller makes the Go runtime create its own epoll instance now.
// The runtime does that lazily, on the first pollable file or timer, and
// aborts the whole process if it cannot get a descriptor then. The engine
// does its I/O with raw syscalls, so without this the first timer could
// come at a moment the proxy is out of descriptors, and crash it.
func initRuntimePoller() error {
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("engine: start: %w", err)
	}
	r.Close()
	w.Close()
	return nil
}

// overLimit says why a new connection from client must be closed at
// accept ("" if it may open): too many handshakes, or too many
// connections from its address. It counts the connection when it may.
func (e *Engine) overLimit(client netip.AddrPort) string {
	if e.maxHandshakes > 0 && e.handshakes.Load() >= e.maxHandshakes {
		return "handshake-limit"
	}
	if e.cfg.MaxConnsPerClient > 0 && client.IsValid() && !e.clients.add(client.Addr(), e.cfg.MaxConnsPerClient) {
		return "client-limit"
	}
	return ""
}

// bindCounters gives each tenant its counters, kept by name.
func (e *Engine) bindCounters(tenants []*Tenant) {
	for _, t := range tenants {
		t.c = e.counters(t.Name)
		t.guard = dial.Guard{Allow: t.AllowPrivateDest}
	}
}

// bindSpecs binds every listener; on error it closes what it bound.
func (e *Engine) bindSpecs(ls []Listener) ([]*lnSpec, error) {
	var specs []*lnSpec
	for _, l := range ls {
		s, err := e.bindSpec(l, e.unixCount)
		if err != nil {
			for _, s := range specs {
				s.closeSockets()
			}
			return nil, err
		}
		if l.singleSocket() {
			e.unixCount++
		}
		specs = append(specs, s)
	}
	return specs, nil
}

// Addrs returns the bound address of each listener, in configuration
// order, with TCP port 0 resolved (*net.TCPAddr or *net.UnixAddr).
func (e *Engine) Addrs() []net.Addr {
	e.specMu.Lock()
	defer e.specMu.Unlock()
	out := make([]net.Addr, len(e.specs))
	for i, s := range e.specs {
		out[i] = s.addr
	}
	return out
}

// Reload replaces the tenants and listeners. Listeners whose address is
// unchanged keep their sockets (and take the new settings); new ones are
// bound; removed ones are closed. Open tunnels are untouched: they keep
// the decision made when they opened. On error (a bad tenant reference, a
// listener that cannot bind) nothing changes.
func (e *Engine) Reload(listeners []Listener, tenants []*Tenant) error {
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	ts, err := newTenantSet(tenants)
	if err == nil {
		err = checkListeners(listeners, ts)
	}
	if err != nil {
		return err
	}
	if !e.accepting.Load() {
		return errors.New("engine: reload while shutting down")
	}
	e.specMu.Lock()
	// Listeners are matched by address; several "host:0" ones match in
	// order.
	old := make(map[string][]*lnSpec, len(e.specs))
	for _, s := range e.specs {
		old[s.name] = append(old[s.name], s)
	}
	e.specMu.Unlock()

	next := make([]*lnSpec, 0, len(listeners))
	var added []*lnSpec
	for _, l := range listeners {
		if q := old[l.Address]; len(q) > 0 {
			next = append(next, q[0])
			old[l.Address] = q[1:]
			continue
		}
		s, err := e.bindSpec(l, e.unixCount)
		if err != nil {
			for _, s := range added {
				s.closeSockets()
			}
			return err
		}
		if l.singleSocket() {
			e.unixCount++
		}
		added = append(added, s)
		next = append(next, s)
	}

	// Commit: nothing below fails.
	e.bindCounters(tenants)
	e.tenants.Store(ts)
	for i, l := range listeners {
		cl := l
		next[i].conf.Store(&cl)
	}
	var wg sync.WaitGroup
	for _, s := range added {
		for _, ln := range s.socks {
			wg.Add(1)
			if !ln.loop.post(func(l *loop) { l.addListener(ln); wg.Done() }) {
				unix.Close(ln.fd)
				wg.Done()
			}
		}
	}
	for _, q := range old {
		for _, s := range q {
			for _, ln := range s.socks {
				wg.Add(1)
				if !ln.loop.post(func(l *loop) { l.closeListener(ln); wg.Done() }) {
					wg.Done()
				}
			}
		}
	}
	wg.Wait()
	for _, q := range old {
		for _, s := range q {
			s.removeSocketFile()
		}
	}
	e.specMu.Lock()
	e.specs = next
	e.specMu.Unlock()
	return nil
}

// Stats returns a snapshot of the engine's counters.
func (e *Engine) Stats() Stats {
	st := Stats{
		Active:      e.active.Load(),
		Handshakes:  e.handshakes.Load(),
		Tunnels:     e.tunnels.Load(),
		DialErrors:  e.dialErrs.snapshot(),
		DialLatency: e.dialLat.snapshot(),
		DialQueue:   e.pool.QueueLen(),
		Tenants:     e.tenantStats(),
	}
	for _, l := range e.loops {
		st.Accepted += l.accepted.Load()
		st.Refused += l.refused.Load()
		st.BytesUp += l.bytesUp.Load()
		st.BytesDown += l.bytesDown.Load()
	}
	return st
}

// StopAccepting closes every listener; open tunnels carry on.
func (e *Engine) StopAccepting() {
	e.stopAccept.Do(func() {
		e.reloadMu.Lock()
		defer e.reloadMu.Unlock()
		e.accepting.Store(false)
		var wg sync.WaitGroup
		for _, l := range e.loops {
			wg.Add(1)
			if !l.post(func(l *loop) {
				l.closeListeners()
				wg.Done()
			}) {
				wg.Done()
			}
		}
		wg.Wait()
		e.specMu.Lock()
		for _, s := range e.specs {
			s.removeSocketFile()
		}
		e.specMu.Unlock()
	})
}

// Shutdown stops accepting, then waits until every tunnel has finished or
// ctx is done, then closes what is left. It returns ctx.Err() if tunnels had
// to be cut.
func (e *Engine) Shutdown(ctx context.Context) error {
	e.StopAccepting()
	var err error
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for e.active.Load() > 0 && err == nil {
		select {
		case <-ctx.Done():
			err = ctx.Err()
		case <-tick.C:
		}
	}
	e.Close()
	return err
}

// Close closes every listener and tunnel at once and stops the loops.
func (e *Engine) Close() {
	e.closeOnce.Do(func() {
		e.StopAccepting()
		for _, l := range e.loops {
			l.stop()
		}
		e.wg.Wait()
		if e.ownPool {
			e.pool.Close()
		}
	})
}
