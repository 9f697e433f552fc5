package httpconnect

import "testing"

func BenchmarkParseRequest(b *testing.B) {
	for _, bc := range []struct {
		name string
		head []byte
		want error
	}{
		{"curl", cat(
			"CONNECT registry.npmjs.org:443 HTTP/1.1\r\n",
			"Host: registry.npmjs.org:443\r\n",
			"User-Agent: curl/8.5.0\r\n",
			"Proxy-Connection: Keep-Alive\r\n",
			"\r\n",
		), nil},
		{"auth", AppendConnect(nil, "registry.npmjs.org:443", "Basic dXNlcjpwYXNzd29yZA=="), nil},
		{"host253", AppendConnect(nil, host253+":443", ""), nil},
		{"refused-ip", AppendConnect(nil, "192.0.2.1:443", ""), ErrIPLiteral},
		{"refused-get", []byte("GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n"), ErrMethod},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(bc.head)))
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := ParseRequest(bc.head); err != bc.want {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkParseResponse(b *testing.B) {
	for _, bc := range []struct {
		name string
		head []byte
	}{
		{"established", AppendEstablished(nil)},
		{"squid", cat(
			"HTTP/1.1 200 Connection established\r\n",
			"Proxy-Agent: squid/6.6\r\n",
			"\r\n",
		)},
		{"error", AppendError(nil, 407, "", "credentials needed")},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(bc.head)))
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := ParseResponse(bc.head); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkAppendError(b *testing.B) {
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendError(buf[:0], 403, ProxyErrorBlockedByAllowlist, "fastsocks: evil.example is not in the allow list")
	}
}

func BenchmarkAppendConnect(b *testing.B) {
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendConnect(buf[:0], "registry.npmjs.org:443", "Basic dXNlcjpwYXNzd29yZA==")
	}
}
