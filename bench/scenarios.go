package main

import (
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// config holds the sizes and durations of a bench run.
type config struct {
	Scenarios   []string      `json:"scenarios"`
	Duration    time.Duration `json:"duration_ns"`     // measured window of each timed phase
	Warmup      time.Duration `json:"warmup_ns"`       // load before the window opens
	Concurrency int           `json:"concurrency"`     // connrate clients
	Tunnels     int           `json:"tunnels"`         // fanout tunnels asked for
	MsgSize     int           `json:"msg_size"`        // fanout ping-pong message bytes
	Streams     int           `json:"streams"`         // throughput tunnels
	Chunk       int           `json:"chunk"`           // throughput write and read size
	SlowTunnels int           `json:"slow_tunnels"`    // slowreader tunnels
	OpenWorkers int           `json:"open_workers"`    // fanout: tunnels opened at once
	Progress    time.Duration `json:"progress_ns"`     // progress line interval; 0: none
	FDMargin    int           `json:"fd_margin"`       // fds left free under each process's limit
	Settle      time.Duration `json:"settle_ns"`       // pause for RSS to settle after opening tunnels
	SampleEvery time.Duration `json:"sample_every_ns"` // slowreader RSS sampling
	WaitQuiet   time.Duration `json:"wait_quiet_ns"`   // wait this long at most for other load to stop before each run
	RerunNoisy  int           `json:"rerun_noisy"`     // rerun a run this many times at most while other load disturbed it
}

// noisyLoad is the other load (cores) in a window above which a run counts
// as disturbed.
const noisyLoad = 0.25

var allScenarios = []string{"connrate", "fanout", "throughput", "slowreader"}

// result is one scenario run against one subject.
type result struct {
	Scenario   string             `json:"scenario"`
	Subject    string             `json:"subject"`
	Metrics    map[string]float64 `json:"metrics"`
	Notes      []string           `json:"notes,omitempty"`
	Errors     int64              `json:"errors"`
	ErrorKinds []string           `json:"error_kinds,omitempty"`
	Skipped    string             `json:"skipped,omitempty"`
}

// runner runs scenarios; it owns the client and knows the targets.
type runner struct {
	cfg  config
	cl   *client
	tg   *targets
	log  io.Writer
	self int

	targetsIdleFDs int
}

// run is one scenario against one subject.
type run struct {
	*runner
	scenario string
	subj     subject
	proxy    *proxyHandle // nil for direct
	res      *result
}

func (r *run) proxyAddr() netip.AddrPort {
	if r.proxy == nil {
		return netip.AddrPort{}
	}
	return r.proxy.Addr
}

func (r *run) note(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	r.res.Notes = append(r.res.Notes, s)
	fmt.Fprintf(r.log, "bench: %s %s: %s\n", r.scenario, r.subj.Name, s)
}

func (r *run) set(key string, v float64) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return
	}
	r.res.Metrics[key] = v
}

// snap samples the proxy, the bench itself and the targets.
type snap struct {
	proxy, self, targets procSample
	proxyOK              bool
	machine              time.Duration // busy CPU time of the whole machine
}

func (r *run) snap(withFDs bool) snap {
	var s snap
	var err error
	if r.proxy != nil {
		s.proxy, err = readProc(r.proxy.PID, withFDs)
		s.proxyOK = err == nil
	}
	s.self, _ = readProc(r.self, withFDs)
	if r.tg.PID != r.self {
		s.targets, _ = readProc(r.tg.PID, withFDs)
	}
	s.machine, _ = machineBusy()
	return s
}

