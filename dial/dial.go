//go:build unix

// Package dial is fastsocks' asynchronous dial pool: a bounded set of worker
// goroutines that do what may block on the way to a target, within a
// deadline. Resolve looks a name up for a caller that connects by itself
// (the engine connects non-blocking on its event loop); LookupStatic
// answers names from /etc/hosts without a worker; Dial and DialRoute
// resolve and connect (happy eyeballs for dual-stack names) and hand the
// connected socket back as a raw, non-blocking, close-on-exec descriptor.
// Guard is the resolved-address check a direct dial applies.
//
// With an upstream (corporate) HTTP proxy configured, a worker instead
// connects to the proxy and opens the tunnel with an HTTP CONNECT, sending
// the target name unresolved, unless the target is on the NO_PROXY list.
// The package parses the upstream and NO_PROXY settings; the CONNECT wire
// format itself is proto/httpconnect's.
//
// It knows nothing of SOCKS5, HTTP or event loops: callers pass a completion
// func and decide for themselves how to get the result to where it is used
// (the engine wraps it in its loop's Trigger). Policy checks on the hostname
// happen before a dial is asked for; this package only dials.
package dial

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Defaults used when a Config field is zero.
const (
	DefaultWorkers = 512
	DefaultTimeout = 10 * time.Second
)

// Kind classifies a dial failure so front ends can answer in their own
// protocol (a SOCKS5 REP code, an HTTP status) without parsing errors.
type Kind uint8

// Failure kinds.
const (
	KindOther           Kind = iota // anything not listed below
	KindRefused                     // the target answered with a reset (ECONNREFUSED)
	KindNetUnreachable              // ENETUNREACH
	KindHostUnreachable             // EHOSTUNREACH, or the name did not resolve for a reason other than "no such host"
	KindNoSuchHost                  // the resolver says the name does not exist
	KindTimeout                     // the dial deadline passed (resolve + connect, + the upstream CONNECT exchange)
	KindCanceled                    // the caller canceled the dial
	KindQueueFull                   // the pool's queue was full; nothing was attempted
	KindClosed                      // the pool is closed

	// Answers of the upstream proxy to the CONNECT. When the upstream
	// itself cannot be reached, the kinds above are used (refused,
	// unreachable, timeout...) and the error text names the upstream.

	KindUpstreamDenied      // the upstream answered 403
	KindUpstreamAuth        // the upstream answered 407 (or 401): it wants other credentials
	KindUpstreamUnavailable // the upstream answered 502, 503 or 504
	KindUpstreamProtocol    // a malformed or truncated answer, a head over 8 KiB, or any other non-2xx status
)

var kindNames = [...]string{
	KindOther:           "other",
	KindRefused:         "refused",
	KindNetUnreachable:  "network-unreachable",
	KindHostUnreachable: "host-unreachable",
	KindNoSuchHost:      "no-such-host",
	KindTimeout:         "timeout",
	KindCanceled:        "canceled",
	KindQueueFull:       "queue-full",
	KindClosed:          "closed",

	KindUpstreamDenied:      "upstream-denied",
	KindUpstreamAuth:        "upstream-auth",
	KindUpstreamUnavailable: "upstream-unavailable",
	KindUpstreamProtocol:    "upstream-protocol",
}

// String returns a short token for logs and metrics labels.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Error is a failed dial: its Kind and the underlying cause.
type Error struct {
	Kind     Kind
	Host     string
	Port     uint16
	Upstream bool // the dial went through the upstream proxy
	Err      error
}

