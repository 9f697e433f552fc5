package engine

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	mrand "math/rand/v2"
	"net"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fastsocks/fastsocks/dial"
	"github.com/fastsocks/fastsocks/proto/socks5"
)

// hashHandler reads until EOF, answers with the SHA-256 of what it read,
// then closes.
func hashHandler(c *net.TCPConn) {
	h := sha256.New()
	if _, err := io.Copy(h, c); err != nil {
		return
	}
	c.Write(h.Sum(nil))
}

// TestHalfCloseHash: the client sends 1 MiB and half-closes; the target
// sees EOF only after every byte, answers with their hash, and the answer
// comes back on the other direction, which stays open. Twenty times.
func TestHalfCloseHash(t *testing.T) {
	tg := startTarget(t, hashHandler)
	p := startProxy(t, []string{"localhost"}, nil)
	for i := 0; i < 20; i++ {
		c := tunnelTo(t, p, tg.port)
		data := make([]byte, 1<<20)
		rand.Read(data)
		want := sha256.Sum256(data)
		errc := make(chan error, 1)
		go func() {
			_, err := c.Write(data)
			if err == nil {
				err = c.CloseWrite()
			}
			errc <- err
		}()
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		got, err := io.ReadAll(c)
		if err != nil {
			t.Fatalf("round %d: read: %v", i, err)
		}
		if werr := <-errc; werr != nil {
			t.Fatalf("round %d: write: %v", i, werr)
		}
		if !bytes.Equal(got, want[:]) {
			t.Fatalf("round %d: hash %x, want %x", i, got, want)
		}
		c.Close()
	}
	mustWait(t, 5*time.Second, "tunnels to close", func() bool { return p.e.Stats().Active == 0 })
}

// TestTargetSendsThenClosesSlowReader: the target writes 16 MiB and closes
// at once; the client reads slowly; every byte arrives, in order.
func TestTargetSendsThenClosesSlowReader(t *testing.T) {
	const size = 16 << 20
	data := make([]byte, size)
	rand.Read(data)
	want := sha256.Sum256(data)
	tg := startTarget(t, func(c *net.TCPConn) {
		c.Write(data)
		// Close with the data possibly still queued in the proxy.
	})
	p := startProxy(t, []string{"localhost"}, nil)
	c := tunnelTo(t, p, tg.port)
	h := sha256.New()
	buf := make([]byte, 256<<10)
	total := 0
	c.SetReadDeadline(time.Now().Add(60 * time.Second))
	for i := 0; ; i++ {
		n, err := c.Read(buf)
		h.Write(buf[:n])
		total += n
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("read after %d bytes: %v", total, err)
		}
		if i%8 == 0 {
			time.Sleep(2 * time.Millisecond) // a slow reader
		}
	}
	if total != size || !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatalf("got %d bytes (hash match %v), want %d", total, bytes.Equal(h.Sum(nil), want[:]), size)
	}
}

// TestSlowReaderBoundsMemory: clients that never read while their targets
// flood must not grow the proxy's heap past the watermarks.
func TestSlowReaderBoundsMemory(t *testing.T) {
	const tunnels = 16
	var written sync.WaitGroup
	written.Add(tunnels)
	stop := make(chan struct{})
	tg := startTarget(t, func(c *net.TCPConn) {
		chunk := make([]byte, 64<<10)
		done := false
		for !done {
			c.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
			_, err := c.Write(chunk)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				// Blocked: the proxy stopped reading. Report once.
				if !done {
					written.Done()
					done = true
				}
			} else if err != nil {
				written.Done()
				return
			}
		}
		<-stop
	})
	p := startProxy(t, []string{"localhost"}, nil)
	var conns []*net.TCPConn
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := 0; i < tunnels; i++ {
		c := tunnelTo(t, p, tg.port)
		c.SetReadBuffer(4 << 10)
		conns = append(conns, c)
	}
	written.Wait() // every target is blocked: the proxy holds what it holds
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	close(stop)
	growth := int64(after.HeapInuse) - int64(before.HeapInuse)
	// Each blocked direction may hold one pending buffer of the high
	// watermark; allow that, the tunnels' small structs and 1 MiB of slack
	// for the test's own goroutines.
	limit := int64(tunnels*DefaultHighWatermark + 1<<20)
	t.Logf("heap growth with %d flooded, unread tunnels: %d KiB (limit %d KiB)", tunnels, growth>>10, limit>>10)
	if growth > limit {
		t.Fatalf("heap grew %d bytes with %d stalled tunnels; limit %d", growth, tunnels, limit)
	}
	for _, c := range conns {
		c.Close()
	}
}

