package engine

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fastsocks/fastsocks/dial"
	"github.com/fastsocks/fastsocks/proto/socks5"
)

// localhostTLS makes a self-signed certificate for "localhost" and returns
// the TLS config serving it, a pool trusting it and its PEM.
func localhostTLS(t *testing.T) (*tls.Config, *x509.CertPool, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "localhost"},
		DNSNames:              []string{"localhost"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, pool, pemBytes
}

func tlsServer(t *testing.T, body string) (*httptest.Server, *x509.CertPool, []byte) {
	t.Helper()
	cfg, pool, pemBytes := localhostTLS(t)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, body)
	}))
	srv.TLS = cfg
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, pool, pemBytes
}

func hostURL(srv *httptest.Server) string {
	return strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)
}

func curlPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("curl")
	if err != nil {
		t.Fatal("curl not found: `make test` installs it (apt-get install curl)")
	}
	return p
}

// TestHTTPConnectCurl: curl as an independent HTTP CONNECT client, plain
// HTTP forced through CONNECT (-p) and HTTPS checked against a CA file.
func TestHTTPConnectCurl(t *testing.T) {
	curl := curlPath(t)
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "plain via CONNECT")
	}))
	defer plain.Close()
	tsrv, _, pemBytes := tlsServer(t, "tls via CONNECT")
	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, pemBytes, 0o644)
	p := startProxy(t, []string{"localhost"}, nil)

	out, err := exec.Command(curl, "-sS", "--max-time", "10", "-p", "-x", "http://"+p.addr, hostURL(plain)+"/").CombinedOutput()
	if err != nil || string(out) != "plain via CONNECT" {
		t.Fatalf("curl -p -x: %v: %s", err, out)
	}
	out, err = exec.Command(curl, "-sS", "--max-time", "10", "-x", "http://"+p.addr, "--cacert", ca, hostURL(tsrv)+"/").CombinedOutput()
	if err != nil || string(out) != "tls via CONNECT" {
		t.Fatalf("curl https via -x: %v: %s", err, out)
	}
	// A refused name: curl reports the proxy's 403.
	out, _ = exec.Command(curl, "-sS", "--max-time", "10", "-p", "-x", "http://"+p.addr, "http://blocked.example/", "-w", "%{http_connect}").CombinedOutput()
	if !strings.Contains(string(out), "403") {
		t.Fatalf("curl to a refused name: %s", out)
	}
}

// TestHTTPConnectGoTransport: Go's http.Transport with Proxy set.
func TestHTTPConnectGoTransport(t *testing.T) {
	tsrv, pool, _ := tlsServer(t, "hello over TLS")
	p := startProxy(t, []string{"localhost"}, nil)
	proxyURL, _ := url.Parse("http://" + p.addr)
	tr := &http.Transport{Proxy: http.ProxyURL(proxyURL), TLSClientConfig: &tls.Config{RootCAs: pool}}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	for i := 0; i < 3; i++ {
		resp, err := client.Get(hostURL(tsrv) + "/x")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "hello over TLS" {
			t.Fatalf("body %q", b)
		}
	}
}

// httpExchange sends raw bytes and reads the proxy's whole answer (it
// closes after an error answer).
func httpExchange(t *testing.T, p *testProxy, raw string) *http.Response {
	t.Helper()
	c := dialProxy(t, p)
	write(t, c, []byte(raw))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: "CONNECT"})
	if err != nil {
		t.Fatalf("reading answer to %q: %v", raw, err)
	}
	return resp
}

func body(t *testing.T, r *http.Response) string {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatalf("body: %v", err)
	}
	return string(b)
}