// cpuFigures records the cores each process used between a and b.
func (r *run) cpuFigures(a, b snap) {
	if a.proxyOK && b.proxyOK && r.proxy.PID != r.self {
		r.set("proxy_cores", cores(a.proxy, b.proxy))
	}
	ours := cores(a.self, b.self)
	if r.tg.PID != r.self {
		ours += cores(a.targets, b.targets)
	}
	r.set("client_cores", ours)
	if a.proxyOK && b.proxyOK && r.proxy.PID != r.self {
		ours += cores(a.proxy, b.proxy)
	}
	if wall := b.self.At.Sub(a.self.At); wall > 0 && b.machine > 0 {
		// Whatever else ran: other processes, and kernel threads
		// (ksoftirqd) doing network work on the bench's behalf.
		other := max(0, float64(b.machine-a.machine)/float64(wall)-ours)
		r.set("other_cores", other)
		if other > noisyLoad {
			r.note("%.2f cores went to other processes or kernel threads during the window: figures may be low", other)
		}
	}
}

// progress prints status every cfg.Progress until the returned func is
// called.
func (r *run) progress(status func() string) func() {
	if r.cfg.Progress <= 0 {
		return func() {}
	}
	t0 := time.Now()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(r.cfg.Progress)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				extra := ""
				if r.proxy != nil && r.proxy.Exited != nil {
					select {
					case <-r.proxy.Exited:
						extra = " [proxy process has exited]"
					default:
					}
				}
				fmt.Fprintf(r.log, "bench: %s %s: %5.1fs %s%s\n", r.scenario, r.subj.Name,
					time.Since(t0).Seconds(), status(), extra)
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// window lets the load run for the warm-up, then measures for the duration:
// start and end run at the window's edges, right after the samples.
func (r *run) window(status func() string, start, end func()) (a, b snap) {
	stop := r.progress(status)
	defer stop()
	time.Sleep(r.cfg.Warmup)
	a = r.snap(false)
	start()
	time.Sleep(r.cfg.Duration)
	end()
	b = r.snap(false)
	return a, b
}

// settle waits until the targets hold no connections from an earlier run,
// so runs do not overlap.
func (r *runner) settle() bool {
	deadline := time.Now().Add(20 * time.Second)
	for r.tg.busy(r.targetsIdleFDs) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

// machineLoad measures how many cores the machine keeps busy over d.
func machineLoad(d time.Duration) (float64, error) {
	a, err := machineBusy()
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	time.Sleep(d)
	b, err := machineBusy()
	if err != nil {
		return 0, err
	}
	return float64(b-a) / float64(time.Since(t0)), nil
}

// quietLoad is the machine load (cores) below which a run may start.
const quietLoad = 0.15

// waitQuiet waits up to limit for the machine to be nearly idle (other
// sessions' builds and tests share it) and returns the last load seen.
func waitQuiet(limit time.Duration) (float64, bool) {
	deadline := time.Now().Add(limit)
	for {
		load, err := machineLoad(500 * time.Millisecond)
		if err != nil || load < quietLoad {
			return load, true
		}
		if time.Now().After(deadline) {
			return load, false
		}
	}
}

// runOne runs scenario against subj: it starts the proxy, runs, stops it.
func (rn *runner) runOne(scenario string, subj subject) result {
	res := result{Scenario: scenario, Subject: subj.Name, Metrics: map[string]float64{}}
	r := &run{runner: rn, scenario: scenario, subj: subj, res: &res}
	if subj.direct() && scenario == "slowreader" {
		res.Skipped = "no proxy: nothing buffers between client and target"
		return res
	}
	if !rn.settle() {
		r.note("targets still held connections from the previous run after 20s")
	}
	if rn.cfg.WaitQuiet > 0 {
		if load, ok := waitQuiet(rn.cfg.WaitQuiet); !ok {
			r.note("the machine was still busy (%.2f cores) after waiting %v for it to be quiet", load, rn.cfg.WaitQuiet)
		}
	}
	rn.cl.takeErrors()
	if !subj.direct() {
		p, err := subj.Start()
		if err != nil {
			res.Skipped = "could not start: " + err.Error()
			fmt.Fprintf(rn.log, "bench: %s %s: %s\n", scenario, subj.Name, res.Skipped)
			return res
		}
		r.proxy = p
		if p.PID == rn.self {
			r.note("the proxy runs in the bench's own process: its CPU, RSS and fd figures include the clients and targets")
		}
	}
	fmt.Fprintf(rn.log, "bench: %s %s: start\n", scenario, subj.Name)
	switch scenario {
	case "connrate":
		r.connrate()
	case "fanout":
		r.fanout()
	case "throughput":
		r.throughput()
	case "slowreader":
		r.slowreader()
	default:
		res.Skipped = "unknown scenario"
	}
	if r.proxy != nil {
		select {
		case <-r.proxy.Exited:
			r.note("proxy process exited during the run: %v", r.proxy.ExitErr())
		default:
		}
		for _, n := range r.proxy.Stop() {
			r.note("%s", n)
		}
	}
	var samples []string
	res.Errors, res.ErrorKinds, samples = rn.cl.takeErrors()
	if res.Errors > 0 {
		r.note("%d client errors: %v; e.g. %v", res.Errors, res.ErrorKinds, samples)
	}
	return res
}

// connrate: C clients each loop connect, greet, CONNECT, 1-byte echo,
// close.
func (r *run) connrate() {
	var n, n0, n1 atomic.Int64
	var rec atomic.Bool
	h := new(hist)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	proxy := r.proxyAddr()
	for w := 0; w < r.cfg.Concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 1)
			for i := w; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				c, setup, err := r.cl.open(proxy, r.tg.Echo[i%len(r.tg.Echo)])
				if err != nil {
					r.cl.fail(err)
					time.Sleep(5 * time.Millisecond)
					continue
				}
				c.SetDeadline(time.Now().Add(r.cl.timeout))
				buf[0] = 'x'
				_, err = c.Write(buf)
				if err == nil {
					_, err = io.ReadFull(c, buf)
				}
				c.Close()
				if err != nil {
					r.cl.fail(&stepError{"echo", err})
					continue
				}
				if rec.Load() {
					h.Record(w, setup)
				}
				n.Add(1)
			}
		}()
	}
	a, b := r.window(func() string {
		return fmt.Sprintf("%d connections, %d errors", n.Load(), r.cl.nerrs.Load())
	}, func() { n0.Store(n.Load()); rec.Store(true) }, func() { rec.Store(false); n1.Store(n.Load()) })
	close(stop)
	wg.Wait()
	conns := float64(n1.Load() - n0.Load())
	wall := b.self.At.Sub(a.self.At).Seconds()
	r.set("conns_per_s", conns/wall)
	r.set("setup_p50_us", us(h.Quantile(0.50)))
	r.set("setup_p99_us", us(h.Quantile(0.99)))
	r.set("setup_p999_us", us(h.Quantile(0.999)))
	if a.proxyOK && b.proxyOK && conns > 0 {
		r.set("cpu_us_per_conn", us(b.proxy.CPU-a.proxy.CPU)/conns)
	}
	r.cpuFigures(a, b)
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// openTunnels opens k more tunnels to ports (round robin) with
// cfg.OpenWorkers dialers, appending to *conns. It gives up after many
// failures in a row and returns why.
func (r *run) openTunnels(k int, ports []uint16, conns *[]*net.TCPConn, status string) error {
	var mu sync.Mutex
	var next, streak atomic.Int64
	var firstErr error
	proxy := r.proxyAddr()
	stop := r.progress(func() string {
		mu.Lock()
		defer mu.Unlock()
		return fmt.Sprintf("%s: %d tunnels open, %d errors", status, len(*conns), r.cl.nerrs.Load())
	})
	defer stop()
	var wg sync.WaitGroup
	workers := min(r.cfg.OpenWorkers, k)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(k) || streak.Load() > 200 {
					return
				}
				c, _, err := r.cl.open(proxy, ports[int(i)%len(ports)])
				if err != nil {
					r.cl.fail(err)
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					streak.Add(1)
					next.Add(-1) // try that slot again
					time.Sleep(10 * time.Millisecond)
					continue
				}
				streak.Store(0)
				mu.Lock()
				*conns = append(*conns, c)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if streak.Load() > 200 {
		return fmt.Errorf("gave up after 200 failures in a row; first: %v", firstErr)
	}
	return nil
}

