package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// targets are the upstream servers the scenarios reach through the proxy:
// echo listeners (connrate, fanout) and duplex listeners that read and
// discard everything while writing as fast as the peer takes (throughput,
// slowreader). Several ports of each kind keep the proxy's ephemeral ports
// (one 4-tuple per upstream connection) from being the limit.
type targets struct {
	Echo   []uint16
	Duplex []uint16
	PID    int // the process serving them (this one when in-process)

	lns    []net.Listener
	wg     sync.WaitGroup
	active atomic.Int64 // connections open, in process
	stop   func() error // for a subprocess
}

// floodChunk is what duplex targets write, over and over.
var floodChunk = make([]byte, 64<<10)

// startTargets serves n echo and n duplex listeners on 127.0.0.1:0 in this
// process.
func startTargets(n int) (*targets, error) {
	t := &targets{PID: os.Getpid()}
	for i := 0; i < 2*n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Close()
			return nil, err
		}
		t.lns = append(t.lns, ln)
		port := uint16(ln.Addr().(*net.TCPAddr).Port)
		serve := serveEcho
		if i < n {
			t.Echo = append(t.Echo, port)
		} else {
			t.Duplex = append(t.Duplex, port)
			serve = serveDuplex
		}
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			var conns sync.WaitGroup
			defer conns.Wait()
			for {
				c, err := ln.Accept()
				if err != nil {
					if errors.Is(err, net.ErrClosed) {
						return
					}
					// EMFILE and the like: the client sees its dial
					// fail; do not spin.
					time.Sleep(5 * time.Millisecond)
					continue
				}
				conns.Add(1)
				t.active.Add(1)
				go func() {
					defer conns.Done()
					defer t.active.Add(-1)
					serve(c.(*net.TCPConn))
				}()
			}
		}()
	}
	return t, nil
}

// serveEcho echoes until EOF, then half-closes, then closes. It uses a
// small buffer: the scenarios echo at most a few hundred bytes at a time.
func serveEcho(c *net.TCPConn) {
	defer c.Close()
	buf := make([]byte, 2048)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if err == io.EOF {
				c.CloseWrite()
			}
			return
		}
	}
}

// serveDuplex discards what it reads and writes floodChunk until the peer
// goes away.
func serveDuplex(c *net.TCPConn) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if _, err := c.Write(floodChunk); err != nil {
				return
			}
		}
	}()
	io.Copy(io.Discard, struct{ io.Reader }{c})
	c.SetLinger(0)
	c.Close()
	<-done
}

// busy reports whether the targets still hold connections from an earlier
// run: by count in process, by fds (idle is the count when nothing was
// open) for a subprocess.
func (t *targets) busy(idleFDs int) bool {
	if t.stop == nil {
		return t.active.Load() > 0
	}
	n, err := countFDs(t.PID)
	return err == nil && n > idleFDs+8
}

// Close stops the listeners (and the subprocess, if any) and, in process,
// waits for their connections to end.
func (t *targets) Close() error {
	if t.stop != nil {
		return t.stop()
	}
	for _, ln := range t.lns {
		ln.Close()
	}
	t.wg.Wait()
	return nil
}

// targetsLine is what a --serve-targets subprocess prints on stdout once
// listening: "targets echo=P,P,... duplex=P,P,...".
func (t *targets) line() string {
	j := func(ps []uint16) string {
		s := make([]string, len(ps))
		for i, p := range ps {
			s[i] = strconv.Itoa(int(p))
		}
		return strings.Join(s, ",")
	}
	return "targets echo=" + j(t.Echo) + " duplex=" + j(t.Duplex)
}

func parseTargetsLine(line string) (echo, duplex []uint16, err error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(line), "targets ")
	if !ok {
		return nil, nil, fmt.Errorf("targets subprocess said %q", line)
	}
	for _, f := range strings.Fields(rest) {
		k, v, _ := strings.Cut(f, "=")
		var ps []uint16
		for _, s := range strings.Split(v, ",") {
			p, err := strconv.ParseUint(s, 10, 16)
			if err != nil {
				return nil, nil, fmt.Errorf("targets subprocess said %q", line)
			}
			ps = append(ps, uint16(p))
		}
		switch k {
		case "echo":
			echo = ps
		case "duplex":
			duplex = ps
		}
	}
	if len(echo) == 0 || len(duplex) == 0 {
		return nil, nil, fmt.Errorf("targets subprocess said %q", line)
	}
	return echo, duplex, nil
}

// serveTargetsMain is the --serve-targets mode: serve until stdin closes
// (the bench exiting closes it).
func serveTargetsMain(n int) int {
	raiseNofile()
	t, err := startTargets(n)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench targets:", err)
		return 1
	}
	fmt.Println(t.line())
	io.Copy(io.Discard, bufio.NewReader(os.Stdin))
	return 0
}
