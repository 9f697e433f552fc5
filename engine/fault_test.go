package engine

// The fault campaign (issue 9): targets that reset or say nothing, a dial
// pool saturated by names that never resolve, thousands of silent clients,
// random bytes, descriptor exhaustion with tunnels open. Each test is
// bounded in time: every wait has a deadline and fails when it passes.

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fastsocks/fastsocks/dial"
	"github.com/fastsocks/fastsocks/policy"
	"github.com/fastsocks/fastsocks/proto/socks5"
)

// faultHangResolver resolves nothing: every DNS exchange waits until its
// context ends. No packet leaves the process.
func faultHangResolver() *net.Resolver {
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		},
	}
}

// faultClosed reports whether err is how a connection the proxy closed
// ends a read: EOF or a reset.
func faultClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
}

func faultTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// faultReadReply reads a SOCKS5 reply (after the method selection) from r
// and returns its REP. For use off the test goroutine: it returns errors.
func faultReadReply(r io.Reader) (socks5.ReplyCode, error) {
	head := make([]byte, 4)
	if _, err := io.ReadFull(r, head); err != nil {
		return 0, fmt.Errorf("reply head: %w", err)
	}
	var rest int
	switch head[3] {
	case 0x01:
		rest = 4 + 2
	case 0x04:
		rest = 16 + 2
	default:
		return 0, fmt.Errorf("reply ATYP %#x (head % x)", head[3], head)
	}
	full := append(head, make([]byte, rest)...)
	if _, err := io.ReadFull(r, full[4:]); err != nil {
		return 0, fmt.Errorf("reply address: %w", err)
	}
	rep, _, n, err := socks5.ParseReply(full)
	if err != nil || n != len(full) {
		return 0, fmt.Errorf("ParseReply(% x) = %v, %d, %v", full, rep, n, err)
	}
	return rep, nil
}

// faultRequest connects to a SOCKS5 proxy at addr, asks for host:port
// (greeting and request in one write) and returns the connection and the
// REP, all within d. The caller closes the connection.
func faultRequest(addr, host string, port uint16, d time.Duration) (net.Conn, socks5.ReplyCode, error) {
	c, err := net.DialTimeout("tcp", addr, d)
	if err != nil {
		return nil, 0, err
	}
	c.SetDeadline(time.Now().Add(d))
	msg := socks5.AppendRequest([]byte{0x05, 0x01, 0x00}, socks5.CmdConnect, host, port)
	if _, err := c.Write(msg); err != nil {
		c.Close()
		return nil, 0, fmt.Errorf("write request: %w", err)
	}
	sel := make([]byte, 2)
	if _, err := io.ReadFull(c, sel); err != nil {
		c.Close()
		return nil, 0, fmt.Errorf("method selection: %w", err)
	}
	if !bytes.Equal(sel, []byte{0x05, 0x00}) {
		c.Close()
		return nil, 0, fmt.Errorf("method selection % x", sel)
	}
	rep, err := faultReadReply(c)
	if err != nil {
		c.Close()
		return nil, 0, err
	}
	c.SetDeadline(time.Time{})
	return c, rep, nil
}

// faultEcho sends size random bytes over c and checks they come back, all
// within d.
func faultEcho(c net.Conn, size int, d time.Duration) error {
	data := make([]byte, size)
	crand.Read(data)
	c.SetDeadline(time.Now().Add(d))
	defer c.SetDeadline(time.Time{})
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		errc <- err
	}()
	got := make([]byte, size)
	_, rerr := io.ReadFull(c, got)
	if werr := <-errc; werr != nil {
		return fmt.Errorf("echo write: %w", werr)
	}
	if rerr != nil {
		return fmt.Errorf("echo read: %w", rerr)
	}
	if !bytes.Equal(got, data) {
		return errors.New("echoed bytes differ")
	}
	return nil
}

