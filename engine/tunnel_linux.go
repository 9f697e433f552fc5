package engine

import (
	"net/netip"
	"time"

	"github.com/panjf2000/gnet/v2/pkg/netpoll"
	"golang.org/x/sys/unix"

	"github.com/fastsocks/fastsocks/dial"
)

// state is where a tunnel is in its life.
type state uint8

const (
	stateGreet   state = iota // waiting for the first message (front end not yet known or greeting)
	stateAuth                 // SOCKS5: username/password selected, waiting for it
	stateRequest              // SOCKS5 greeting (and authentication) done, waiting for the request
	stateDialing              // request allowed, dial in flight
	stateSplice               // relaying both ways
	stateClosing              // a refusal is being flushed; waiting for the client to close
	stateClosed
)

// frontEnd is the protocol the client speaks, chosen by its first byte.
type frontEnd uint8

const (
	feUnknown frontEnd = iota
	feSOCKS5
	feHTTP
)

// readBudget caps the reads done for one side per wakeup, so one busy
// tunnel cannot starve the others on its loop.
const readBudget = 4

// maxHandshake caps the bytes kept for a handshake split across reads.
const maxHandshake = 16 << 10

// side is one socket of a tunnel and the bytes waiting to be written to it.
type side struct {
	t        *tunnel
	fd       int
	out      []byte // pending output, from the loop's pool; nil when none
	off      int    // written prefix of out
	readable bool   // edge-triggered: input may be waiting
	hup      bool   // the peer shut down or failed: read until EOF or error
	paused   bool   // reading stopped: the peer's pending output is at the high watermark
	eof      bool   // read returned 0
	shutWr   bool   // shutdown(SHUT_WR) done
}

func (s *side) pending() int { return len(s.out) - s.off }

// tunnel is one client connection and, once dialed, its target.
type tunnel struct {
	c, u     side // client, upstream (target)
	state    state
	fe       frontEnd
	hs       []byte     // handshake bytes kept across reads; nil when none
	dl       *dialState // a direct dial in progress
	host     string
	port     uint16
	job      *dial.Job
	client   netip.AddrPort
	openedNs int64   // monoNow at accept
	dialNs   int64   // monoNow when the dial started
	rule     string  // the allow rule that let the request through
	spec     *lnSpec // the listener it came in on
	tenant   *Tenant // set by credentials, or at the request from the listener

	created, since, lastActive uint32 // ticks: accept, entering the current state, last byte moved

	wprev, wnext *tunnel
	wslot        int32

	up, down    uint64
	viaUpstream bool
	dialed      bool // a dial was started (the log gives its route)
	counted     bool // admitted: counts against the tunnel limits
	methodOwed  bool // SOCKS5: the method selection waits to go out with the reply
}

func (t *tunnel) peer(s *side) *side {
	if s == &t.c {
		return &t.u
	}
	return &t.c
}

// clientName is the client's address for logs: its IP and port, or the
// unix socket it came through.
func (t *tunnel) clientName() string {
	if t.client.IsValid() {
		return t.client.String()
	}
	return t.spec.name
}

func reached(now, due uint32) bool { return int32(now-due) >= 0 }

// open starts a tunnel for an accepted client socket.
func (l *loop) open(fd int, client netip.AddrPort, spec *lnSpec) {
	if client.IsValid() {
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	}
	t := &tunnel{client: client, spec: spec, openedNs: monoNow(), created: l.tick, since: l.tick, lastActive: l.tick, wslot: -1}
	t.c = side{t: t, fd: fd}
	t.u = side{t: t, fd: -1}
	l.setEntry(fd, fdEntry{s: &t.c})
	l.pa.FD = fd
	if err := l.poller.AddReadWrite(&l.pa, true); err != nil {
		l.clearEntry(fd)
		unix.Close(fd)
		if l.e.cfg.MaxConnsPerClient > 0 && client.IsValid() {
			l.e.clients.remove(client.Addr())
		}
		l.e.log.Error("cannot watch client socket", "client", client, "err", err)
		return
	}
	l.e.active.Add(1)
	l.e.handshakes.Add(1)
	l.accepted.Add(1)
	l.wheel.add(t, l.tick, t.created+l.e.hsTicks)
}