func closeAll(conns []*net.TCPConn) {
	for _, c := range conns {
		c.SetLinger(0)
		c.Close()
	}
}

// fdCap finds how many tunnels fit under the fd limit of every process
// involved, from the fds each gained per tunnel while opening the probe.
func (r *run) fdCap(before, probe snap, probeN, want int) (int, string) {
	type proc struct {
		name      string
		pid       int
		a, b      int
		perTunnel float64
	}
	procs := []proc{{name: "bench (client side)", pid: r.self, a: before.self.FDs, b: probe.self.FDs}}
	if r.tg.PID != r.self {
		procs = append(procs, proc{name: "targets", pid: r.tg.PID, a: before.targets.FDs, b: probe.targets.FDs})
	}
	if r.proxy != nil && r.proxy.PID != r.self && before.proxyOK && probe.proxyOK {
		procs = append(procs, proc{name: r.subj.Name, pid: r.proxy.PID, a: before.proxy.FDs, b: probe.proxy.FDs})
	}
	capN, why := want, ""
	for _, p := range procs {
		if p.a < 0 || p.b < 0 || probeN == 0 {
			continue
		}
		per := float64(p.b-p.a) / float64(probeN)
		limit := fdLimit(p.pid)
		if per <= 0 || limit <= 0 {
			continue
		}
		room := int(float64(limit-p.b-r.cfg.FDMargin)/per) + probeN
		if room < capN {
			capN = room
			why = fmt.Sprintf("the fd limit caps tunnels at %d (asked %d): %s uses %.2f fds per tunnel, limit %d", room, want, p.name, per, limit)
		}
	}
	return max(capN, probeN), why
}