// TestFaultTargetResetMidStream: a target that resets its connection in
// the middle of a stream makes the client's read end (reset or EOF) within
// seconds, whether the client is reading at the time or has let the proxy
// fill up with bytes it has not taken; the tunnel is gone afterwards.
func TestFaultTargetResetMidStream(t *testing.T) {
	t.Run("client-reading", func(t *testing.T) {
		const total = 64 << 10
		clientGot := make(chan struct{})
		tg := startTarget(t, func(c *net.TCPConn) {
			data := make([]byte, total)
			crand.Read(data)
			if _, err := c.Write(data); err != nil {
				return
			}
			select {
			case <-clientGot: // the client is reading: reset now
			case <-time.After(10 * time.Second):
			}
			c.SetLinger(0)
			c.Close()
		})
		p := startProxy(t, []string{"localhost"}, nil)
		c := tunnelTo(t, p, tg.port)
		buf := make([]byte, 4<<10)
		got, signaled := 0, false
		var resetAt time.Time
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			n, err := c.Read(buf)
			got += n
			if !signaled && got >= 16<<10 {
				signaled, resetAt = true, time.Now()
				close(clientGot)
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
			}
			if err == nil {
				continue
			}
			switch {
			case faultTimeout(err) && !signaled:
				t.Fatalf("only %d bytes of the stream arrived in 10s", got)
			case faultTimeout(err):
				t.Fatalf("the target reset %v ago and the client's read still hangs (%d bytes read)", time.Since(resetAt).Round(time.Millisecond), got)
			case !faultClosed(err):
				t.Fatalf("client read ended with %v, want a reset or EOF", err)
			}
			t.Logf("client read %d of %d bytes, then %v, %v after the reset was asked for", got, total, err, time.Since(resetAt).Round(time.Millisecond))
			break
		}
		if !signaled {
			t.Fatalf("the stream ended after %d bytes, before the target reset", got)
		}
		if got > total {
			t.Fatalf("client read %d bytes, the target sent %d", got, total)
		}
		mustWait(t, 5*time.Second, "the tunnel count to return to 0", func() bool {
			s := p.e.Stats()
			return s.Tunnels == 0 && s.Active == 0
		})
	})

	t.Run("client-backlogged", func(t *testing.T) {
		// The client does not read: the proxy holds a direction's worth of
		// bytes and stops reading the target, which blocks; then the target
		// resets. The proxy learns of the reset while its reader is paused.
		blocked := make(chan int, 1) // bytes the target got written
		tg := startTarget(t, func(c *net.TCPConn) {
			chunk := make([]byte, 16<<10)
			crand.Read(chunk)
			sent := 0
			stop := time.Now().Add(10 * time.Second)
			for time.Now().Before(stop) {
				c.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
				n, err := c.Write(chunk)
				sent += n
				if faultTimeout(err) {
					break // the proxy stopped reading
				}
				if err != nil {
					sent = -1
					break
				}
			}
			c.SetLinger(0)
			c.Close()
			blocked <- sent
		})
		p := startProxy(t, []string{"localhost"}, nil)
		c := tunnelTo(t, p, tg.port)
		c.SetReadBuffer(4 << 10)
		var sent int
		select {
		case sent = <-blocked:
		case <-time.After(15 * time.Second):
			t.Fatal("the target never reset")
		}
		if sent < 0 {
			t.Fatal("the target's write failed before the proxy applied backpressure")
		}
		resetAt := time.Now()
		c.SetReadDeadline(resetAt.Add(5 * time.Second))
		n, err := io.Copy(io.Discard, c)
		switch {
		case faultTimeout(err):
			t.Fatalf("the target reset %v ago (after writing %d bytes) and the client's read still hangs after %d bytes", time.Since(resetAt).Round(time.Millisecond), sent, n)
		case err != nil && !faultClosed(err):
			t.Fatalf("client read ended with %v, want a reset or EOF", err)
		}
		t.Logf("target wrote %d bytes before blocking; client read %d, then err=%v", sent, n, err)
		mustWait(t, 5*time.Second, "the tunnel count to return to 0", func() bool {
			s := p.e.Stats()
			return s.Tunnels == 0 && s.Active == 0
		})
	})
}