// setState moves t to st, keeping the handshake and tunnel gauges.
func (l *loop) setState(t *tunnel, st state) {
	if t.state < stateDialing && st >= stateDialing {
		l.e.handshakes.Add(-1)
	}
	if t.counted && st >= stateClosing {
		t.counted = false
		l.e.release(t.tenant)
	}
	t.state = st
	t.since = l.tick
}

// onSide handles readiness on one side of a tunnel.
func (l *loop) onSide(s *side, ev netpoll.IOEvent) {
	t := s.t
	if ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		s.readable = true
		if ev&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
			// A short read no longer means drained: the EOF or error
			// behind the data raises no further edge.
			s.hup = true
		}
	}
	if ev&unix.EPOLLOUT != 0 && s.pending() > 0 {
		if !l.flush(s) {
			return
		}
	}
	if t.state == stateClosed {
		return
	}
	if ev&unix.EPOLLERR != 0 && (s.paused || s.eof) {
		// A paused or finished reader would not see the error; fetch it.
		if errno, _ := unix.GetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_ERROR); errno != 0 {
			l.abort(t, unix.Errno(errno))
			return
		}
	}
	if s.readable {
		l.onReadable(s)
	}
}

func (l *loop) onReadable(s *side) {
	switch s.t.state {
	case stateGreet, stateAuth, stateRequest:
		l.readHandshake(s.t)
	case stateDialing, stateSplice:
		l.relayRead(s)
	case stateClosing:
		l.drainClosing(s.t)
	}
}

// readHandshake reads client bytes until the front end has a complete
// request (or the socket is drained). Bytes after the request are early
// data for the target.
func (l *loop) readHandshake(t *tunnel) {
	c := &t.c
	for c.readable && t.state < stateDialing {
		n, err := unix.Read(c.fd, l.buf)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			c.readable = false
			return
		case err != nil, n == 0:
			// The client left before finishing its request.
			l.closeTunnel(t, false)
			return
		}
		if n < len(l.buf) && !c.hup {
			c.readable = false
		}
		data := l.buf[:n]
		if len(t.hs) > 0 {
			if len(t.hs)+n > maxHandshake {
				l.closeTunnel(t, false)
				return
			}
			t.hs = append(t.hs, data...)
			data = t.hs
		}
		used := l.handshake(t, data)
		rest := data[used:]
		switch {
		case t.state == stateClosed:
			return
		case t.state < stateDialing:
			if len(rest) > maxHandshake {
				l.closeTunnel(t, false)
				return
			}
			t.hs = append(t.hs[:0], rest...)
		case t.state == stateClosing:
			t.hs = nil
			l.drainClosing(t)
			return
		default: // dialing: the rest is early data for the target
			t.hs = nil
			if len(rest) > 0 && !l.send(&t.u, rest) {
				return
			}
			if c.readable {
				l.relayRead(c)
			}
			return
		}
	}
}

// handshake feeds client bytes to the tunnel's front end and returns how
// many it consumed.
func (l *loop) handshake(t *tunnel, data []byte) int {
	if t.fe == feUnknown {
		if len(data) == 0 {
			return 0
		}
		switch c := data[0]; {
		case c == 0x05:
			t.fe = feSOCKS5
		case c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z':
			t.fe = feHTTP
		default:
			// Neither front end: close without an answer.
			l.logRequest(t, VerdictError, "protocol", "detail", "the first byte is neither SOCKS5 (0x05) nor an HTTP method")
			l.closeTunnel(t, false)
			return 0
		}
	}
	if t.fe == feHTTP {
		return l.httpHandshake(t, data)
	}
	return l.socksHandshake(t, data)
}