// fanout holds N tunnels, measures the proxy's RSS and fds per idle
// tunnel, then ping-pongs on every tunnel.
func (r *run) fanout() {
	before := r.snap(true)
	var conns []*net.TCPConn
	defer func() { closeAll(conns) }()
	probeN := min(r.cfg.Tunnels, 200)
	if err := r.openTunnels(probeN, r.tg.Echo, &conns, "opening probe"); err != nil {
		r.note("opening tunnels: %v", err)
		return
	}
	time.Sleep(200 * time.Millisecond)
	probe := r.snap(true)
	want, why := r.fdCap(before, probe, len(conns), r.cfg.Tunnels)
	if why != "" {
		r.note("%s", why)
	}
	// Open in two halves, sampling between them: the second half's growth
	// is the marginal cost of a tunnel, without one-off costs (runtime
	// arenas, worker goroutines, pools) that the total growth includes.
	var mid snap
	midN := 0
	for _, goal := range []int{want / 2, want} {
		if goal > len(conns) {
			if err := r.openTunnels(goal-len(conns), r.tg.Echo, &conns, "opening"); err != nil {
				r.note("stopped opening at %d tunnels: %v", len(conns), err)
				break
			}
		}
		if goal < want {
			time.Sleep(r.cfg.Settle / 2)
			mid, midN = r.snap(false), len(conns)
		}
	}
	held := len(conns)
	r.set("tunnels", float64(held))
	if held == 0 {
		return
	}
	time.Sleep(r.cfg.Settle)
	idle := r.snap(true)
	if before.proxyOK && idle.proxyOK {
		r.set("rss_per_tunnel_kib", float64(idle.proxy.RSS-before.proxy.RSS)/float64(held)/1024)
		r.set("fds_per_tunnel", float64(idle.proxy.FDs-before.proxy.FDs)/float64(held))
		r.set("rss_before_mib", float64(before.proxy.RSS)/(1<<20))
		r.set("rss_idle_mib", float64(idle.proxy.RSS)/(1<<20))
		r.set("threads", float64(idle.proxy.Threads))
		if mid.proxyOK && held-midN >= 100 {
			r.set("rss_marginal_kib", float64(idle.proxy.RSS-mid.proxy.RSS)/float64(held-midN)/1024)
		}
	}

	// Ping-pong: every tunnel sends MsgSize bytes and waits for the echo.
	var msgs, m0, m1 atomic.Int64
	var rec, stopped atomic.Bool
	h := new(hist)
	var wg sync.WaitGroup
	deadline := time.Now().Add(r.cfg.Warmup + r.cfg.Duration + 30*time.Second)
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out := make([]byte, r.cfg.MsgSize)
			in := make([]byte, r.cfg.MsgSize)
			for j := range out {
				out[j] = byte(i + j)
			}
			c.SetDeadline(deadline)
			for !stopped.Load() {
				t0 := time.Now()
				_, err := c.Write(out)
				if err == nil {
					_, err = io.ReadFull(c, in)
				}
				if err != nil {
					r.cl.fail(&stepError{"ping-pong", err})
					return
				}
				if rec.Load() {
					h.Record(i, time.Since(t0))
				}
				msgs.Add(1)
			}
		}()
	}
	a, b := r.window(func() string {
		return fmt.Sprintf("ping-pong on %d tunnels: %d messages, %d errors", held, msgs.Load(), r.cl.nerrs.Load())
	}, func() { m0.Store(msgs.Load()); rec.Store(true) }, func() { rec.Store(false); m1.Store(msgs.Load()) })
	stopped.Store(true)
	wg.Wait()
	n := float64(m1.Load() - m0.Load())
	wall := b.self.At.Sub(a.self.At).Seconds()
	r.set("msgs_per_s", n/wall)
	r.set("rtt_p50_us", us(h.Quantile(0.50)))
	r.set("rtt_p99_us", us(h.Quantile(0.99)))
	r.set("rtt_p999_us", us(h.Quantile(0.999)))
	if a.proxyOK && b.proxyOK && n > 0 {
		r.set("cpu_us_per_msg", us(b.proxy.CPU-a.proxy.CPU)/n)
	}
	r.cpuFigures(a, b)
	if after := r.snap(false); before.proxyOK && after.proxyOK {
		r.set("rss_per_tunnel_after_kib", float64(after.proxy.RSS-before.proxy.RSS)/float64(held)/1024)
	}
}