// TestHTTPAnswers checks the answer for every status the front end gives.
func TestHTTPAnswers(t *testing.T) {
	closedPort := func() uint16 {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		defer ln.Close()
		return uint16(ln.Addr().(*net.TCPAddr).Port)
	}()
	started := make(chan struct{}, 1)
	pool := newPool(t, dial.Config{Resolver: hangingResolver(started), Timeout: 300 * time.Millisecond})
	_ = pool
	p := startProxy(t, []string{"localhost", "**.test"}, func(c *Config) {
		c.Policy = mustPolicy(t, []string{"localhost", "**.test", "*.example.com"}, []string{"evil.example.com"})
	})
	pSlow := startProxy(t, []string{"**.test"}, func(c *Config) { c.Dialer = pool })

	cases := []struct {
		name, raw  string
		p          *testProxy
		status     int
		proxyError string
		bodyHas    string
	}{
		{"not in allow list", "CONNECT github.com:443 HTTP/1.1\r\nHost: github.com:443\r\n\r\n", p, 403, "blocked-by-allowlist", "github.com"},
		{"deny rule", "CONNECT evil.example.com:443 HTTP/1.1\r\n\r\n", p, 403, "blocked-by-denylist", `"evil.example.com"`},
		{"not CONNECT", "GET http://localhost/ HTTP/1.1\r\nHost: localhost\r\n\r\n", p, 405, "", ""},
		{"malformed", "CONNECT localhost:80 HTTP/9.9\r\n\r\n", p, 400, "", ""},
		{"no port", "CONNECT localhost HTTP/1.1\r\n\r\n", p, 400, "", ""},
		{"ip literal", "CONNECT 127.0.0.1:80 HTTP/1.1\r\n\r\n", p, 403, "", "hostname"},
		{"head too large", "CONNECT localhost:80 HTTP/1.1\r\nX-Pad: " + strings.Repeat("a", 9000) + "\r\n\r\n", p, 431, "", ""},
		{"dial refused", fmt.Sprintf("CONNECT localhost:%d HTTP/1.1\r\n\r\n", closedPort), p, 502, "", ""},
		{"dial timeout", "CONNECT slow.test:80 HTTP/1.1\r\n\r\n", pSlow, 504, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httpExchange(t, c.p, c.raw)
			b := body(t, r)
			if r.StatusCode != c.status {
				t.Fatalf("status %d, want %d (body %q)", r.StatusCode, c.status, b)
			}
			if !r.Close { // set by "Connection: close"
				t.Errorf("error answer without Connection: close")
			}
			if b == "" {
				t.Errorf("error answer without a body")
			}
			if c.proxyError != "" && r.Header.Get("X-Proxy-Error") != c.proxyError {
				t.Errorf("X-Proxy-Error %q, want %q", r.Header.Get("X-Proxy-Error"), c.proxyError)
			}
			if c.status == 405 && r.Header.Get("Allow") != "CONNECT" {
				t.Errorf("405 without Allow: CONNECT")
			}
			if c.bodyHas != "" && !strings.Contains(b, c.bodyHas) {
				t.Errorf("body %q does not contain %q", b, c.bodyHas)
			}
		})
	}
}

// TestHTTPEarlyDataAndSplitHead: the head arrives in many small writes,
// followed in the same write as its end by bytes for the target.
func TestHTTPEarlyDataAndSplitHead(t *testing.T) {
	tg := startTarget(t, echoHandler)
	p := startProxy(t, []string{"localhost"}, nil)
	c := dialProxy(t, p)
	head := "CONNECT localhost:" + strconv.Itoa(int(tg.port)) + " HTTP/1.1\r\nHost: localhost\r\nUser-Agent: split\r\n\r\n"
	for i := 0; i < len(head)-1; i += 3 {
		end := min(i+3, len(head)-1)
		write(t, c, []byte(head[i:end]))
	}
	write(t, c, []byte(head[len(head)-1:]+"EARLY"))
	br := bufio.NewReader(c)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Status != "200 Connection Established" {
		t.Fatalf("status %q", resp.Status)
	}
	got := make([]byte, 5)
	if _, err := io.ReadFull(br, got); err != nil || string(got) != "EARLY" {
		t.Fatalf("early data echoed as %q (%v)", got, err)
	}
}

// TestBothFrontEndsOneListener: SOCKS5 and HTTP CONNECT clients on the
// same port at once.
func TestBothFrontEndsOneListener(t *testing.T) {
	tg := startTarget(t, echoHandler)
	p := startProxy(t, []string{"localhost"}, nil)
	s := tunnelTo(t, p, tg.port)
	h := dialProxy(t, p)
	write(t, h, []byte("CONNECT localhost:"+strconv.Itoa(int(tg.port))+" HTTP/1.0\r\n\r\n"))
	want := "HTTP/1.1 200 Connection Established\r\n\r\n"
	if got := readN(t, h, len(want)); string(got) != want {
		t.Fatalf("HTTP answer %q", got)
	}
	write(t, s, []byte("socks"))
	write(t, h, []byte("http!"))
	if got := readN(t, s, 5); string(got) != "socks" {
		t.Fatalf("socks echo %q", got)
	}
	if got := readN(t, h, 5); string(got) != "http!" {
		t.Fatalf("http echo %q", got)
	}
	// A first byte that is neither: closed without an answer.
	g := dialProxy(t, p)
	write(t, g, []byte{0x16, 0x03, 0x01})
	g.SetReadDeadline(time.Now().Add(5 * time.Second))
	if b, _ := io.ReadAll(g); len(b) != 0 {
		t.Fatalf("answer to a TLS record: % x", b)
	}
	_ = socks5.Version
}

// TestHTTPHandshakeTimeout: the handshake timeout applies to the head.
func TestHTTPHandshakeTimeout(t *testing.T) {
	p := startProxy(t, nil, func(c *Config) { c.HandshakeTimeout = 200 * time.Millisecond })
	c := dialProxy(t, p)
	write(t, c, []byte("CONNECT localhost:80 HTTP/1.1\r\nHost: loc"))
	expectClosed(t, c, 5*time.Second)
}