// TestFaultSilentTarget: a target that accepts and never sends or reads,
// under a client that says nothing either: the idle timeout closes both
// sides, not before it is due.
func TestFaultSilentTarget(t *testing.T) {
	const idle = 300 * time.Millisecond
	type ending struct {
		n   int
		err error
		at  time.Time
	}
	targetEnd := make(chan ending, 1)
	tg := startTarget(t, func(c *net.TCPConn) {
		// Not a read for data: the proxy never sends any. The read ends
		// when the proxy closes its side (EOF) or after the deadline.
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := c.Read(make([]byte, 1))
		targetEnd <- ending{n, err, time.Now()}
	})
	p := startProxy(t, []string{"localhost"}, func(c *Config) { c.IdleTimeout = idle })
	c := tunnelTo(t, p, tg.port)
	start := time.Now()
	c.SetReadDeadline(start.Add(2 * time.Second))
	n, err := c.Read(make([]byte, 1))
	d := time.Since(start)
	switch {
	case faultTimeout(err):
		t.Fatalf("silent tunnel still open after %v (idle timeout %v)", d.Round(time.Millisecond), idle)
	case err == nil || n > 0:
		t.Fatalf("client got %d bytes from a silent target", n)
	case !faultClosed(err):
		t.Fatalf("client read ended with %v, want EOF or reset", err)
	}
	if d < idle-50*time.Millisecond {
		t.Fatalf("silent tunnel closed after %v, before the %v idle timeout", d, idle)
	}
	select {
	case e := <-targetEnd:
		if e.n > 0 || !faultClosed(e.err) {
			t.Fatalf("target's conn: read %d bytes, err %v; want EOF or reset", e.n, e.err)
		}
		if e.at.Sub(start) > 2*time.Second {
			t.Fatalf("target's side closed %v after the tunnel opened", e.at.Sub(start))
		}
		t.Logf("client closed after %v, target's side after %v", d.Round(time.Millisecond), e.at.Sub(start).Round(time.Millisecond))
	case <-time.After(5 * time.Second):
		t.Fatal("the proxy never closed the target's side")
	}
	mustWait(t, 2*time.Second, "Active to return to 0", func() bool { return p.e.Stats().Active == 0 })
}

