package engine

import (
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	gerrors "github.com/panjf2000/gnet/v2/pkg/errors"
	"github.com/panjf2000/gnet/v2/pkg/netpoll"
	"github.com/panjf2000/gnet/v2/pkg/queue"
	"golang.org/x/sys/unix"
)

// fdEntry says what a descriptor registered with a loop's poller is.
type fdEntry struct {
	s   *side
	ln  *listener
	att *tunnel // a connection attempt of this dialing tunnel
}

// listener is one listening socket owned by one loop.
type listener struct {
	fd       int
	spec     *lnSpec
	loop     *loop
	paused   bool   // removed from the poller after EMFILE/ENFILE
	resumeAt uint32 // tick at which a paused listener is re-armed
	burst    bool   // an fd-exhaustion burst was logged and has not ended
}

// loop is one event loop: a goroutine on a locked OS thread blocked in a
// netpoll.Poller. Everything reachable from a loop is touched only by it;
// other goroutines reach it through post (DESIGN.md invariant 1).
type loop struct {
	e       *Engine
	id      int
	poller  *netpoll.Poller
	pa      netpoll.PollAttachment // scratch for poller calls (only FD is used)
	buf     []byte                 // shared read buffer
	fds     []fdEntry              // by descriptor number
	lns     []*listener
	tfd     int // timerfd driving the tick
	tick    uint32
	wheel   wheel
	free    [][]byte  // pending buffers ready for reuse
	stash   []byte    // 8-byte scratch for timerfd reads
	ans     []byte    // scratch for protocol answers (buf may hold the input)
	authBuf [600]byte // scratch for decoding HTTP Basic credentials

	// counters, read by Engine.Stats from other goroutines
	accepted, refused  atomic.Uint64
	bytesUp, bytesDown atomic.Uint64

	// inbox carries work from other goroutines (dial results, engine
	// commands). wake is true while a drain is scheduled on the poller,
	// so a burst of posts costs one Trigger.
	mu      sync.Mutex
	inbox   []func(*loop)
	spare   []func(*loop)
	wake    bool
	stopped bool

	drainFn queue.Func
	next    int // handoff round-robin position

	shedCount  int    // connections closed at accept since the last log line
	shedLogged uint32 // tick of that line
}

func newLoop(e *Engine, id int) (*loop, error) {
	p, err := netpoll.OpenPoller()
	if err != nil {
		return nil, err
	}
	l := &loop{
		e:      e,
		id:     id,
		poller: p,
		buf:    make([]byte, readBufferSize),
		wheel:  newWheel(1024),
		stash:  make([]byte, 8),
		ans:    make([]byte, 0, 1024),
		tfd:    -1,
	}
	l.drainFn = l.drainInbox
	tfd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		p.Close()
		return nil, os.NewSyscallError("timerfd_create", err)
	}
	l.tfd = tfd
	ts := unix.NsecToTimespec(int64(e.tick))
	if err := unix.TimerfdSettime(tfd, 0, &unix.ItimerSpec{Interval: ts, Value: ts}, nil); err != nil {
		l.release()
		return nil, os.NewSyscallError("timerfd_settime", err)
	}
	l.pa.FD = tfd
	if err := p.AddRead(&l.pa, false); err != nil {
		l.release()
		return nil, err
	}
	return l, nil
}

// release frees a loop's own descriptors; only for loops that never ran or
// have stopped.
func (l *loop) release() {
	for _, ln := range l.lns {
		if ln.fd >= 0 {
			unix.Close(ln.fd)
			ln.fd = -1
		}
	}
	if l.tfd >= 0 {
		unix.Close(l.tfd)
		l.tfd = -1
	}
	if l.poller != nil {
		l.poller.Close()
		l.poller = nil
	}
}

func (l *loop) addListener(ln *listener) {
	l.lns = append(l.lns, ln)
	l.setEntry(ln.fd, fdEntry{ln: ln})
	l.pa.FD = ln.fd
	// Level-triggered: an accept burst is capped per wakeup and the rest
	// is reported again by the next epoll_wait.
	if err := l.poller.AddRead(&l.pa, false); err != nil {
		l.e.log.Error("cannot watch listener", "listener", ln.spec.name, "err", err)
	}
}

// closeListener stops accepting on ln and forgets it.
func (l *loop) closeListener(ln *listener) {
	for i, x := range l.lns {
		if x == ln {
			l.lns = append(l.lns[:i], l.lns[i+1:]...)
			break
		}
	}
	if ln.fd < 0 {
		return
	}
	if !ln.paused {
		_ = l.poller.Delete(ln.fd)
	}
	l.clearEntry(ln.fd)
	unix.Close(ln.fd)
	ln.fd = -1
}

