package main

import (
	"bufio"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fastsocks/fastsocks/proto/socks5"
)

// TestDecisionLog: with --access-log and JSON, every request has one line
// with every field: allowed (at close, with bytes and duration), denied
// (with the rule) and failed (with the dial error).
func TestDecisionLog(t *testing.T) {
	echo := echoServer(t)
	closed := func() uint16 {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		defer ln.Close()
		return uint16(ln.Addr().(*net.TCPAddr).Port)
	}()
	access := filepath.Join(t.TempDir(), "access.log")
	cmd, addr, _ := startBinary(t, "--listen", "127.0.0.1:0", "--allow", "localhost", "--deny", "evil.localhost",
		"--log-format", "json", "--access-log", access)

	c, rep := socksTo(t, addr, "localhost", echo)
	if rep != socks5.RepSucceeded {
		t.Fatalf("REP %v", rep)
	}
	echoOnce(t, c, "12345")
	c.Close()
	if _, rep := socksTo(t, addr, "evil.localhost", 80); rep != socks5.RepNotAllowed {
		t.Fatalf("denied: REP %v", rep)
	}
	if _, rep := socksTo(t, addr, "localhost", closed); rep != socks5.RepConnectionRefused {
		t.Fatalf("failed: REP %v", rep)
	}

	var lines []map[string]any
	deadline := time.Now().Add(10 * time.Second)
	for len(lines) < 3 && time.Now().Before(deadline) {
		lines = lines[:0]
		f, _ := os.Open(access)
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Fatalf("access log line is not JSON: %q: %v", sc.Text(), err)
			}
			lines = append(lines, m)
		}
		f.Close()
		time.Sleep(10 * time.Millisecond)
	}
	if len(lines) != 3 {
		t.Fatalf("%d access log lines, want 3: %v", len(lines), lines)
	}
	byVerdict := map[string]map[string]any{}
	for _, m := range lines {
		byVerdict[m["verdict"].(string)] = m
	}
	common := []string{"time", "tenant", "client", "listener", "front_end", "host", "port", "verdict", "reason", "duration"}
	want := map[string][]string{
		"allow": append(common, "route", "rule", "bytes_up", "bytes_down"),
		"deny":  append(common, "rule"),
		"error": append(common, "route", "detail"),
	}
	for v, keys := range want {
		m, ok := byVerdict[v]
		if !ok {
			t.Fatalf("no %s line in %v", v, lines)
		}
		for _, k := range keys {
			if _, ok := m[k]; !ok {
				t.Errorf("%s line has no %q: %v", v, k, m)
			}
		}
	}
	a := byVerdict["allow"]
	if a["bytes_up"].(float64) != 5 || a["bytes_down"].(float64) != 5 || a["route"] != "direct" || a["rule"] != "localhost" || a["front_end"] != "socks5" || a["tenant"] != "default" {
		t.Errorf("allow line: %v", a)
	}
	if d := byVerdict["deny"]; d["reason"] != "blocked-by-denylist" || !strings.Contains(d["rule"].(string), "evil.localhost") {
		t.Errorf("deny line: %v", d)
	}
	if e := byVerdict["error"]; e["reason"] != "dial-refused" || e["port"].(float64) != float64(closed) {
		t.Errorf("error line: %v", e)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
}

// TestSocketActivation: fastsocks started like systemd starts it: a
// listening socket as descriptor 3, LISTEN_FDS=1, LISTEN_PID its pid.
func TestSocketActivation(t *testing.T) {
	echo := echoServer(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // the duplicate in f stays listening
	defer f.Close()

	// LISTEN_PID must be fastsocks' own pid: the shell sets it to its
	// pid, then becomes fastsocks with exec.
	cmd := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ exec "$0" "$@"`, buildBinary(t), "--allow", "localhost", "--allow-private-dest", "127.0.0.0/8")
	cmd.Env = append(os.Environ(), "LISTEN_FDS=1", "LISTEN_FDNAMES=proxy", "HTTPS_PROXY=", "https_proxy=")
	cmd.ExtraFiles = []*os.File{f}
	logs := &syncBuf{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if t.Failed() {
			t.Logf("fastsocks log:\n%s", logs)
		}
	}()
	waitLogLine(t, logs, "listening on "+addr)
	c, rep := socksTo(t, addr, "localhost", echo)
	if rep != socks5.RepSucceeded {
		t.Fatalf("REP %v through the inherited socket", rep)
	}
	echoOnce(t, c, "activated")
	c.Close()
	if strings.Contains(logs.String(), "127.0.0.1:1080") {
		t.Errorf("the default listener was opened as well:\n%s", logs)
	}
}
