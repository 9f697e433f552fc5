package main

import (
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fastsocks/fastsocks/internal/testutil"
	"github.com/fastsocks/fastsocks/proto/socks5"
)

func TestMalformedUpstreamEnvRefusesToStart(t *testing.T) {
	for _, c := range []struct{ env, value, want string }{
		{"HTTPS_PROXY", "http://bob:s3cret@proxy.corp", "HTTPS_PROXY"},
		{"https_proxy", "ftp://proxy.corp:21", "https_proxy"},
		{"HTTPS_PROXY", "proxy.corp:0", "HTTPS_PROXY"},
		{"HTTPS_PROXY", "http://proxy.corp:3128/path", "HTTPS_PROXY"},
	} {
		t.Run(c.env+"="+c.value, func(t *testing.T) {
			t.Setenv("HTTPS_PROXY", "")
			t.Setenv("https_proxy", "")
			t.Setenv(c.env, c.value)
			var out strings.Builder
			if code := run([]string{"--listen", "127.0.0.1:0", "--allow", "x.com"}, &out, nil); code != 2 {
				t.Fatalf("exit %d, want 2; output %q", code, out.String())
			}
			if !strings.Contains(out.String(), c.want) || strings.Contains(out.String(), "s3cret") {
				t.Fatalf("error %q must name %s and never show the password", out.String(), c.want)
			}
		})
	}
	// --upstream none ignores a broken environment.
	_, addr, _ := startBinaryEnv(t, []string{"HTTPS_PROXY=http://broken"}, "--listen", "127.0.0.1:0", "--allow", "x.com", "--upstream", "none")
	if addr == "" {
		t.Fatal("--upstream none did not start")
	}
}

// socksTo opens a tunnel through the proxy at addr to host:port and
// returns the connection and the REP.
func socksTo(t *testing.T, addr, host string, port uint16) (net.Conn, socks5.ReplyCode) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(15 * time.Second))
	c.Write(socks5.AppendRequest([]byte{0x05, 0x01, 0x00}, socks5.CmdConnect, host, port))
	b := make([]byte, 2+10)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	rep, _, _, err := socks5.ParseReply(b[2:])
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Time{})
	return c, rep
}

func echoServer(t *testing.T) uint16 {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}

func echoOnce(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	defer c.SetDeadline(time.Time{})
	c.Write([]byte(msg))
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != msg {
		t.Fatalf("echo %q, %v", got, err)
	}
}

// TestChainThroughTinyproxy: the binary with HTTPS_PROXY pointing at a real
// tinyproxy sends allowed tunnels through it (tinyproxy's log shows the
// CONNECT), sends NO_PROXY hosts direct (tinyproxy's log does not), and
// logs the route of each tunnel. The target is named "127.0.0.1" because
// tinyproxy resolves names itself and only /etc/hosts names exist here,
// while "localhost" never goes upstream.
func TestChainThroughTinyproxy(t *testing.T) {
	echo := echoServer(t)
	direct := echoServer(t)
	tp := testutil.StartTinyproxy(t, nil)
	_, addr, logs := startBinaryEnv(t, []string{"HTTPS_PROXY=http://" + tp.Addr, "NO_PROXY=127.0.0.1:" + strconv.Itoa(int(direct))},
		"--listen", "127.0.0.1:0", "--allow", "127.0.0.1")
	// The start line naming the upstream comes after the listening lines.
	waitLogLine(t, logs, "upstream=http://"+tp.Addr)

	c, rep := socksTo(t, addr, "127.0.0.1", echo)
	if rep != socks5.RepSucceeded {
		t.Fatalf("chained CONNECT: REP %v", rep)
	}
	echoOnce(t, c, "through tinyproxy")
	tp.WaitLog(t, "127.0.0.1:"+strconv.Itoa(int(echo)))
	c.Close()

	d, rep := socksTo(t, addr, "127.0.0.1", direct)
	if rep != socks5.RepSucceeded {
		t.Fatalf("NO_PROXY CONNECT: REP %v", rep)
	}
	echoOnce(t, d, "direct")
	d.Close()
	waitLogLine(t, logs, "route=direct")
	waitLogLine(t, logs, "route=upstream")
	if strings.Contains(tp.WaitLog(t, "CONNECT"), "127.0.0.1:"+strconv.Itoa(int(direct))) {
		t.Fatalf("the NO_PROXY host went through tinyproxy")
	}
}

// TestChainTinyproxyBasicAuth: an upstream that wants credentials refuses
// a tunnel without them (REP 0x01, and a log line saying so) and carries
// it with them.
func TestChainTinyproxyBasicAuth(t *testing.T) {
	echo := echoServer(t)
	tp := testutil.StartTinyproxy(t, nil, "BasicAuth fastsocks s3cret")

	_, addr, logs := startBinaryEnv(t, []string{"HTTPS_PROXY=http://" + tp.Addr, "NO_PROXY="},
		"--listen", "127.0.0.1:0", "--allow", "127.0.0.1")
	if _, rep := socksTo(t, addr, "127.0.0.1", echo); rep != socks5.RepGeneralFailure {
		t.Fatalf("without credentials: REP %v, want general failure", rep)
	}
	waitLogLine(t, logs, "reason=dial-upstream-auth")
	if !strings.Contains(logs.String(), "credentials") {
		t.Errorf("the log does not say the upstream wants credentials:\n%s", logs)
	}

	_, addr2, logs2 := startBinaryEnv(t, []string{"HTTPS_PROXY=", "NO_PROXY="},
		"--listen", "127.0.0.1:0", "--allow", "127.0.0.1", "--upstream", "http://fastsocks:s3cret@"+tp.Addr)
	c, rep := socksTo(t, addr2, "127.0.0.1", echo)
	if rep != socks5.RepSucceeded {
		t.Fatalf("with credentials: REP %v", rep)
	}
	echoOnce(t, c, "authenticated")
	if strings.Contains(logs2.String(), "s3cret") {
		t.Errorf("the password appears in the log:\n%s", logs2)
	}
}

func waitLogLine(t *testing.T, logs *syncBuf, s string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("no log line with %q:\n%s", s, logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