// TestClientGoneDuringDialCancelsIt: a client that leaves while its name
// is still resolving cancels the dial; nothing is left behind (the leak
// check at cleanup counts goroutines and descriptors).
func TestClientGoneDuringDialCancelsIt(t *testing.T) {
	started, canceled := make(chan struct{}, 1), make(chan error, 1)
	pool := newPool(t, dial.Config{Resolver: blockingResolver(started, canceled), Timeout: time.Minute})
	p := startProxy(t, []string{"**.test"}, func(c *Config) { c.Dialer = pool; c.DialTimeout = time.Minute })
	c := dialProxy(t, p)
	greet(t, c)
	write(t, c, socks5.AppendRequest(nil, socks5.CmdConnect, "slow.test", 80))
	select {
	case <-started: // the lookup is in flight in a pool worker
	case <-time.After(10 * time.Second):
		t.Fatal("the lookup never started")
	}
	c.Close()
	select {
	case err := <-canceled:
		if err == nil {
			t.Fatal("resolver context ended without error")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the dial was not canceled when its client left")
	}
	mustWait(t, 5*time.Second, "the tunnel to close", func() bool { return p.e.Stats().Active == 0 })
}

// TestManyConcurrentTunnels: 1000 tunnels at once, each sending random
// data through an echo target and checking it comes back intact.
func TestManyConcurrentTunnels(t *testing.T) {
	const n = 1000
	tg := startTarget(t, echoHandler)
	p := startProxy(t, []string{"localhost"}, nil)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			errs <- oneEchoTunnel(p.addr, tg.port, 1+mrand.IntN(64<<10))
		}(i)
	}
	wg.Wait()
	close(errs)
	failed := 0
	var first error
	for err := range errs {
		if err != nil {
			if first == nil {
				first = err
			}
			failed++
		}
	}
	if failed > 0 {
		t.Fatalf("%d of %d tunnels failed; first: %v", failed, n, first)
	}
	mustWait(t, 10*time.Second, "tunnels to close", func() bool { return p.e.Stats().Active == 0 })
}

func oneEchoTunnel(proxyAddr string, port uint16, size int) error {
	c, err := net.Dial("tcp", proxyAddr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	msg := []byte{0x05, 0x01, 0x00}
	msg = socks5.AppendRequest(msg, socks5.CmdConnect, "localhost", port)
	if _, err := c.Write(msg); err != nil {
		return err
	}
	head := make([]byte, 2+10)
	if _, err := io.ReadFull(c, head); err != nil {
		return err
	}
	if rep, _, _, err := socks5.ParseReply(head[2:]); err != nil || rep != socks5.RepSucceeded {
		return errors.New("CONNECT refused: " + rep.String())
	}
	data := make([]byte, size)
	rand.Read(data)
	go func() {
		c.Write(data)
		c.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, data) {
		return errors.New("echoed data differs")
	}
	return nil
}

func TestHandshakeTimeout(t *testing.T) {
	p := startProxy(t, nil, func(c *Config) { c.HandshakeTimeout = 200 * time.Millisecond })
	silent := dialProxy(t, p)
	partial := dialProxy(t, p)
	write(t, partial, []byte{0x05, 0x01}) // greeting cut short
	start := time.Now()
	expectClosed(t, silent, 5*time.Second)
	expectClosed(t, partial, 5*time.Second)
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Fatalf("closed after %v, before the 200ms handshake timeout", d)
	}
	if !contains(p.log.String(), "reason=handshake-timeout") {
		t.Errorf("no handshake timeout log line:\n%s", p.log)
	}
}

// TestTunnelOutlivesHandshakeTimeout: the handshake timeout bounds the
// handshake only (the seed wrapped the whole relay in it, killing every
// tunnel after 10 s).
func TestTunnelOutlivesHandshakeTimeout(t *testing.T) {
	tg := startTarget(t, echoHandler)
	p := startProxy(t, []string{"localhost"}, func(c *Config) { c.HandshakeTimeout = 100 * time.Millisecond })
	c := tunnelTo(t, p, tg.port)
	// A second client that never finishes its handshake: once it is cut,
	// the handshake timeout has certainly passed for the first too.
	laggard := dialProxy(t, p)
	expectClosed(t, laggard, 5*time.Second)
	write(t, c, []byte("still here"))
	if got := readN(t, c, 10); string(got) != "still here" {
		t.Fatalf("echo %q", got)
	}
}