// TestFaultDialPoolSaturated: tenant A floods a small dial pool with names
// that never resolve; every one of A's requests is answered (timeout or
// queue full) within the pool's deadline and a margin, and meanwhile
// tenant B, whose target is in /etc/hosts and needs no pool worker, opens
// tunnels and relays through them without error or delay.
func TestFaultDialPoolSaturated(t *testing.T) {
	const (
		workers  = 4
		queue    = 8
		timeout  = time.Second
		flooders = 20 // more than workers + queue: some find the queue full
	)
	pool := newPool(t, dial.Config{Workers: workers, Queue: queue, Resolver: faultHangResolver(), Timeout: timeout})
	tg := startTarget(t, echoHandler)
	p := startProxy(t, nil, func(c *Config) {
		c.Listeners = []Listener{{Address: "127.0.0.1:0", Tenant: "a"}, {Address: "127.0.0.1:0", Tenant: "b"}}
		c.Tenants = []*Tenant{
			{Name: "a", Policy: policy.MustNew([]string{"**.test"}, nil), AllowPrivateDest: loopbackOK},
			{Name: "b", Policy: policy.MustNew([]string{"localhost"}, nil), AllowPrivateDest: loopbackOK},
		}
		c.Dialer = pool
	})
	addrs := p.e.Addrs()
	if len(addrs) != 2 {
		t.Fatalf("Addrs() = %v, want one per listener", addrs)
	}
	aAddr, bAddr := addrs[0].String(), addrs[1].String()

	var (
		mu     sync.Mutex
		reps   = map[socks5.ReplyCode]int{}
		aErrs  []error
		aMax   time.Duration
		seq    atomic.Int64
		maxQ   atomic.Int64
		stop   = make(chan struct{})
		wg     sync.WaitGroup
		sample sync.WaitGroup
	)
	stopped := false
	halt := func() {
		if !stopped {
			stopped = true
			close(stop)
			wg.Wait()
			sample.Wait()
		}
	}
	defer halt()
	for i := 0; i < flooders; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				name := fmt.Sprintf("nx-%d.test", seq.Add(1))
				start := time.Now()
				c, rep, err := faultRequest(aAddr, name, 80, timeout+4*time.Second)
				lat := time.Since(start)
				if c != nil {
					c.Close()
				}
				mu.Lock()
				if err != nil {
					aErrs = append(aErrs, fmt.Errorf("%s after %v: %w", name, lat.Round(time.Millisecond), err))
				} else {
					reps[rep]++
					aMax = max(aMax, lat)
				}
				mu.Unlock()
				if err != nil {
					return
				}
				// Pacing, not a readiness wait: a refused request is answered
				// at once, and the flood need not be a busy loop.
				time.Sleep(10 * time.Millisecond)
			}
		}()
	}
	sample.Add(1)
	go func() {
		defer sample.Done()
		for {
			if q := int64(pool.QueueLen()); q > maxQ.Load() {
				maxQ.Store(q)
			}
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	mustWait(t, 5*time.Second, "tenant A to fill the pool's queue", func() bool { return pool.QueueLen() == queue })

	// Tenant B, while the pool stays saturated.
	var bMax time.Duration
	nB := 0
	for start := time.Now(); time.Since(start) < 2*time.Second; nB++ {
		s := time.Now()
		c, rep, err := faultRequest(bAddr, "localhost", tg.port, 5*time.Second)
		if err != nil {
			t.Fatalf("tenant B tunnel %d: %v", nB, err)
		}
		if rep != socks5.RepSucceeded {
			c.Close()
			t.Fatalf("tenant B tunnel %d: REP %v", nB, rep)
		}
		err = faultEcho(c, 4<<10, 5*time.Second)
		c.Close()
		if err != nil {
			t.Fatalf("tenant B tunnel %d: %v", nB, err)
		}
		bMax = max(bMax, time.Since(s))
	}
	st := p.e.Stats()
	halt()

	t.Logf("tenant B: %d tunnels, slowest %v; tenant A: replies %v, slowest %v; dial errors %v; max queue %d",
		nB, bMax.Round(time.Millisecond), reps, aMax.Round(time.Millisecond), st.DialErrors, maxQ.Load())
	if len(aErrs) > 0 {
		t.Fatalf("%d of tenant A's requests got no answer; first: %v", len(aErrs), aErrs[0])
	}
	for rep, n := range reps {
		if rep != socks5.RepHostUnreachable && rep != socks5.RepGeneralFailure {
			t.Errorf("tenant A got REP %v %d times, want host unreachable (timeout) or general failure (queue full)", rep, n)
		}
	}
	if reps[socks5.RepHostUnreachable] < workers {
		t.Errorf("tenant A: %d timeouts, want at least one per worker (%d): was the pool saturated?", reps[socks5.RepHostUnreachable], workers)
	}
	if aMax > timeout+2*time.Second {
		t.Errorf("a tenant A request waited %v for its answer; the pool's deadline is %v", aMax, timeout)
	}
	if maxQ.Load() != queue {
		t.Errorf("pool queue peaked at %d, want %d (full)", maxQ.Load(), queue)
	}
	if nB < 5 {
		t.Errorf("tenant B opened only %d tunnels in 2s", nB)
	}
	if bMax > time.Second {
		t.Errorf("a tenant B tunnel took %v: the saturated pool held it up", bMax)
	}
	mustWait(t, 5*time.Second, "every connection to close", func() bool { return p.e.Stats().Active == 0 })
}

// TestFault3000SilentConnections: 3,000 clients connect and never send a
// byte. A normal tunnel works while they are open, and the handshake
// timeout closes every one of them.
func TestFault3000SilentConnections(t *testing.T) {
	const n = 3000
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur < 2*n+2000 {
		t.Skipf("descriptor limit %d too low for %d clients and their proxy sides", rl.Cur, n)
	}
	tg := startTarget(t, echoHandler)
	p := startProxy(t, []string{"localhost"}, func(c *Config) { c.HandshakeTimeout = time.Second })

	conns := make([]net.Conn, n)
	t.Cleanup(func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	})
	// The normal tunnel runs once half the silent clients are in: while
	// they are open, whatever the dialing speed.
	tunnelErr := make(chan error, 1)
	var hsAtTunnel int64
	go func() {
		if !waitFor(10*time.Second, func() bool { return p.e.Stats().Handshakes >= n/2 }) {
			tunnelErr <- fmt.Errorf("never %d silent clients in handshake at once (%+v)", n/2, p.e.Stats())
			return
		}
		atomic.StoreInt64(&hsAtTunnel, p.e.Stats().Handshakes)
		c, rep, err := faultRequest(p.addr, "localhost", tg.port, 5*time.Second)
		if err == nil && rep != socks5.RepSucceeded {
			err = fmt.Errorf("REP %v", rep)
		}
		if err == nil {
			err = faultEcho(c, 16<<10, 5*time.Second)
		}
		if c != nil {
			c.Close()
		}
		tunnelErr <- err
	}()

	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				// Eight source addresses: eight times the ephemeral ports.
				d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i%8))}}
				c, err := d.Dial("tcp", p.addr)
				if err != nil {
					errs <- fmt.Errorf("dial %d: %w", i, err)
					return
				}
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	dialed := time.Now()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-tunnelErr:
		if err != nil {
			t.Fatalf("normal tunnel among the silent clients: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the normal tunnel did not finish")
	}

	// Every silent client is closed by the proxy: EOF or reset, no byte.
	deadline := dialed.Add(5 * time.Second)
	var open, gotBytes, otherErr atomic.Int64
	var firstOther atomic.Value
	next.Store(0)
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 64)
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				c := conns[i]
				c.SetReadDeadline(deadline)
				k, err := c.Read(buf)
				switch {
				case k > 0:
					gotBytes.Add(1)
				case faultTimeout(err):
					open.Add(1)
				case !faultClosed(err):
					otherErr.Add(1)
					firstOther.CompareAndSwap(nil, fmt.Sprint(err))
				}
			}
		}()
	}
	wg.Wait()
	closedBy := time.Since(start)
	t.Logf("%d clients dialed in %v; %d in handshake when the tunnel ran; all reads ended %v after the first dial",
		n, dialed.Sub(start).Round(time.Millisecond), atomic.LoadInt64(&hsAtTunnel), closedBy.Round(time.Millisecond))
	if open.Load() > 0 || gotBytes.Load() > 0 || otherErr.Load() > 0 {
		t.Fatalf("of %d silent clients: %d still open 5s after the last dial, %d got bytes, %d other errors (first: %v)",
			n, open.Load(), gotBytes.Load(), otherErr.Load(), firstOther.Load())
	}
	for i, c := range conns {
		c.Close()
		conns[i] = nil
	}
	mustWait(t, 5*time.Second, "Active to return to 0", func() bool { return p.e.Stats().Active == 0 })
}

