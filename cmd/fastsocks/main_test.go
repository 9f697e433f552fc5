package main

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestBadFlagsExit2(t *testing.T) {
	dir := t.TempDir()
	badFile := filepath.Join(dir, "allow.txt")
	os.WriteFile(badFile, []byte("# developer registries\ngithub.com\n\nfoo.*.com\n"), 0o644)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--allow", "foo.*.com"}, `"foo.*.com"`},
		{[]string{"--deny", "https://x.com"}, `"https://x.com"`},
		{[]string{"--allow-file", badFile}, "allow.txt:4"},
		{[]string{"--allow-file", filepath.Join(dir, "missing.txt")}, "missing.txt"},
		{[]string{"--no-such-flag"}, "no-such-flag"},
		{[]string{"--log-format", "xml"}, "--log-format"},
		{[]string{"--log-level", "loud"}, "--log-level"},
		{[]string{"--idle-timeout", "-1s"}, "--idle-timeout"},
		{[]string{"--handshake-timeout", "0"}, "--handshake-timeout"},
		{[]string{"--loops", "0"}, "--loops"},
		{[]string{"--listen", "nohost"}, "nohost"},
		{[]string{"--listen", ":1080"}, "empty host"},
		{[]string{"stray"}, "stray"},
	}
	for _, c := range cases {
		var out bytes.Buffer
		code := run(c.args, &out, nil)
		if code != 2 {
			t.Errorf("%v: exit %d, want 2 (output %q)", c.args, code, out.String())
			continue
		}
		if !strings.Contains(out.String(), c.want) {
			t.Errorf("%v: output %q does not name %q", c.args, out.String(), c.want)
		}
		if strings.Contains(out.String(), "listening on") {
			t.Errorf("%v: started listening despite the error", c.args)
		}
	}
}

func TestAllowFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "allow.txt")
	os.WriteFile(f, []byte("# comment\n  github.com  # trailing comment\n\n*.npmjs.org\n"), 0o644)
	got, err := readPatterns(f)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "github.com,*.npmjs.org" {
		t.Fatalf("patterns %q", got)
	}
}

// buildBinary builds fastsocks once per test run.
var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func buildBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "fastsocks-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "fastsocks")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = err
			t.Logf("%s", out)
		}
	})
	if buildErr != nil {
		t.Fatalf("build: %v", buildErr)
	}
	return binPath
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var listeningRE = regexp.MustCompile(`listening on ([0-9.]+:[0-9]+)`)

// startBinary runs the built fastsocks with args and returns its address
// and log.
func startBinary(t *testing.T, args ...string) (*exec.Cmd, string, *syncBuf) {
	t.Helper()
	return startBinaryEnv(t, nil, args...)
}

// startBinaryEnv is startBinary with extra environment (after clearing
// any proxy variables of the test's own environment).
func startBinaryEnv(t *testing.T, env []string, args ...string) (*exec.Cmd, string, *syncBuf) {
	t.Helper()
	// The tests' targets are on loopback, which the resolved-address
	// guard refuses unless opened.
	args = append(args, "--allow-private-dest", "127.0.0.0/8")
	cmd := exec.Command(buildBinary(t), args...)
	cmd.Env = append(os.Environ(), "HTTPS_PROXY=", "https_proxy=", "NO_PROXY=", "no_proxy=")
	cmd.Env = append(cmd.Env, env...)
	pr, pw := io.Pipe()
	logs := &syncBuf{}
	cmd.Stderr = io.MultiWriter(logs, pw)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		pw.Close()
		if t.Failed() {
			t.Logf("fastsocks log:\n%s", logs)
		}
	})
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sent := false
		for sc.Scan() {
			if m := listeningRE.FindStringSubmatch(sc.Text()); m != nil && !sent {
				addrc <- m[1]
				sent = true
			}
		}
	}()
	select {
	case a := <-addrc:
		return cmd, a, logs
	case <-time.After(20 * time.Second):
		t.Fatalf("no 'listening on' line; log:\n%s", logs)
	}
	return nil, "", nil
}

func curlPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("curl")
	if err != nil {
		t.Fatal("curl not found: `make test` installs it (apt-get install curl)")
	}
	return p
}

// TestCurlThroughBinary drives the built binary with curl as an independent
// SOCKS5 client (socks5h: the proxy resolves), then stops it with SIGTERM.
func TestCurlThroughBinary(t *testing.T) {
	curl := curlPath(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "fetched via fastsocks")
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())

	cmd, addr, logs := startBinary(t, "--listen", "127.0.0.1:0", "--allow", "localhost")
	out, err := exec.Command(curl, "-sS", "--max-time", "10", "--socks5-hostname", addr, "http://localhost:"+port+"/").CombinedOutput()
	if err != nil || string(out) != "fetched via fastsocks" {
		t.Fatalf("curl: %v: %s", err, out)
	}
	// socks5h:// in --proxy is the same thing in URL form.
	out, err = exec.Command(curl, "-sS", "--max-time", "10", "--proxy", "socks5h://"+addr, "http://localhost:"+port+"/").CombinedOutput()
	if err != nil || string(out) != "fetched via fastsocks" {
		t.Fatalf("curl --proxy socks5h: %v: %s", err, out)
	}
	// A name outside the allow list: curl fails, the proxy logs why.
	out, err = exec.Command(curl, "-sS", "--max-time", "10", "--socks5-hostname", addr, "http://blocked.example/").CombinedOutput()
	if err == nil {
		t.Fatalf("curl to a refused name succeeded: %s", out)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "host=blocked.example") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "reason=blocked-by-allowlist") {
		t.Errorf("no refusal log line naming host and reason:\n%s", logs)
	}

	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no exit within the drain timeout after SIGTERM")
	}
	if !strings.Contains(logs.String(), "msg=stopped") {
		t.Errorf("no summary line at exit:\n%s", logs)
	}
}

// TestDrainLetsTunnelFinish: SIGTERM with a tunnel open; the tunnel keeps
// working until it ends, then the process exits 0.
func TestDrainLetsTunnelFinish(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		io.Copy(c, c)
		c.Close()
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	cmd, addr, logs := startBinary(t, "--listen", "127.0.0.1:0", "--allow", "localhost", "--drain-timeout", "20s", "--admin", "127.0.0.1:0")
	waitLogLine(t, logs, "admin endpoints on")
	adminURL := regexp.MustCompile(`admin endpoints on (http://[0-9.:]+/)`).FindStringSubmatch(logs.String())[1]
	health := func() int {
		r, err := http.Get(adminURL + "healthz")
		if err != nil {
			t.Fatalf("healthz: %v", err)
		}
		r.Body.Close()
		return r.StatusCode
	}
	if code := health(); code != 200 {
		t.Fatalf("healthz before drain: %d", code)
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p := []byte{0x05, 0x01, 0x00, 0x05, 0x01, 0x00, 0x03, 9}
	p = append(p, "localhost"...)
	var pn [2]byte
	n := 0
	for _, ch := range port {
		n = n*10 + int(ch-'0')
	}
	pn[0], pn[1] = byte(n>>8), byte(n)
	p = append(p, pn[:]...)
	c.Write(p)
	reply := make([]byte, 12)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, reply); err != nil || reply[3] != 0 {
		t.Fatalf("handshake: % x %v", reply, err)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "draining") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if code := health(); code != http.StatusServiceUnavailable {
		t.Fatalf("healthz during drain: %d, want 503", code)
	}
	c.Write([]byte("during drain"))
	got := make([]byte, 12)
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "during drain" {
		t.Fatalf("tunnel during drain: %q %v", got, err)
	}
	c.(*net.TCPConn).CloseWrite()
	io.Copy(io.Discard, c)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("did not exit once its last tunnel finished")
	}
}