// relayRead moves bytes from src to its peer, within the read budget and
// the peer's high watermark.
func (l *loop) relayRead(src *side) {
	t := src.t
	dst := t.peer(src)
	high := l.e.cfg.HighWatermark
	for budget := readBudget; ; budget-- {
		if src.paused || src.eof || !src.readable || t.state >= stateClosing {
			return
		}
		if budget == 0 {
			l.yield(src)
			return
		}
		room := len(l.buf)
		if p := dst.pending(); p > 0 || dst.fd < 0 {
			if room = high - p; room <= 0 {
				src.paused = true
				return
			}
			if room > len(l.buf) {
				room = len(l.buf)
			}
		}
		n, err := unix.Read(src.fd, l.buf[:room])
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			src.readable = false
			return
		case err != nil:
			l.abort(t, err)
			return
		case n == 0:
			src.readable = false
			l.onEOF(src)
			return
		}
		t.lastActive = l.tick
		if src == &t.c {
			t.up += uint64(n)
			l.bytesUp.Add(uint64(n))
			t.tenant.c.bytesUp.Add(uint64(n))
		} else {
			t.down += uint64(n)
			l.bytesDown.Add(uint64(n))
			t.tenant.c.bytesDown.Add(uint64(n))
		}
		if !l.send(dst, l.buf[:n]) {
			return
		}
		if n < room && !src.hup {
			// Short read: the socket is drained (any byte arriving later
			// raises a new edge).
			src.readable = false
			return
		}
	}
}

// send writes data to dst, keeping what the socket will not take in dst's
// pending buffer. It returns false if the tunnel was closed.
func (l *loop) send(dst *side, data []byte) bool {
	if dst.fd >= 0 && dst.pending() == 0 {
		for {
			n, err := unix.Write(dst.fd, data)
			if err == unix.EINTR {
				continue
			}
			if err != nil && err != unix.EAGAIN {
				l.abort(dst.t, err)
				return false
			}
			if n > 0 {
				data = data[n:]
			}
			break
		}
		if len(data) == 0 {
			return true
		}
	}
	if dst.out == nil {
		dst.out = l.getBuf()
	} else if dst.off > 0 && len(dst.out)+len(data) > cap(dst.out) {
		n := copy(dst.out, dst.out[dst.off:])
		dst.out, dst.off = dst.out[:n], 0
	}
	dst.out = append(dst.out, data...)
	return true
}

// flush writes s's pending output. It returns false if the tunnel was
// closed.
func (l *loop) flush(s *side) bool {
	t := s.t
	for s.pending() > 0 {
		n, err := unix.Write(s.fd, s.out[s.off:])
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			break
		}
		if err != nil {
			l.abort(t, err)
			return false
		}
		s.off += n
		if s.pending() > 0 {
			break // partial write: the socket is full
		}
	}
	if s.pending() == 0 && s.out != nil {
		l.putBuf(s.out)
		s.out, s.off = nil, 0
	}
	switch t.state {
	case stateSplice:
		if s.pending() == 0 && t.peer(s).eof && !s.shutWr {
			l.shutWrite(s)
			if l.maybeDone(t) {
				return false
			}
		}
		if src := t.peer(s); src.paused && s.pending() <= l.e.cfg.LowWatermark {
			src.paused = false
			if src.readable {
				l.relayRead(src)
			}
		}
	case stateClosing:
		if s == &t.c && s.pending() == 0 && !s.shutWr {
			l.shutWrite(s)
		}
	}
	return t.state != stateClosed
}

func (l *loop) shutWrite(s *side) {
	s.shutWr = true
	_ = unix.Shutdown(s.fd, unix.SHUT_WR)
}

// onEOF passes a half-close on: once src's bytes are all written to its
// peer, the peer's write side is shut down; the other direction goes on.
func (l *loop) onEOF(src *side) {
	t := src.t
	src.eof = true
	if t.state == stateDialing {
		// The client left while its dial was in flight: cancel it.
		l.closeTunnel(t, false)
		return
	}
	dst := t.peer(src)
	if dst.pending() == 0 && !dst.shutWr {
		if dst.eof && src.shutWr {
			// Both directions are over: close sends the FIN a shutdown
			// would.
			l.closeTunnel(t, false)
			return
		}
		l.shutWrite(dst)
	}
	l.maybeDone(t)
}

// maybeDone closes t when both directions have ended and been flushed.
func (l *loop) maybeDone(t *tunnel) bool {
	if t.c.eof && t.u.eof && t.c.shutWr && t.u.shutWr {
		l.closeTunnel(t, false)
		return true
	}
	return false
}