func TestIdleTimeout(t *testing.T) {
	tg := startTarget(t, echoHandler)
	p := startProxy(t, []string{"localhost"}, func(c *Config) { c.IdleTimeout = 200 * time.Millisecond })
	c := tunnelTo(t, p, tg.port)
	start := time.Now()
	expectClosed(t, c, 5*time.Second)
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Fatalf("idle tunnel closed after %v", d)
	}
}

// TestSilentClientWhileServerStreamsIsNotIdle: bytes in either direction
// keep a tunnel alive (the seed timed each direction separately).
func TestSilentClientWhileServerStreamsIsNotIdle(t *testing.T) {
	// A byte every idle/10, for 3 idle timeouts: the margin keeps a busy
	// CI machine from making a real gap.
	const idle = time.Second
	const n = 30
	tg := startTarget(t, func(c *net.TCPConn) {
		for i := 0; i < n; i++ {
			if _, err := c.Write([]byte{byte(i)}); err != nil {
				return
			}
			time.Sleep(idle / 10)
		}
	})
	p := startProxy(t, []string{"localhost"}, func(c *Config) { c.IdleTimeout = idle })
	c := tunnelTo(t, p, tg.port)
	for i := 0; i < n; i++ {
		if got := readN(t, c, 1); got[0] != byte(i) {
			t.Fatalf("byte %d = %d", i, got[0])
		}
	}
}

func TestMaxLifetime(t *testing.T) {
	tg := startTarget(t, echoHandler)
	p := startProxy(t, []string{"localhost"}, func(c *Config) { c.MaxLifetime = 300 * time.Millisecond })
	c := tunnelTo(t, p, tg.port)
	start := time.Now()
	// Keep the tunnel busy: lifetime applies even so.
	go func() {
		for i := 0; i < 100; i++ {
			if _, err := c.Write([]byte("x")); err != nil {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	expectClosed(t, c, 5*time.Second)
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Fatalf("closed after %v, before the lifetime", d)
	}
}

// TestResetPassedOn: a target that resets its connection makes the proxy
// reset the client's, not close it cleanly.
func TestResetPassedOn(t *testing.T) {
	tg := startTarget(t, func(c *net.TCPConn) {
		b := make([]byte, 1)
		io.ReadFull(c, b)
		c.SetLinger(0)
		c.Close()
	})
	p := startProxy(t, []string{"localhost"}, nil)
	c := tunnelTo(t, p, tg.port)
	write(t, c, []byte{1})
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := io.ReadAll(c)
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("client saw %v, want connection reset", err)
	}
}

// TestGarbageBytes: random bytes from many clients never crash the proxy
// or leave tunnels; it still serves afterwards.
func TestGarbageBytes(t *testing.T) {
	tg := startTarget(t, echoHandler)
	p := startProxy(t, []string{"localhost"}, func(c *Config) { c.HandshakeTimeout = 2 * time.Second })
	for i := 0; i < 200; i++ {
		c, err := net.Dial("tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		junk := make([]byte, 1+mrand.IntN(600))
		rand.Read(junk)
		if i%2 == 0 {
			junk[0] = 0x05 // get past the first-byte dispatch
		}
		c.Write(junk)
		c.Close()
	}
	c := tunnelTo(t, p, tg.port)
	write(t, c, []byte("ok"))
	if got := readN(t, c, 2); string(got) != "ok" {
		t.Fatalf("echo %q", got)
	}
	c.Close()
	mustWait(t, 5*time.Second, "every garbage connection to close", func() bool { return p.e.Stats().Active == 0 })
}

// TestShutdownDrains: Shutdown stops accepting but lets an open tunnel
// finish its exchange.
func TestShutdownDrains(t *testing.T) {
	tg := startTarget(t, echoHandler)
	p := startProxy(t, []string{"localhost"}, nil)
	c := tunnelTo(t, p, tg.port)
	done := make(chan error, 1)
	go func() {
		ctx, cancel := contextWithTimeout(10 * time.Second)
		defer cancel()
		done <- p.e.Shutdown(ctx)
	}()
	mustWait(t, 5*time.Second, "listeners to close", func() bool {
		c2, err := net.Dial("tcp", p.addr)
		if err == nil {
			c2.Close()
		}
		return err != nil
	})
	write(t, c, []byte("after"))
	if got := readN(t, c, 5); string(got) != "after" {
		t.Fatalf("echo %q", got)
	}
	c.CloseWrite()
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}