func (e *Error) Error() string {
	return "dial " + net.JoinHostPort(e.Host, strconv.Itoa(int(e.Port))) + ": " + e.Kind.String() + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// KindOf returns the Kind of a dial error (KindOther for errors not from
// this package).
func KindOf(err error) Kind {
	var de *Error
	if errors.As(err, &de) {
		return de.Kind
	}
	return KindOther
}

// Sentinel causes for failures that happen before any network activity.
var (
	ErrQueueFull = errors.New("dial queue full (raise --max-dials or lower the load)")
	ErrClosed    = errors.New("dial pool closed")
)

// Conn is a connected socket handed to the caller, who owns FD from then on
// and must close it.
type Conn struct {
	FD     int            // non-blocking, close-on-exec
	Local  netip.AddrPort // the socket's bound address (what SOCKS5 replies carry)
	Remote netip.AddrPort // the address actually connected to (the upstream proxy's, if chained)
	// Early holds bytes the upstream proxy sent after the blank line that
	// ends its CONNECT answer. They are the first bytes of the tunnel, sent
	// by the target, and must reach the client before anything read from
	// FD. Nil for direct dials and when there were none.
	Early []byte
	// Upstream is true if the tunnel goes through the upstream proxy.
	Upstream bool
}

// Config sets up a Pool. The zero value is usable.
type Config struct {
	// Workers bounds the number of dials in flight at once. Zero means
	// DefaultWorkers.
	Workers int
	// Queue bounds the number of dials waiting for a worker; a dial asked
	// for when the queue is full fails at once with KindQueueFull. Zero
	// means 4 x Workers.
	Queue int
	// Timeout bounds each dial from the moment it is asked for: queueing,
	// resolving and connecting together, and the CONNECT exchange when
	// chained through an upstream proxy. Zero means DefaultTimeout.
	Timeout time.Duration
	// Resolver resolves target names. If nil, net.DefaultResolver is used.
	Resolver *net.Resolver
	// HostsFile is read by LookupStatic; empty means /etc/hosts.
	HostsFile string
	// Control, if non-nil, is called for each address the dialer is about
	// to connect to, after the socket is created and before connect; an
	// error refuses that address. See net.Dialer.ControlContext. With an
	// upstream proxy, the addresses are the proxy's.
	Control func(ctx context.Context, network, address string, c syscall.RawConn) error
	// Upstream, if non-nil, is an HTTP proxy that dials go through with
	// CONNECT, unless NoProxy bypasses the target. The target name is sent
	// to it unresolved; the exchange runs in a worker within Timeout. If
	// nil, every dial is direct.
	Upstream *Upstream
	// NoProxy lists the targets that go direct although Upstream is set.
	// It is not consulted when Upstream is nil.
	NoProxy NoProxy
}

// Route says how to reach targets: through which upstream proxy, if any,
// and which targets bypass it. Routes are immutable once used.
type Route struct {
	// Upstream is the HTTP proxy to CONNECT through; nil dials direct.
	Upstream *Upstream
	// NoProxy lists the targets that go direct although Upstream is set.
	NoProxy NoProxy
}

// Pool is an asynchronous dial pool. Its methods are safe for concurrent use.
type Pool struct {
	hosts   *hostsFile
	timeout time.Duration
	route   *Route // the default route (Config.Upstream and NoProxy)
	dialer  net.Dialer
	queue   chan *Job
	sem     chan struct{}
	ctx     context.Context
	stop    context.CancelFunc
	wg      sync.WaitGroup
	closed  atomic.Bool
	mu      sync.Mutex // guards wg.Add against Close's Wait
}

// New returns a Pool. Workers start on demand and exit when idle, so an
// idle pool holds no goroutines.
func New(cfg Config) *Pool {
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 4 * cfg.Workers
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	ctx, stop := context.WithCancel(context.Background())
	if cfg.HostsFile == "" {
		cfg.HostsFile = "/etc/hosts"
	}
	return &Pool{
		hosts:   newHostsFile(cfg.HostsFile),
		timeout: cfg.Timeout,
		route:   &Route{Upstream: cfg.Upstream, NoProxy: cfg.NoProxy},
		dialer: net.Dialer{
			Resolver:       cfg.Resolver,
			ControlContext: cfg.Control,
		},
		queue: make(chan *Job, cfg.Queue),
		sem:   make(chan struct{}, cfg.Workers),
		ctx:   ctx,
		stop:  stop,
	}
}

// Timeout returns the per-dial deadline the pool applies.
func (p *Pool) Timeout() time.Duration { return p.timeout }

// QueueLen returns the number of dials waiting for a worker.
func (p *Pool) QueueLen() int { return len(p.queue) }

// DefaultRoute returns the route dials take when none is given.
func (p *Pool) DefaultRoute() *Route { return p.route }

// Direct reports whether route dials host:port itself rather than through
// its upstream proxy.
func (r *Route) Direct(host string, port uint16) bool {
	return r.Upstream == nil || r.NoProxy.Bypass(host, port)
}

// Job is one dial (or lookup) asked of the pool.
type Job struct {
	host     string
	port     uint16
	route    *Route
	ctx      context.Context
	cancel   context.CancelFunc
	done     func(Conn, error)
	resolved func([]netip.Addr, error) // set for a lookup instead of done
}

// Cancel abandons the dial. done is still called exactly once (with a
// KindCanceled error, or with a Conn if the connect won the race, which the
// caller must then close).
func (j *Job) Cancel() { j.cancel() }

// Dial asks for host:port to be dialed by the pool's default route; see
// DialRoute.
func (p *Pool) Dial(host string, port uint16, done func(Conn, error)) (*Job, error) {
	return p.DialRoute(host, port, nil, done)
}

// DialRoute asks for host:port to be dialed by route (nil: the pool's
// default route). On success done is later called exactly once, from a
// pool goroutine, with either a Conn or an *Error. If the queue is full or
// the pool closed, DialRoute returns an *Error at once and done is never
// called.
func (p *Pool) DialRoute(host string, port uint16, route *Route, done func(Conn, error)) (*Job, error) {
	if p.closed.Load() {
		return nil, &Error{Kind: KindClosed, Host: host, Port: port, Err: ErrClosed}
	}
	if route == nil {
		route = p.route
	}
	ctx, cancel := context.WithTimeout(p.ctx, p.timeout)
	j := &Job{host: host, port: port, route: route, ctx: ctx, cancel: cancel, done: done}
	select {
	case p.queue <- j:
	default:
		cancel()
		return nil, &Error{Kind: KindQueueFull, Host: host, Port: port, Err: ErrQueueFull}
	}
	p.spawn()
	return j, nil
}

// spawn starts a worker if fewer than Workers are running.
func (p *Pool) spawn() {
	select {
	case p.sem <- struct{}{}:
	default:
		return // every worker slot is busy; a running worker will take the job
	}
	p.mu.Lock()
	p.wg.Add(1)
	p.mu.Unlock()
	go p.worker()
}

// worker runs queued jobs until the queue is empty, then exits. Before
// exiting it releases its slot and looks at the queue once more, so a job
// queued while every slot was held is never stranded.
func (p *Pool) worker() {
	defer p.wg.Done()
	for {
		for {
			var j *Job
			select {
			case j = <-p.queue:
			default:
			}
			if j == nil {
				break
			}
			p.run(j)
		}
		<-p.sem
		if len(p.queue) == 0 {
			return
		}
		select {
		case p.sem <- struct{}{}:
		default:
			return // another worker holds the slot and will see the job
		}
	}
}

// LookupStatic returns host's addresses from the hosts file, in the order
// to try them, or nil if it is not listed there (then use Resolve). It
// reads only a local file, at most once a second, and does not block on
// the network: an event loop may call it. The slice is shared and must
// not be modified.
func (p *Pool) LookupStatic(host string) []netip.Addr {
	if addrs := p.hosts.lookup(host); len(addrs) > 0 {
		return addrs
	}
	return nil
}

// Resolve looks host up in a worker, within the pool's timeout, for a
// caller that connects by itself (the engine connects non-blocking on its
// event loop). On success done is later called exactly once, from a pool
// goroutine, with the addresses in the order to try them: the resolver's
// (RFC 6724) order with the two families interleaved, first family first
// (RFC 8305 section 4). Errors are *Error, as for dials.
func (p *Pool) Resolve(host string, done func([]netip.Addr, error)) (*Job, error) {
	if p.closed.Load() {
		return nil, &Error{Kind: KindClosed, Host: host, Err: ErrClosed}
	}
	ctx, cancel := context.WithTimeout(p.ctx, p.timeout)
	j := &Job{host: host, ctx: ctx, cancel: cancel, resolved: done}
	select {
	case p.queue <- j:
	default:
		cancel()
		return nil, &Error{Kind: KindQueueFull, Host: host, Err: ErrQueueFull}
	}
	p.spawn()
	return j, nil
}

func (p *Pool) lookup(j *Job) ([]netip.Addr, error) {
	if err := j.ctx.Err(); err != nil {
		return nil, p.fail(j, err)
	}
	r := p.dialer.Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	addrs, err := r.LookupNetIP(j.ctx, "ip", j.host)
	if err != nil {
		return nil, p.fail(j, err)
	}
	if len(addrs) == 0 {
		return nil, p.failKind(j, KindNoSuchHost, &net.DNSError{Err: "no addresses", Name: j.host, IsNotFound: true})
	}
	return Interleave(addrs), nil
}

// Interleave orders addresses for connection attempts: the first address's
// family first, then alternating families, each family keeping its order
// (RFC 8305 section 4). IPv4-mapped IPv6 addresses are unmapped.
func Interleave(addrs []netip.Addr) []netip.Addr {
	out := make([]netip.Addr, 0, len(addrs))
	var a, b []netip.Addr
	for _, ip := range addrs {
		ip = ip.Unmap()
		if len(a) == 0 || a[0].Is4() == ip.Is4() {
			a = append(a, ip)
		} else {
			b = append(b, ip)
		}
	}
	for i := 0; i < len(a) || i < len(b); i++ {
		if i < len(a) {
			out = append(out, a[i])
		}
		if i < len(b) {
			out = append(out, b[i])
		}
	}
	return out
}

func (p *Pool) run(j *Job) {
	defer j.cancel()
	if j.resolved != nil {
		addrs, err := p.lookup(j)
		j.resolved(addrs, err)
		return
	}
	c, err := p.connect(j)
	if err != nil {
		j.done(Conn{FD: -1}, err)
		return
	}
	j.done(c, nil)
}

func (p *Pool) connect(j *Job) (Conn, error) {
	if err := j.ctx.Err(); err != nil {
		return Conn{FD: -1}, p.fail(j, err)
	}
	if r := j.route; r.Upstream != nil && !r.NoProxy.Bypass(j.host, j.port) {
		return p.chain(j)
	}
	nc, err := p.dialer.DialContext(j.ctx, "tcp", net.JoinHostPort(j.host, strconv.Itoa(int(j.port))))
	if err != nil {
		return Conn{FD: -1}, p.fail(j, err)
	}
	tc := nc.(*net.TCPConn)
	defer tc.Close()
	return p.handOver(j, tc, Conn{})
}

// handOver fills c's addresses and descriptor from tc, a connected socket
// the caller closes afterwards.
func (p *Pool) handOver(j *Job, tc *net.TCPConn, c Conn) (Conn, error) {
	c.FD = -1
	c.Local = tc.LocalAddr().(*net.TCPAddr).AddrPort()
	c.Remote = tc.RemoteAddr().(*net.TCPAddr).AddrPort()
	rc, err := tc.SyscallConn()
	if err != nil {
		return c, p.fail(j, err)
	}
	var derr error
	if err := rc.Control(func(fd uintptr) {
		// The duplicate shares the socket and its O_NONBLOCK flag; closing
		// tc afterwards leaves the socket open through the duplicate.
		c.FD, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return c, p.fail(j, err)
	}
	if derr != nil {
		c.FD = -1
		return c, p.fail(j, os.NewSyscallError("fcntl(F_DUPFD_CLOEXEC)", derr))
	}
	return c, nil
}

func (p *Pool) fail(j *Job, err error) error {
	return p.failKind(j, classify(err), err)
}

func (p *Pool) failKind(j *Job, k Kind, err error) error {
	if k == KindCanceled && p.closed.Load() {
		k = KindClosed
	}
	return &Error{Kind: k, Host: j.host, Port: j.port, Err: err}
}

// Classify maps an error from resolving or connecting (a *net.DNSError, a
// syscall.Errno from connect or SO_ERROR, a context error) to a Kind.
func Classify(err error) Kind { return classify(err) }

// classify maps a dial error to a Kind.
func classify(err error) Kind {
	var dnsErr *net.DNSError
	switch {
	case errors.Is(err, context.Canceled):
		return KindCanceled
	case errors.As(err, &dnsErr):
		switch {
		case dnsErr.IsNotFound:
			return KindNoSuchHost
		case dnsErr.IsTimeout:
			return KindTimeout
		}
		return KindHostUnreachable
	case errors.Is(err, syscall.ECONNREFUSED):
		return KindRefused
	case errors.Is(err, syscall.ENETUNREACH):
		return KindNetUnreachable
	case errors.Is(err, syscall.EHOSTUNREACH):
		return KindHostUnreachable
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, syscall.ETIMEDOUT), os.IsTimeout(err):
		return KindTimeout
	}
	return KindOther
}

// Close cancels every queued and in-flight dial and waits for the workers
// to finish. Each accepted job's done is still called exactly once.
func (p *Pool) Close() {
	if p.closed.Swap(true) {
		return
	}
	p.stop()
	// Run what is still queued (each fails fast on the canceled context)
	// so every done is called.
	p.spawn()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.wg.Wait()
	for {
		select {
		case j := <-p.queue:
			p.run(j)
		default:
			return
		}
	}
}