// abort closes t after an error on either socket, passing a reset on as a
// reset.
func (l *loop) abort(t *tunnel, err error) {
	reset := err == unix.ECONNRESET || err == unix.EPIPE
	l.closeTunnel(t, reset)
}

// closeTunnel closes both sockets at once. With reset, SO_LINGER 0 makes
// the close send RST instead of FIN.
func (l *loop) closeTunnel(t *tunnel, reset bool) {
	if t.state == stateClosed {
		return
	}
	if t.job != nil {
		t.job.Cancel() // its result arrives later and finds the tunnel closed
		t.job = nil
	}
	l.closeAttempts(t)
	switch {
	case t.state == stateSplice:
		l.logRequest(t, VerdictAllow, "rule", "rule", t.rule, "reset", reset)
	case t.state == stateDialing:
		l.logRequest(t, VerdictError, "client-gone", "detail", "the client left while its dial was in flight")
	}
	l.setState(t, stateClosed)
	l.wheel.remove(t)
	if l.e.cfg.MaxConnsPerClient > 0 && t.client.IsValid() {
		l.e.clients.remove(t.client.Addr())
	}
	for _, s := range [2]*side{&t.c, &t.u} {
		if s.fd >= 0 {
			l.clearEntry(s.fd)
			if reset {
				_ = unix.SetsockoptLinger(s.fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
			}
			unix.Close(s.fd)
			s.fd = -1
		}
		if s.out != nil {
			l.putBuf(s.out)
			s.out, s.off = nil, 0
		}
	}
	t.hs = nil
	l.e.active.Add(-1)
}

// refuseWith flushes answer to the client, then closes: the write side is
// shut once the answer is out, and the socket closes when the client
// closes or the linger time passes. Closing at once with unread client
// bytes would send a reset that can destroy the answer in flight.
func (l *loop) refuseWith(t *tunnel, answer []byte) {
	if t.job != nil {
		t.job.Cancel()
		t.job = nil
	}
	l.closeAttempts(t)
	if t.u.fd >= 0 {
		l.clearEntry(t.u.fd)
		unix.Close(t.u.fd)
		t.u.fd = -1
	}
	if t.u.out != nil {
		l.putBuf(t.u.out)
		t.u.out, t.u.off = nil, 0
	}
	l.setState(t, stateClosing)
	l.wheel.add(t, l.tick, l.tick+l.e.lingerTicks)
	if len(answer) > 0 && !l.send(&t.c, answer) {
		return
	}
	if t.c.pending() == 0 && !t.c.shutWr {
		l.shutWrite(&t.c)
	}
}

// drainClosing reads and drops what a refused client still sends, until
// it closes.
func (l *loop) drainClosing(t *tunnel) {
	c := &t.c
	for i := 0; c.readable; i++ {
		if i == readBudget {
			l.yield(c)
			return
		}
		n, err := unix.Read(c.fd, l.buf)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			c.readable = false
			return
		case err != nil, n == 0:
			l.closeTunnel(t, false)
			return
		}
		if n < len(l.buf) && !c.hup {
			c.readable = false
		}
	}
}

// startDial dials host:port for t by its tenant's route: directly (the
// loop connects, see connect_linux.go) or through the upstream proxy (the
// pool does it all). The result comes back to this loop.
func (l *loop) startDial(t *tunnel, host string, port uint16) {
	t.host, t.port = host, port
	t.dialed, t.dialNs = true, monoNow()
	l.setState(t, stateDialing)
	l.wheel.add(t, l.tick, l.tick+l.e.dialTicks)
	route := t.tenant.Route
	if route == nil {
		route = l.e.pool.DefaultRoute()
	}
	if route.Direct(host, port) {
		l.startDirect(t, host, port)
		return
	}
	job, err := l.e.pool.DialRoute(host, port, route, func(c dial.Conn, err error) {
		if !l.post(func(l *loop) { l.onDialed(t, c, err) }) && c.FD >= 0 {
			unix.Close(c.FD) // the loop has stopped
		}
	})
	if err != nil {
		l.dialFailed(t, err)
		return
	}
	t.job = job
}