func (l *loop) setEntry(fd int, e fdEntry) {
	if fd >= len(l.fds) {
		n := 2 * len(l.fds)
		if n < 1024 {
			n = 1024
		}
		for n <= fd {
			n *= 2
		}
		grown := make([]fdEntry, n)
		copy(grown, l.fds)
		l.fds = grown
	}
	l.fds[fd] = e
}

func (l *loop) clearEntry(fd int) {
	if fd >= 0 && fd < len(l.fds) {
		l.fds[fd] = fdEntry{}
	}
}

func (l *loop) run() {
	defer l.e.wg.Done()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	err := l.poller.Polling(l.onEvent)
	if err != nil && err != gerrors.ErrEngineShutdown {
		l.e.log.Error("event loop stopped", "loop", l.id, "err", err)
		l.shutdown()
	}
	l.release()
}

// onEvent is the poller's callback for every ready descriptor.
func (l *loop) onEvent(fd int, ev netpoll.IOEvent, _ netpoll.IOFlags) error {
	if fd < len(l.fds) {
		en := l.fds[fd]
		if en.s != nil {
			l.onSide(en.s, ev)
			return nil
		}
		if en.ln != nil {
			l.accept(en.ln)
			return nil
		}
		if en.att != nil {
			l.onAttempt(en.att, fd, ev)
			return nil
		}
	}
	if fd == l.tfd {
		l.onTimer()
	}
	return nil
}

// post hands f to the loop, to run on the loop's goroutine. It returns
// false, and f never runs, if the loop has stopped: the caller then cleans
// up what it was handing over itself.
func (l *loop) post(f func(*loop)) bool {
	l.mu.Lock()
	if l.stopped {
		l.mu.Unlock()
		return false
	}
	l.inbox = append(l.inbox, f)
	wake := !l.wake
	l.wake = true
	l.mu.Unlock()
	if wake {
		_ = l.poller.Trigger(queue.HighPriority, l.drainFn, nil)
	}
	return true
}

func (l *loop) isStopped() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stopped
}

func (l *loop) drainInbox(any) error {
	l.mu.Lock()
	work := l.inbox
	l.inbox = l.spare[:0]
	l.wake = false
	l.mu.Unlock()
	for i, f := range work {
		f(l)
		work[i] = nil
	}
	l.spare = work[:0]
	if l.isStopped() {
		return gerrors.ErrEngineShutdown
	}
	return nil
}

// stop asks the loop to close everything and return from Polling.
func (l *loop) stop() {
	l.post(func(l *loop) {
		if !l.isStopped() {
			l.shutdown()
		}
	})
}

// shutdown runs on the loop: closes every listener and tunnel, marks the
// loop stopped and runs what is left in the inbox (dial results arriving
// later find the loop stopped and close their sockets themselves).
func (l *loop) shutdown() {
	l.closeListeners()
	for fd := range l.fds {
		if s := l.fds[fd].s; s != nil {
			l.closeTunnel(s.t, false)
		}
	}
	l.mu.Lock()
	l.stopped = true
	work := l.inbox
	l.inbox = nil
	l.mu.Unlock()
	for _, f := range work {
		f(l)
	}
}

func (l *loop) closeListeners() {
	for len(l.lns) > 0 {
		l.closeListener(l.lns[len(l.lns)-1])
	}
}

