package engine

import (
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/fastsocks/fastsocks/policy"
	"github.com/fastsocks/fastsocks/proto/socks5"
)

// BenchmarkAccept compares the two ways loops can get connections: a
// SO_REUSEPORT listener per loop (what the engine does) and one loop that
// accepts for all and hands connections out. Each op is one short tunnel:
// connect, pipelined greeting and CONNECT, a 1-byte echo, close.
//
//	go test -run '^$' -bench Accept -benchtime 5s ./engine
func BenchmarkAccept(b *testing.B) {
	for _, mode := range []struct {
		name    string
		handoff bool
	}{{"reuseport", false}, {"handoff", true}} {
		b.Run(mode.name, func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					go func() {
						defer c.Close()
						io.Copy(c, c)
					}()
				}
			}()
			port := uint16(ln.Addr().(*net.TCPAddr).Port)
			e, err := Start(Config{
				Listen:           []string{"127.0.0.1:0"},
				Loops:            2,
				Policy:           policy.MustNew([]string{"localhost"}, nil),
				AllowPrivateDest: loopbackOK,
				Logger:           slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn})),
				handoff:          mode.handoff,
			})
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			addr := e.Addrs()[0].String()
			msg := socks5.AppendRequest([]byte{0x05, 0x01, 0x00}, socks5.CmdConnect, "localhost", port)
			var left atomic.Int64
			left.Store(int64(b.N))
			var wg sync.WaitGroup
			var failed atomic.Int64
			b.ResetTimer()
			for w := 0; w < 32; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					buf := make([]byte, 12)
					for left.Add(-1) >= 0 {
						c, err := net.Dial("tcp", addr)
						if err != nil {
							failed.Add(1)
							continue
						}
						c.Write(msg)
						c.Write([]byte{1})
						if _, err := io.ReadFull(c, buf[:12]); err != nil || buf[3] != 0 {
							failed.Add(1)
						} else if _, err := io.ReadFull(c, buf[:1]); err != nil {
							failed.Add(1)
						}
						c.Close()
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			if f := failed.Load(); f > 0 {
				b.Fatalf("%d of %d tunnels failed", f, b.N)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "conns/s")
		})
	}
}
