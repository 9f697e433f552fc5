//go:build unix

package dial

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/fastsocks/fastsocks/proto/httpconnect"
)

// headBufs recycles the buffers CONNECT answers are read into: one more
// byte than MaxHeadSize, so a head of exactly MaxHeadSize fits.
var headBufs = sync.Pool{New: func() any { return new([httpconnect.MaxHeadSize + 1]byte) }}

// chain opens the tunnel to j's target through the upstream proxy: connect
// to the proxy, send CONNECT with the target name unresolved, read the
// answer head, and hand the socket over with any bytes that followed the
// head in Conn.Early. It runs in a worker; everything happens within j's
// deadline, and canceling j interrupts it.
func (p *Pool) chain(j *Job) (Conn, error) {
	u := j.route.Upstream
	if !validTarget(j.host) {
		// A name with bytes a request line cannot carry could inject
		// headers; no such name exists, which is what a resolver says.
		return Conn{FD: -1}, p.upFail(j, KindNoSuchHost, fmt.Errorf("%q is not a host name that can be sent to an upstream proxy", j.host))
	}
	nc, err := p.dialer.DialContext(j.ctx, "tcp", u.addr)
	if err != nil {
		return Conn{FD: -1}, p.upFail(j, classify(err), fmt.Errorf("upstream proxy %s: %w", u.addr, unwrapDial(err)))
	}
	tc := nc.(*net.TCPConn)
	defer tc.Close()
	if d, ok := j.ctx.Deadline(); ok {
		tc.SetDeadline(d)
	}
	// A cancel (or Close) while the worker blocks in Write or Read makes
	// them return at once. A past deadline rather than Close keeps the
	// socket whole in case the exchange has just succeeded.
	stop := context.AfterFunc(j.ctx, func() { tc.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	target := net.JoinHostPort(j.host, strconv.Itoa(int(j.port)))
	req := httpconnect.AppendConnect(make([]byte, 0, 128+len(u.auth)), target, u.auth)
	if _, err := tc.Write(req); err != nil {
		return Conn{FD: -1}, p.ioFail(j, "sending the CONNECT", 0, err)
	}

	bp := headBufs.Get().(*[httpconnect.MaxHeadSize + 1]byte)
	defer headBufs.Put(bp)
	buf := bp[:]
	n := 0
	for {
		m, err := tc.Read(buf[n:])
		n += m
		if m > 0 {
			resp, hl, perr := httpconnect.ParseResponse(buf[:n])
			switch {
			case perr == nil:
				if err := p.answer(j, resp); err != nil {
					return Conn{FD: -1}, err
				}
				c := Conn{Upstream: true}
				if hl < n {
					c.Early = append([]byte(nil), buf[hl:n]...)
				}
				c, herr := p.handOver(j, tc, c)
				if herr != nil {
					herr.(*Error).Upstream = true
				}
				return c, herr
			case errors.Is(perr, httpconnect.ErrTooLarge), perr == httpconnect.ErrShort && n == len(buf):
				return Conn{FD: -1}, p.upFail(j, KindUpstreamProtocol,
					fmt.Errorf("upstream proxy %s answered the CONNECT with a head over %d bytes", u.addr, httpconnect.MaxHeadSize))
			case perr != httpconnect.ErrShort:
				return Conn{FD: -1}, p.upFail(j, KindUpstreamProtocol,
					fmt.Errorf("upstream proxy %s sent a malformed answer to the CONNECT: %s", u.addr, quoteLine(buf[:n])))
			}
		}
		if err != nil {
			return Conn{FD: -1}, p.ioFail(j, "reading the CONNECT answer", n, err)
		}
	}
}

// answer maps the upstream's status to success (2xx) or an *Error.
func (p *Pool) answer(j *Job, r httpconnect.Response) error {
	u := j.route.Upstream
	status := strconv.Itoa(r.Status) + " " + quoteReason(r.Reason)
	var k Kind
	var err error
	switch {
	case r.Status >= 200 && r.Status <= 299:
		return nil
	case r.Status == 403:
		k, err = KindUpstreamDenied, fmt.Errorf("upstream proxy %s refused the CONNECT: %s", u.addr, status)
	case r.Status == 407 || r.Status == 401:
		// 401 is not a proxy's status, but tinyproxy answers a CONNECT
		// with wrong credentials that way (and 407 when there are none).
		fix := "set user:pass in the upstream URL (http://user:pass@host:port, percent-encoded)"
		if u.auth != "" {
			fix = "check the user:pass in the upstream URL (percent-encoded)"
		}
		k, err = KindUpstreamAuth, fmt.Errorf("upstream proxy %s wants credentials (%s): %s", u.addr, status, fix)
	case r.Status == 502 || r.Status == 503 || r.Status == 504:
		k, err = KindUpstreamUnavailable, fmt.Errorf("upstream proxy %s could not reach the target: %s", u.addr, status)
	default:
		k, err = KindUpstreamProtocol, fmt.Errorf("upstream proxy %s answered the CONNECT with status %s", u.addr, status)
	}
	return p.upFail(j, k, err)
}

// ioFail classifies an error writing the CONNECT or reading its answer,
// after got bytes of the answer arrived.
func (p *Pool) ioFail(j *Job, phase string, got int, err error) error {
	addr := j.route.Upstream.addr
	if cerr := j.ctx.Err(); cerr != nil {
		// The past deadline set on cancel surfaces as a timeout: report
		// the cancel (or the dial deadline) instead.
		err = cerr
	}
	switch k := classify(err); {
	case k == KindTimeout:
		return p.upFail(j, k, fmt.Errorf("upstream proxy %s: %s: no progress within the dial timeout (%v): %w", addr, phase, p.timeout, err))
	case k == KindCanceled:
		return p.upFail(j, k, fmt.Errorf("upstream proxy %s: %s: %w", addr, phase, err))
	case errors.Is(err, io.EOF):
		return p.upFail(j, KindUpstreamProtocol, fmt.Errorf("upstream proxy %s closed the connection (%s, after %d bytes of answer)", addr, phase, got))
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return p.upFail(j, KindUpstreamProtocol, fmt.Errorf("upstream proxy %s reset the connection (%s, after %d bytes of answer): %w", addr, phase, got, err))
	default:
		return p.upFail(j, k, fmt.Errorf("upstream proxy %s: %s: %w", addr, phase, err))
	}
}

func (p *Pool) upFail(j *Job, k Kind, err error) error {
	e := p.failKind(j, k, err).(*Error)
	e.Upstream = true
	return e
}

// unwrapDial drops the *net.OpError layer ("dial tcp 10.0.0.1:3128: ")
// whose address the wrapping text already names, keeping its cause.
func unwrapDial(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" && oe.Err != nil {
		return oe.Err
	}
	return err
}

// validTarget reports whether host can go into a CONNECT request line
// unchanged: visible ASCII, none of the characters that end or split it.
func validTarget(host string) bool {
	if host == "" {
		return false
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		if c <= ' ' || c >= 0x7f || c == '/' || c == '?' || c == '#' || c == '@' {
			return false
		}
	}
	return true
}

// quoteReason quotes an upstream's reason phrase for an error text,
// capped so a hostile upstream cannot flood the logs.
func quoteReason(b []byte) string {
	const max = 64
	if len(b) > max {
		return strconv.QuoteToASCII(string(b[:max])) + "..."
	}
	return strconv.QuoteToASCII(string(b))
}

// quoteLine quotes the first line of a malformed answer, capped.
func quoteLine(b []byte) string {
	for i, c := range b {
		if c == '\n' {
			b = b[:i]
			break
		}
	}
	if len(b) > 0 && b[len(b)-1] == '\r' {
		b = b[:len(b)-1]
	}
	return quoteReason(b)
}