// throughput streams both ways on K tunnels to the duplex targets.
func (r *run) throughput() {
	var conns []*net.TCPConn
	if err := r.openTunnels(r.cfg.Streams, r.tg.Duplex, &conns, "opening"); err != nil {
		r.note("opening tunnels: %v", err)
		closeAll(conns)
		return
	}
	var up, down, u0, d0, u1, d1 atomic.Int64
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(2)
		go func() {
			defer wg.Done()
			buf := make([]byte, r.cfg.Chunk)
			for {
				n, err := c.Write(buf)
				up.Add(int64(n))
				if err != nil {
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			buf := make([]byte, r.cfg.Chunk)
			for {
				n, err := c.Read(buf)
				down.Add(int64(n))
				if err != nil {
					return
				}
			}
		}()
	}
	a, b := r.window(func() string {
		return fmt.Sprintf("%d streams: %.2f GB moved", len(conns), float64(up.Load()+down.Load())/1e9)
	}, func() { u0.Store(up.Load()); d0.Store(down.Load()) }, func() { u1.Store(up.Load()); d1.Store(down.Load()) })
	closeAll(conns)
	wg.Wait()
	wall := b.self.At.Sub(a.self.At).Seconds()
	bytesUp, bytesDown := float64(u1.Load()-u0.Load()), float64(d1.Load()-d0.Load())
	total := bytesUp + bytesDown
	r.set("gbit_per_s", total*8/wall/1e9)
	r.set("gbit_up", bytesUp*8/wall/1e9)
	r.set("gbit_down", bytesDown*8/wall/1e9)
	if a.proxyOK && b.proxyOK && total > 0 {
		r.set("cpu_s_per_gb", (b.proxy.CPU-a.proxy.CPU).Seconds()/(total/1e9))
	}
	r.cpuFigures(a, b)
}

// slowreader: targets flood; clients read for the warm-up, then stop
// reading; the proxy's RSS is sampled while the flood presses on it.
func (r *run) slowreader() {
	before := r.snap(false)
	var conns []*net.TCPConn
	defer func() { closeAll(conns) }()
	if err := r.openTunnels(r.cfg.SlowTunnels, r.tg.Duplex, &conns, "opening"); err != nil {
		r.note("opening tunnels: %v", err)
		return
	}
	var got atomic.Int64
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 64<<10)
			for {
				n, err := c.Read(buf)
				got.Add(int64(n))
				if err != nil {
					return
				}
			}
		}()
	}
	t0 := time.Now()
	time.Sleep(r.cfg.Warmup)
	for _, c := range conns {
		c.SetReadDeadline(time.Unix(1, 0)) // stop reading, for good
	}
	wg.Wait()
	readRate := float64(got.Load()) * 8 / time.Since(t0).Seconds() / 1e9
	r.set("flood_gbit_while_reading", readRate)
	if !before.proxyOK {
		return
	}
	var peak, mid, last int64
	var a, b snap
	stop := r.progress(func() string {
		return fmt.Sprintf("%d tunnels not reading: proxy RSS %.1f MiB (%.1f MiB at start)",
			len(conns), float64(atomic.LoadInt64(&last))/(1<<20), float64(before.proxy.RSS)/(1<<20))
	})
	start := time.Now()
	a = r.snap(false)
	for time.Since(start) < r.cfg.Duration {
		s, err := readProc(r.proxy.PID, false)
		if err != nil {
			break
		}
		atomic.StoreInt64(&last, s.RSS)
		peak = max(peak, s.RSS)
		if mid == 0 && time.Since(start) >= r.cfg.Duration/2 {
			mid = s.RSS
		}
		time.Sleep(r.cfg.SampleEvery)
	}
	b = r.snap(false)
	stop()
	r.cpuFigures(a, b)
	n := float64(len(conns))
	r.set("rss_growth_mib", float64(peak-before.proxy.RSS)/(1<<20))
	r.set("rss_growth_per_tunnel_kib", float64(peak-before.proxy.RSS)/n/1024)
	if mid > 0 {
		r.set("rss_growth_last_half_mib", float64(last-mid)/(1<<20))
	}
}

// runAll runs each scenario against each subject, scenario by scenario, so
// subjects measured back to back share the machine's state.
func (rn *runner) runAll(subjects []subject) []result {
	if n, err := countFDs(rn.tg.PID); err == nil {
		rn.targetsIdleFDs = n
	}
	var out []result
	for _, sc := range rn.cfg.Scenarios {
		for _, s := range subjects {
			res := rn.runOne(sc, s)
			for i := 1; i <= rn.cfg.RerunNoisy && res.Metrics["other_cores"] > noisyLoad; i++ {
				fmt.Fprintf(rn.log, "bench: %s %s: other load disturbed the run; again (%d of at most %d)\n", sc, s.Name, i, rn.cfg.RerunNoisy)
				res = rn.runOne(sc, s)
				res.Notes = append(res.Notes, fmt.Sprintf("rerun %d time(s): other load disturbed the earlier run(s)", i))
			}
			out = append(out, res)
		}
	}
	return out
}

func newRunner(cfg config, cl *client, tg *targets, log io.Writer) *runner {
	return &runner{cfg: cfg, cl: cl, tg: tg, log: log, self: os.Getpid()}
}
