package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fastsocks/fastsocks/proto/socks5"
)

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestCheckCommand: `fastsocks check --config FILE` validates without
// starting, and names each problem.
func TestCheckCommand(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	writeFile(t, good, fmt.Sprintf(`listeners:
  - address: unix:%s/a.sock
    tenant: a
  - address: 127.0.0.1:0
    credentials: true
tenants:
  a:
    allow: [github.com]
    token: s3cret
`, dir))
	var out bytes.Buffer
	if code := run([]string{"check", "--config", good}, &out, nil); code != 0 || !strings.Contains(out.String(), "OK") {
		t.Fatalf("check of a good file: exit %d: %s", code, out.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "a.sock")); !os.IsNotExist(err) {
		t.Fatalf("check created the socket: %v", err)
	}

	ro := filepath.Join(dir, "ro")
	os.Mkdir(ro, 0o555)
	cases := []struct{ name, body, want string }{
		{"unknown key", "listeners:\n  - address: 127.0.0.1:0\n    tenant: a\ntenants:\n  a:\n    alow: [x.com]\n", `6: unknown key "alow"`},
		{"bad pattern", "listeners:\n  - address: 127.0.0.1:0\n    tenant: a\ntenants:\n  a:\n    allow: [\"foo.*.com\"]\n", `foo.*.com`},
		{"duplicate listener", "listeners:\n  - address: 127.0.0.1:1080\n    tenant: a\n  - address: 127.0.0.1:1080\n    tenant: a\ntenants:\n  a:\n    allow: [x.com]\n", "127.0.0.1:1080"},
		{"unwritable socket path", "listeners:\n  - address: unix:" + ro + "/x.sock\n    tenant: a\ntenants:\n  a:\n    allow: [x.com]\n", "not writable"},
		{"unknown tenant", "listeners:\n  - address: 127.0.0.1:0\n    tenant: b\ntenants:\n  a:\n    allow: [x.com]\n", `"b"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if os.Geteuid() == 0 && c.name == "unwritable socket path" {
				// root writes anywhere; use a directory even root cannot.
				c.body = strings.Replace(c.body, ro, "/proc/sys", 1)
			}
			f := filepath.Join(t.TempDir(), "bad.yaml")
			writeFile(t, f, c.body)
			var out bytes.Buffer
			if code := run([]string{"check", "--config", f}, &out, nil); code != 2 {
				t.Fatalf("exit %d, want 2: %s", code, out.String())
			}
			if !strings.Contains(out.String(), c.want) {
				t.Fatalf("message %q does not name %q", out.String(), c.want)
			}
			// Starting with the same file fails the same way.
			out.Reset()
			if code := run([]string{"--config", f}, &out, nil); code != 2 || !strings.Contains(out.String(), c.want) {
				t.Fatalf("start: exit %d: %s", code, out.String())
			}
		})
	}
	out.Reset()
	if code := run([]string{"--config", good, "--listen", "127.0.0.1:0"}, &out, nil); code != 2 || !strings.Contains(out.String(), "--listen") {
		t.Fatalf("--listen with --config: exit %d: %s", code, out.String())
	}
}

// farmConfig writes a config with n tenants, each on its own unix socket
// in dir, plus one TCP credentials listener. Tenant i may reach
// "localhost" if allowLocal(i).
func farmConfig(path, dir string, n int, allowLocal func(int) bool) {
	var b strings.Builder
	b.WriteString("listeners:\n  - address: 127.0.0.1:0\n    credentials: true\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "  - address: unix:%s/t%d.sock\n    tenant: t%d\n", dir, i, i)
	}
	b.WriteString("tenants:\n")
	for i := 0; i < n; i++ {
		host := "example.org"
		if allowLocal(i) {
			host = "localhost"
		}
		fmt.Fprintf(&b, "  t%d:\n    allow: [%s]\n    token: tok%d\n", i, host, i)
	}
	os.WriteFile(path, []byte(b.String()), 0o644)
}

func socksOver(t *testing.T, network, addr, host string, port uint16) socks5.ReplyCode {
	t.Helper()
	c, err := net.Dial(network, addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write(socks5.AppendRequest([]byte{0x05, 0x01, 0x00}, socks5.CmdConnect, host, port))
	b := make([]byte, 12)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("handshake over %s: %v", addr, err)
	}
	return socks5.ReplyCode(b[3])
}

// TestThousandTenants: a generated 1,000-tenant config loads, serves each
// tenant its own policy, reloads on SIGHUP (a changed allow list and a new
// tenant on a new socket), and survives a broken file on SIGHUP.
func TestThousandTenants(t *testing.T) {
	const n = 1000
	echo := echoServer(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "farm.yaml")
	even := func(i int) bool { return i%2 == 0 }
	farmConfig(cfg, dir, n, even)
	cmd, _, logs := startBinaryEnv(t, nil, "--config", cfg, "--log-level", "info")
	waitLogLine(t, logs, fmt.Sprintf("listening on unix:%s/t%d.sock", dir, n-1))

	sock := func(i int) string { return fmt.Sprintf("%s/t%d.sock", dir, i) }
	for _, i := range []int{0, 1, 500, 999} {
		want := socks5.RepNotAllowed
		if even(i) {
			want = socks5.RepSucceeded
		}
		if rep := socksOver(t, "unix", sock(i), "localhost", echo); rep != want {
			t.Fatalf("tenant t%d: REP %v, want %v", i, rep, want)
		}
	}

	// Reload: odd tenants may now reach localhost, even ones not, and a
	// new tenant appears on a new socket.
	farmConfig(cfg, dir, n+1, func(i int) bool { return !even(i) })
	cmd.Process.Signal(syscall.SIGHUP)
	waitLogLine(t, logs, "msg=reloaded")
	for _, i := range []int{0, 1, 500, 999, n} {
		want := socks5.RepNotAllowed
		if !even(i) {
			want = socks5.RepSucceeded
		}
		if rep := socksOver(t, "unix", sock(i), "localhost", echo); rep != want {
			t.Fatalf("after reload, tenant t%d: REP %v, want %v", i, rep, want)
		}
	}

	// A broken file: the reload fails, nothing changes.
	os.WriteFile(cfg, []byte("listeners: [\n"), 0o644)
	cmd.Process.Signal(syscall.SIGHUP)
	waitLogLine(t, logs, "reload failed")
	if rep := socksOver(t, "unix", sock(1), "localhost", echo); rep != socks5.RepSucceeded {
		t.Fatalf("after a failed reload: REP %v", rep)
	}

	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*.sock")); len(left) != 0 {
		t.Fatalf("%d socket files left after exit", len(left))
	}
}