// TestFaultRandomBytes1000: 1,000 clients send random bytes (some after a
// plausible start: a SOCKS5 version byte, a whole greeting, a letter,
// "CONNECT ") and close, half-close or reset. The proxy survives, serves
// SOCKS5 and HTTP CONNECT tunnels afterwards, and keeps no connection.
func TestFaultRandomBytes1000(t *testing.T) {
	const n = 1000
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := mrand.New(mrand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	tg := startTarget(t, echoHandler)
	p := startProxy(t, []string{"localhost"}, func(c *Config) { c.HandshakeTimeout = 2 * time.Second })

	type client struct {
		payload []byte
		end     int // 0 close, 1 half-close and read to the end, 2 reset
	}
	letters := "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	clients := make([]client, n)
	for i := range clients {
		b := make([]byte, 1+rng.IntN(2000))
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		switch i % 5 {
		case 0:
			b[0] = 0x05
		case 1:
			copy(b, []byte{0x05, 0x01, 0x00}) // a valid greeting, then junk
		case 2:
			b[0] = letters[rng.IntN(len(letters))]
		case 3:
			copy(b, "CONNECT ")
		case 4:
			for b[0] == 0x05 || (b[0] >= 'A' && b[0] <= 'Z') || (b[0] >= 'a' && b[0] <= 'z') {
				b[0] = byte(rng.Uint32())
			}
		}
		clients[i] = client{payload: b, end: rng.IntN(3)}
	}

	var next atomic.Int64
	var wg sync.WaitGroup
	var failures atomic.Int64
	var firstFailure atomic.Value
	fail := func(format string, args ...any) {
		failures.Add(1)
		firstFailure.CompareAndSwap(nil, fmt.Sprintf(format, args...))
	}
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				cl := clients[i]
				nc, err := net.DialTimeout("tcp", p.addr, 5*time.Second)
				if err != nil {
					fail("dial %d: %v", i, err)
					return
				}
				c := nc.(*net.TCPConn)
				c.SetDeadline(time.Now().Add(5 * time.Second))
				c.Write(cl.payload) // the proxy may have refused and closed already
				switch cl.end {
				case 0:
					c.Close()
				case 1:
					c.CloseWrite()
					// A half-closed client is closed by the proxy: its answer
					// (if any), then EOF or reset, within the handshake timeout
					// or the refusal linger.
					_, err := io.Copy(io.Discard, c)
					if faultTimeout(err) {
						fail("client %d (% x...): half-closed, still open after 5s", i, cl.payload[:min(8, len(cl.payload))])
					}
					c.Close()
				case 2:
					c.SetLinger(0)
					c.Close()
				}
			}
		}()
	}
	wg.Wait()
	if failures.Load() > 0 {
		t.Fatalf("%d garbage clients failed; first: %v", failures.Load(), firstFailure.Load())
	}

	// SOCKS5 still works.
	c := tunnelTo(t, p, tg.port)
	if err := faultEcho(c, 8<<10, 5*time.Second); err != nil {
		t.Fatalf("SOCKS5 tunnel after the garbage: %v", err)
	}
	c.Close()
	// HTTP CONNECT still works.
	h := dialProxy(t, p)
	write(t, h, []byte(fmt.Sprintf("CONNECT localhost:%d HTTP/1.1\r\nHost: localhost:%d\r\n\r\n", tg.port, tg.port)))
	want := "HTTP/1.1 200 Connection Established\r\n\r\n"
	if got := readN(t, h, len(want)); string(got) != want {
		t.Fatalf("HTTP CONNECT after the garbage: %q", got)
	}
	if err := faultEcho(h, 8<<10, 5*time.Second); err != nil {
		t.Fatalf("HTTP CONNECT tunnel after the garbage: %v", err)
	}
	h.Close()
	mustWait(t, 5*time.Second, "Active to return to 0", func() bool { return p.e.Stats().Active == 0 })
}

