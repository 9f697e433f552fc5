// Package engine is fastsocks' reactor: event loops over gnet's netpoll
// poller, the listeners they accept on, the per-connection state machine
// (greet, request, dialing, splice, closing) and the flow-controlled relay.
//
// It parses nothing itself (proto/ does), decides nothing about hostnames
// (policy/ does) and dials nothing (dial/ does); it moves bytes between
// sockets, enforces timeouts and keeps memory bounded. See DESIGN.md for the
// invariants it keeps and DESIGN-NOTES.md for where it departs from them.
package engine

import (
	"errors"
	"log/slog"
	"net/netip"
	"runtime"
	"time"

	"github.com/fastsocks/fastsocks/dial"
	"github.com/fastsocks/fastsocks/policy"
)

// Defaults for zero Config fields.
const (
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultDialTimeout      = 10 * time.Second
	DefaultIdleTimeout      = 5 * time.Minute
	DefaultMaxLifetime      = time.Hour
	DefaultHighWatermark    = 64 << 10
	DefaultLowWatermark     = 16 << 10
	// DefaultLinger bounds how long a refused client is given to read the
	// answer and close before the proxy closes its side anyway.
	DefaultLinger = 2 * time.Second
)

// readBufferSize is the size of each loop's shared read buffer: the most
// one read(2) moves.
const readBufferSize = 64 << 10

// Config sets up an Engine.
type Config struct {
	// Listeners and Tenants say where to accept and whom for (see
	// Listener, Tenant). For a single tenant, Listen and Policy are a
	// shorthand: each Listen address serves one tenant, "default", with
	// Policy.
	Listeners []Listener
	Tenants   []*Tenant
	// Listen holds TCP addresses ("127.0.0.1:1080"; port 0 picks a free
	// port, see Engine.Addrs) or "unix:/path" sockets for the shorthand.
	Listen []string
	// Policy is the shorthand tenant's policy. Nil denies everything.
	Policy *policy.Policy
	// AllowPrivateDest is the shorthand tenant's AllowPrivateDest.
	AllowPrivateDest []netip.Prefix
	// Loops is the number of event loops. Zero means GOMAXPROCS.
	Loops int
	// Dialer connects to allowed targets. If nil, the engine makes a pool
	// with dial.DefaultWorkers workers and DialTimeout, and closes it on
	// Close.
	Dialer *dial.Pool
	// HandshakeTimeout bounds the time from accept until the request is
	// complete (greeting and request). It does not bound the tunnel. Zero
	// means DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// DialTimeout is used for the engine-made dial pool and as the
	// engine's own backstop on a dial. Zero means DefaultDialTimeout.
	DialTimeout time.Duration
	// IdleTimeout closes a tunnel that moved no byte in either direction
	// for this long. Zero means DefaultIdleTimeout; negative means none.
	IdleTimeout time.Duration
	// MaxLifetime closes any tunnel this long after it was accepted. Zero
	// means DefaultMaxLifetime; negative means none.
	MaxLifetime time.Duration
	// HighWatermark and LowWatermark bound the bytes held for one
	// direction of a tunnel when the receiving peer is slower than the
	// sending one: at High, reading from the sender stops; below Low, it
	// resumes. Zero means DefaultHighWatermark / DefaultLowWatermark.
	HighWatermark, LowWatermark int
	// Linger bounds the wait for a refused client to take its answer.
	// Zero means DefaultLinger.
	Linger time.Duration
	// handoff makes one loop accept for all and hand connections out
	// round-robin, instead of a SO_REUSEPORT listener per loop. It exists
	// to measure the two against each other (BenchmarkAccept).
	handoff bool

	// MaxHandshakes bounds the connections still in their handshake (no
	// complete request yet); over it, new connections are closed at
	// accept. It protects the descriptor budget from clients that connect
	// and say nothing (each is cut by HandshakeTimeout anyway). Zero means
	// a quarter of the descriptor limit; negative means no bound.
	MaxHandshakes int
	// MaxConnsPerClient bounds the connections open at once from one
	// client IP address (TCP listeners; unix-socket clients are bounded by
	// their tenant's MaxTunnels). Over it, new connections from that
	// address are closed at accept. Zero means no bound.
	MaxConnsPerClient int
	// MaxTunnels bounds the tunnels open at once (past their request:
	// dialing or relaying); a request over it is refused (SOCKS5 0x01,
	// HTTP 503). Zero means no bound.
	MaxTunnels int

	// Logger receives operational lines (listeners, timeouts, errors). If
	// nil, slog.Default() is used.
	Logger *slog.Logger
	// AccessLog receives the decision log: one line per request. If nil,
	// Logger is used.
	AccessLog *slog.Logger
}

// DefaultTenant names the tenant the Listen/Policy shorthand makes.
const DefaultTenant = "default"

func (c *Config) setDefaults() error {
	if len(c.Listeners) == 0 {
		for _, a := range c.Listen {
			c.Listeners = append(c.Listeners, Listener{Address: a, Tenant: DefaultTenant})
		}
		if len(c.Tenants) == 0 {
			c.Tenants = []*Tenant{{Name: DefaultTenant, Policy: c.Policy, AllowPrivateDest: c.AllowPrivateDest}}
		}
	}
	if len(c.Listeners) == 0 {
		return errors.New("engine: no listen address")
	}
	if c.Loops <= 0 {
		c.Loops = runtime.GOMAXPROCS(0)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.HandshakeTimeout, DefaultHandshakeTimeout)
	def(&c.DialTimeout, DefaultDialTimeout)
	def(&c.IdleTimeout, DefaultIdleTimeout)
	def(&c.MaxLifetime, DefaultMaxLifetime)
	def(&c.Linger, DefaultLinger)
	if c.HandshakeTimeout < 0 || c.DialTimeout < 0 || c.Linger < 0 {
		return errors.New("engine: handshake and dial timeouts must be positive")
	}
	if c.HighWatermark <= 0 {
		c.HighWatermark = DefaultHighWatermark
	}
	if c.LowWatermark <= 0 {
		c.LowWatermark = DefaultLowWatermark
	}
	if c.LowWatermark > c.HighWatermark {
		c.LowWatermark = c.HighWatermark
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.AccessLog == nil {
		c.AccessLog = c.Logger
	}
	return nil
}

// tickFor picks the timer tick: fine enough for the shortest timeout (an
// eighth of it) and for the 100 ms accept pause, never finer than 5 ms.
func (c *Config) tickFor() time.Duration {
	tick := 100 * time.Millisecond
	for _, d := range []time.Duration{c.HandshakeTimeout, c.DialTimeout, c.IdleTimeout, c.MaxLifetime, c.Linger} {
		if d > 0 && d/8 < tick {
			tick = d / 8
		}
	}
	if tick < 5*time.Millisecond {
		tick = 5 * time.Millisecond
	}
	return tick
}
