package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// listenersMain is `go run ./bench listeners [--n 2000]`: the cost of a
// listener in farm mode. It starts fastsocks twice from config files, once
// with one unix-socket listener and once with N (one tenant each), lets
// each settle idle, and reports the difference in RSS, threads and fds per
// listener.
func listenersMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench listeners", flag.ContinueOnError)
	fs.SetOutput(stderr)
	n := fs.Int("n", 2000, "listeners (unix sockets, one tenant each) in the large configuration")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if _, err := raiseNofile(); err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "fsbl")
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin, err := buildFastsocks(dir)
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	measure := func(count int) (procSample, error) {
		sub := filepath.Join(dir, fmt.Sprintf("s%d", count))
		if err := os.Mkdir(sub, 0o755); err != nil {
			return procSample{}, err
		}
		cfg := filepath.Join(sub, "farm.yaml")
		var b strings.Builder
		// One TCP listener lets the bench find the process ready.
		b.WriteString("listeners:\n  - address: 127.0.0.1:0\n    tenant: t0\n")
		for i := 0; i < count; i++ {
			fmt.Fprintf(&b, "  - address: unix:%s/t%d.sock\n    tenant: t%d\n", sub, i, i)
		}
		b.WriteString("tenants:\n")
		for i := 0; i < count; i++ {
			fmt.Fprintf(&b, "  t%d:\n    allow: [pkg%d.example.org]\n", i, i)
		}
		if err := os.WriteFile(cfg, []byte(b.String()), 0o644); err != nil {
			return procSample{}, err
		}
		h, err := startProcess("fastsocks", bin, []string{"--config", cfg, "--log-level", "warn"}, nil)
		if err != nil {
			return procSample{}, err
		}
		defer h.Stop()
		time.Sleep(2 * time.Second) // let start-up garbage be collected: a measured idle state
		return readProc(h.PID, true)
	}
	one, err := measure(1)
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	many, err := measure(*n)
	if err != nil {
		fmt.Fprintln(stderr, "bench:", err)
		return 1
	}
	per := func(a, b int64) float64 { return float64(b-a) / float64(*n-1) }
	fmt.Fprintf(stdout, "| listeners | proxy RSS (KiB) | threads | fds |\n| ---: | ---: | ---: | ---: |\n")
	fmt.Fprintf(stdout, "| 1 | %d | %d | %d |\n", one.RSS>>10, one.Threads, one.FDs)
	fmt.Fprintf(stdout, "| %d | %d | %d | %d |\n", *n, many.RSS>>10, many.Threads, many.FDs)
	fmt.Fprintf(stdout, "| per extra listener | %.2f KiB | %.3f | %.2f |\n", per(one.RSS, many.RSS)/1024, per(int64(one.Threads), int64(many.Threads)), per(int64(one.FDs), int64(many.FDs)))
	return 0
}
