// Package testutil holds helpers shared by fastsocks' tests: real
// third-party peers (tinyproxy) started on loopback for a test. Nothing
// outside _test.go files imports it.
package testutil

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Tinyproxy is a real tinyproxy (the Debian package) started for a test:
// an independent upstream to chain through.
type Tinyproxy struct {
	Addr string // host:port it listens on
	Log  string // path of its log file
}

func tinyproxyPath(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("tinyproxy"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/bin/tinyproxy", "/usr/sbin/tinyproxy"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatal("tinyproxy not found: the upstream chaining tests need it; run `make test` (installs it) or `apt-get install tinyproxy`")
	return ""
}

// StartTinyproxy starts tinyproxy on a free loopback port, allowing
// CONNECT to the given ports only, with extra config lines, and stops it
// at cleanup. The port is picked by listening on port 0 and closing; if
// another process takes it first and tinyproxy cannot bind, it retries.
func StartTinyproxy(t testing.TB, connectPorts []uint16, extra ...string) *Tinyproxy {
	t.Helper()
	bin := tinyproxyPath(t)
	dir := t.TempDir()
	var out bytes.Buffer
	for attempt := 0; attempt < 5; attempt++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		tp := &Tinyproxy{
			Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
			Log:  filepath.Join(dir, fmt.Sprintf("tinyproxy-%d.log", attempt)),
		}
		var conf strings.Builder
		// No User/Group lines: tinyproxy then runs as the current user
		// (as root it only warns "You SHOULD set a UserName").
		fmt.Fprintf(&conf, "Port %d\nListen 127.0.0.1\nAllow 127.0.0.1\nTimeout 30\nMaxClients 32\n", port)
		fmt.Fprintf(&conf, "LogFile %q\nLogLevel Connect\nPidFile %q\n", tp.Log, filepath.Join(dir, "tinyproxy.pid"))
		// Without ConnectPort lines tinyproxy 1.11 allows CONNECT to any
		// port; the lines make the allowed ports explicit and let a test
		// see a refusal (403).
		for _, p := range connectPorts {
			fmt.Fprintf(&conf, "ConnectPort %d\n", p)
		}
		for _, l := range extra {
			conf.WriteString(l + "\n")
		}
		cfg := filepath.Join(dir, "tinyproxy.conf")
		if err := os.WriteFile(cfg, []byte(conf.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		out.Reset()
		cmd := exec.Command(bin, "-d", "-c", cfg)
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatalf("starting %s: %v", bin, err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		ready, gone := false, false
		deadline := time.Now().Add(10 * time.Second)
	poll:
		for time.Now().Before(deadline) {
			select {
			case err := <-exited:
				gone = true
				logText, _ := os.ReadFile(tp.Log)
				t.Logf("tinyproxy on port %d exited (%v): %s%s", port, err, out.String(), logText)
				break poll
			default:
			}
			if c, err := net.DialTimeout("tcp", tp.Addr, time.Second); err == nil {
				c.Close()
				ready = true
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if !ready {
			if !gone {
				cmd.Process.Kill()
				<-exited
			}
			continue // the port was taken, or it exited: try another
		}
		t.Cleanup(func() {
			cmd.Process.Kill()
			<-exited
			if t.Failed() {
				logText, _ := os.ReadFile(tp.Log)
				t.Logf("tinyproxy output: %s\nlog:\n%s", out.String(), logText)
			}
		})
		return tp
	}
	t.Fatalf("tinyproxy did not start: %s", out.String())
	return nil
}

// WaitLog waits until tinyproxy's log contains s and returns the log.
func (tp *Tinyproxy) WaitLog(t testing.TB, s string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(tp.Log)
		if bytes.Contains(b, []byte(s)) {
			return string(b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("tinyproxy log has no %q:\n%s", s, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