// onDialed runs on the loop with a chained dial's result.
func (l *loop) onDialed(t *tunnel, c dial.Conn, err error) {
	if t.state != stateDialing {
		if c.FD >= 0 {
			unix.Close(c.FD)
		}
		return
	}
	t.job = nil
	if err != nil {
		l.dialFailed(t, err)
		return
	}
	t.u.fd = c.FD
	l.setEntry(c.FD, fdEntry{s: &t.u})
	l.pa.FD = c.FD
	if err := l.poller.AddReadWrite(&l.pa, true); err != nil {
		l.clearEntry(c.FD)
		unix.Close(c.FD)
		t.u.fd = -1
		l.dialFailed(t, err)
		return
	}
	l.spliceStart(t, c)
}

// spliceStart answers the client once its target is connected (t.u.fd
// set and watched) and starts relaying.
func (l *loop) spliceStart(t *tunnel, c dial.Conn) {
	l.e.dialLat.observe(time.Duration(monoNow() - t.dialNs))
	t.tenant.c.verdicts[VerdictAllow].Add(1)
	l.setState(t, stateSplice)
	t.lastActive = l.tick
	l.armSplice(t)
	t.viaUpstream = c.Upstream
	if !l.connected(t, c) {
		return
	}
	if len(c.Early) > 0 {
		// Bytes the upstream proxy read past its answer: the target's
		// first bytes, due to the client before anything else.
		t.down += uint64(len(c.Early))
		l.bytesDown.Add(uint64(len(c.Early)))
		t.tenant.c.bytesDown.Add(uint64(len(c.Early)))
		if !l.send(&t.c, c.Early) {
			return
		}
	}
	if t.u.pending() > 0 && !l.flush(&t.u) {
		return
	}
	if t.c.readable {
		l.relayRead(&t.c)
	}
	if t.state == stateSplice && t.u.readable {
		l.relayRead(&t.u)
	}
}

// armSplice puts a spliced tunnel in the wheel at its next deadline, or
// takes it out if it has none.
func (l *loop) armSplice(t *tunnel) {
	var due uint32
	has := false
	if l.e.idleTicks > 0 {
		due, has = t.lastActive+l.e.idleTicks, true
	}
	if l.e.lifeTicks > 0 {
		if d := t.created + l.e.lifeTicks; !has || int32(d-due) < 0 {
			due, has = d, true
		}
	}
	if has {
		l.wheel.add(t, l.tick, due)
	} else {
		l.wheel.remove(t)
	}
}

// onDeadline runs when t's wheel slot comes round.
func (l *loop) onDeadline(t *tunnel) {
	now := l.tick
	switch t.state {
	case stateGreet, stateAuth, stateRequest:
		if due := t.created + l.e.hsTicks; !reached(now, due) {
			l.wheel.add(t, now, due)
			return
		}
		l.logRequest(t, VerdictError, "handshake-timeout", "timeout", l.e.cfg.HandshakeTimeout)
		l.closeTunnel(t, false)
	case stateDialing:
		if due := t.since + l.e.dialTicks; reached(now, due) {
			l.closeAttempts(t)
			l.dialFailed(t, &dial.Error{Kind: dial.KindTimeout, Host: t.host, Port: t.port, Err: errDialTimeout})
			return
		}
		if d := t.dl; d != nil && reached(now, d.nextAt) && d.inflight() < maxAttempts && d.next < len(d.addrs) {
			l.attempt(t) // happy eyeballs: the next address joins in
		}
		if t.state == stateDialing {
			l.armDialing(t)
		}
	case stateSplice:
		if l.e.idleTicks > 0 && reached(now, t.lastActive+l.e.idleTicks) {
			l.e.log.Debug("idle timeout", "client", t.clientName(), "host", t.host, "port", t.port)
			l.closeTunnel(t, false)
			return
		}
		if l.e.lifeTicks > 0 && reached(now, t.created+l.e.lifeTicks) {
			l.e.log.Info("tunnel reached its maximum lifetime", "client", t.clientName(), "host", t.host, "port", t.port, "max_lifetime", l.e.cfg.MaxLifetime)
			l.closeTunnel(t, false)
			return
		}
		l.armSplice(t)
	case stateClosing:
		if due := t.since + l.e.lingerTicks; !reached(now, due) {
			l.wheel.add(t, now, due)
			return
		}
		l.closeTunnel(t, false)
	}
}