// accept takes up to a batch of connections from ln.
func (l *loop) accept(ln *listener) {
	for i := 0; i < 64 && ln.fd >= 0; i++ {
		fd, sa, err := syscall.Accept4(ln.fd, syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
		if err != nil {
			switch err {
			case unix.EAGAIN:
				return
			case unix.EINTR, unix.ECONNABORTED, unix.EPROTO:
				continue
			case unix.EMFILE, unix.ENFILE, unix.ENOBUFS, unix.ENOMEM:
				// Out of descriptors or memory: stop watching the listener
				// for a moment (level-triggered, it would report the same
				// pending connection at once: a spin), keep serving the
				// tunnels already open.
				if !ln.burst {
					ln.burst = true
					l.e.log.Warn("accept paused: out of file descriptors or memory; existing tunnels keep running; raise the fd limit (ulimit -n) or lower the load",
						"listener", ln.spec.name, "err", os.NewSyscallError("accept4", err), "pause", 100*time.Millisecond)
				}
				ln.paused = true
				ln.resumeAt = l.tick + l.e.acceptPauseTk
				_ = l.poller.Delete(ln.fd)
				return
			default:
				l.e.log.Error("accept failed", "listener", ln.spec.name, "err", os.NewSyscallError("accept4", err))
				return
			}
		}
		if ln.burst {
			ln.burst = false
			l.e.log.Info("accept resumed", "listener", ln.spec.name)
		}
		client := addrPortOf(sa)
		if reason := l.e.overLimit(client); reason != "" {
			// Nothing can be answered yet (the front end is unknown): the
			// connection is closed, counted and logged once a second.
			unix.Close(fd)
			l.shed(ln, reason)
			continue
		}
		if l.e.cfg.handoff {
			l.handOff(fd, client, ln.spec)
			continue
		}
		l.open(fd, client, ln.spec)
	}
}

// shed counts a connection closed at accept for reason and logs the
// burst at most once a second per loop.
func (l *loop) shed(ln *listener, reason string) {
	l.e.counters("").refuse(VerdictError, reason)
	l.refused.Add(1)
	l.shedCount++
	if l.tick-l.shedLogged >= l.e.secondTicks || l.shedLogged == 0 {
		l.e.log.Warn("connections closed at accept: "+reason, "listener", ln.spec.name, "closed", l.shedCount,
			"max_handshakes", l.e.maxHandshakes, "max_conns_per_client", l.e.cfg.MaxConnsPerClient)
		l.shedLogged, l.shedCount = l.tick|1, 0
	}
}

// handOff gives an accepted connection to the next loop, round-robin.
func (l *loop) handOff(fd int, client netip.AddrPort, spec *lnSpec) {
	l.next = (l.next + 1) % len(l.e.loops)
	to := l.e.loops[l.next]
	if to == l {
		l.open(fd, client, spec)
		return
	}
	if !to.post(func(to *loop) {
		if to.isStopped() {
			unix.Close(fd)
			return
		}
		to.open(fd, client, spec)
	}) {
		unix.Close(fd)
	}
}

// resumeListeners re-arms listeners whose accept pause is over.
func (l *loop) resumeListeners() {
	for _, ln := range l.lns {
		if ln.paused && ln.fd >= 0 && int32(l.tick-ln.resumeAt) >= 0 {
			ln.paused = false
			l.pa.FD = ln.fd
			if err := l.poller.AddRead(&l.pa, false); err != nil {
				l.e.log.Error("cannot re-arm listener", "listener", ln.spec.name, "err", err)
			}
		}
	}
}

// onTimer advances the tick and fires the wheel slots it passed.
func (l *loop) onTimer() {
	n, err := unix.Read(l.tfd, l.stash)
	if err != nil || n != 8 {
		return
	}
	exp := uint64(l.stash[0]) | uint64(l.stash[1])<<8 | uint64(l.stash[2])<<16 | uint64(l.stash[3])<<24 |
		uint64(l.stash[4])<<32 | uint64(l.stash[5])<<40 | uint64(l.stash[6])<<48 | uint64(l.stash[7])<<56
	if exp > uint64(len(l.wheel.slots)) {
		// A long stall: every slot is due; visit each once.
		l.tick += uint32(exp) - uint32(len(l.wheel.slots))
		exp = uint64(len(l.wheel.slots))
	}
	for ; exp > 0; exp-- {
		l.tick++
		for t := l.wheel.take(l.tick); t != nil; {
			next := t.wnext
			t.wprev, t.wnext = nil, nil
			if t.state != stateClosed {
				l.onDeadline(t)
			}
			t = next
		}
	}
	l.resumeListeners()
}

// getBuf returns an empty pending buffer; putBuf gives one back. Buffers
// exist only while a peer is slower than its sender (invariant 3).
func (l *loop) getBuf() []byte {
	if n := len(l.free); n > 0 {
		b := l.free[n-1]
		l.free[n-1] = nil
		l.free = l.free[:n-1]
		return b
	}
	return make([]byte, 0, l.e.cfg.HighWatermark)
}

func (l *loop) putBuf(b []byte) {
	if cap(b) == l.e.cfg.HighWatermark && len(l.free) < 64 {
		l.free = append(l.free, b[:0])
	}
}

// yield asks epoll to report s again after the other descriptors ready
// now: EPOLL_CTL_MOD on an edge-triggered descriptor re-checks readiness
// and queues an event if input is waiting. A side that used its read
// budget yields this way, so one busy tunnel cannot starve its loop.
func (l *loop) yield(s *side) {
	l.pa.FD = s.fd
	if err := l.poller.ModReadWrite(&l.pa, true); err != nil {
		l.abort(s.t, err)
	}
}