const faultFDChildEnv = "FASTSOCKS_FAULT_FD_CHILD"

// TestFaultFDExhaustionWithTunnels complements TestFDExhaustion (which
// exhausts descriptors with idle clients and checks one tunnel with a
// short echo): here the proxy runs out of descriptors because of the
// tunnels themselves, while several tunnels stream continuously. It checks
// that the streams keep relaying through the exhaustion, that a client
// accepted with the last descriptor, whose dial then cannot get a socket,
// is answered rather than left hanging, and that new tunnels work again
// once tunnels close.
func TestFaultFDExhaustionWithTunnels(t *testing.T) {
	if os.Getenv(faultFDChildEnv) == "1" {
		lowFDChild(func(c *Config) {
			c.HandshakeTimeout = time.Minute // the spare client waits in its handshake
			// A client refused at the limit keeps its descriptor until it
			// closes, so the parent knows how many descriptors are in use.
			c.Linger = time.Minute
		})
		return
	}
	tg := startTarget(t, echoHandler)
	_, addr, logs := startLowFDChild(t, "TestFaultFDExhaustionWithTunnels", faultFDChildEnv)
	var conns []net.Conn // every client connection, closed at the end
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()

	// Streams: tunnels that relay continuously through the whole test.
	const streams = 4
	type stream struct {
		rounds atomic.Int64
		err    atomic.Value // error: why the stream stopped
	}
	progressed := func(i int, s *stream, since int64) func() bool {
		return func() bool {
			if err := s.err.Load(); err != nil {
				t.Fatalf("stream %d broke after %d rounds: %v", i, s.rounds.Load(), err)
			}
			return s.rounds.Load() >= since+3
		}
	}
	ss := make([]*stream, streams)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	stopped := false
	halt := func() {
		if !stopped {
			stopped = true
			close(stop)
			wg.Wait()
		}
	}
	defer halt()
	for i := range ss {
		c, rep, err := faultRequest(addr, "localhost", tg.port, 5*time.Second)
		if err != nil || rep != socks5.RepSucceeded {
			t.Fatalf("stream %d: REP %v, err %v", i, rep, err)
		}
		conns = append(conns, c)
		s := &stream{}
		ss[i] = s
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := faultEcho(c, 16<<10, 5*time.Second); err != nil {
					s.err.Store(err)
					return
				}
				s.rounds.Add(1)
			}
		}()
	}

	// A client in its handshake: one descriptor to give back later.
	spare, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	conns = append(conns, spare)
	greet(t, spare)

	// Fill the proxy with tunnels until a request gets no answer: accept
	// is paused for want of descriptors.
	paused := func() bool { return strings.Contains(logs.String(), "accept paused") }
	var fillers []net.Conn
	var queued net.Conn // connected, its request sent, not accepted
	var refusedAtLimit []socks5.ReplyCode
	for i := 0; i < 200 && queued == nil; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("filler %d: dial: %v", i, err)
		}
		conns = append(conns, c)
		c.SetDeadline(time.Now().Add(2 * time.Second))
		write(t, c, socks5.AppendRequest([]byte{0x05, 0x01, 0x00}, socks5.CmdConnect, "localhost", tg.port))
		sel := make([]byte, 2)
		_, err = io.ReadFull(c, sel)
		switch {
		case faultTimeout(err):
			// Not accepted: it waits in the accept queue, with its request.
			mustWait(t, 3*time.Second, "the child to log 'accept paused' (a request went unanswered for 2s)", paused)
			queued = c
			continue
		case err != nil:
			t.Fatalf("filler %d: %v", i, err)
		}
		rep, err := faultReadReply(c)
		if err != nil {
			t.Fatalf("filler %d: %v", i, err)
		}
		c.SetDeadline(time.Time{})
		if rep != socks5.RepSucceeded {
			// Accepted with the last descriptor; the dial found none. The
			// client stays open, so the proxy keeps that descriptor (the
			// child's Linger is long) and the next request must queue.
			refusedAtLimit = append(refusedAtLimit, rep)
			continue
		}
		fillers = append(fillers, c)
	}
	if queued == nil {
		t.Fatalf("200 tunnels and the proxy under RLIMIT_NOFILE 64 answered them all")
	}
	mustWait(t, 5*time.Second, "the child to log 'accept paused'", paused)
	t.Logf("%d filler tunnels before accept paused; %d requests refused at the limit %v", len(fillers), len(refusedAtLimit), refusedAtLimit)

	// The streams keep relaying while the proxy has no descriptor left.
	before := make([]int64, streams)
	for i, s := range ss {
		before[i] = s.rounds.Load()
	}
	for i, s := range ss {
		mustWait(t, 5*time.Second, fmt.Sprintf("stream %d to relay while descriptors are exhausted", i), progressed(i, s, before[i]))
	}

	// Give back exactly one descriptor: the queued client is accepted
	// with it, and its dial can have no socket. It must be answered.
	spare.Close()
	queued.SetDeadline(time.Now().Add(5 * time.Second))
	sel := make([]byte, 2)
	if _, err := io.ReadFull(queued, sel); err != nil {
		t.Fatalf("queued client, accepted when one descriptor came free: no method selection: %v", err)
	}
	rep, err := faultReadReply(queued)
	if err != nil {
		t.Fatalf("queued client, accepted with the last descriptor: no answer to its request: %v", err)
	}
	t.Logf("client accepted with the last descriptor: REP %v", rep)
	if rep == socks5.RepSucceeded {
		fillers = append(fillers, queued) // a descriptor was free after all
	} else {
		expectClosed(t, queued, 5*time.Second)
	}

	// Free descriptors: new tunnels work again.
	for _, c := range fillers[:len(fillers)/2] {
		c.Close()
	}
	var fresh net.Conn
	mustWait(t, 10*time.Second, "a new tunnel after descriptors freed", func() bool {
		c, rep, err := faultRequest(addr, "localhost", tg.port, 2*time.Second)
		if c != nil {
			conns = append(conns, c)
		}
		if err != nil || rep != socks5.RepSucceeded {
			return false
		}
		fresh = c
		return true
	})
	if err := faultEcho(fresh, 16<<10, 5*time.Second); err != nil {
		t.Fatalf("new tunnel after descriptors freed: %v", err)
	}
	for i, s := range ss {
		before[i] = s.rounds.Load()
	}
	for i, s := range ss {
		mustWait(t, 5*time.Second, fmt.Sprintf("stream %d to relay after descriptors freed", i), progressed(i, s, before[i]))
	}
	halt()
	for i, s := range ss {
		if err := s.err.Load(); err != nil {
			t.Errorf("stream %d broke after %d rounds: %v", i, s.rounds.Load(), err)
		}
	}
	if !strings.Contains(logs.String(), "accept resumed") {
		t.Errorf("no 'accept resumed' log line")
	}
}

// faultFDChild is the child side: a proxy under RLIMIT_NOFILE 64 with one
// loop, serving until its stdin closes.
