package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// metricDef says how a metric is shown in the table.
type metricDef struct {
	scenario, key, label string
	prec                 int
	better               string // "higher", "lower", or "" for no ratio
}

var metricDefs = []metricDef{
	{"connrate", "conns_per_s", "connections/s", 0, "higher"},
	{"connrate", "setup_p50_us", "setup latency p50 (µs)", 0, "lower"},
	{"connrate", "setup_p99_us", "setup latency p99 (µs)", 0, "lower"},
	{"connrate", "setup_p999_us", "setup latency p99.9 (µs)", 0, "lower"},
	{"connrate", "cpu_us_per_conn", "proxy CPU per connection (µs)", 1, "lower"},
	{"connrate", "proxy_cores", "proxy CPU (cores)", 2, ""},
	{"connrate", "client_cores", "bench client + targets CPU (cores)", 2, ""},
	{"connrate", "other_cores", "other load on the machine (cores)", 2, ""},

	{"fanout", "tunnels", "tunnels held", 0, ""},
	{"fanout", "rss_per_tunnel_kib", "proxy RSS per idle tunnel (KiB)", 2, "lower"},
	{"fanout", "rss_marginal_kib", "proxy RSS per idle tunnel, second half only (KiB)", 2, "lower"},
	{"fanout", "fds_per_tunnel", "proxy fds per tunnel", 2, "lower"},
	{"fanout", "msgs_per_s", "ping-pong messages/s", 0, "higher"},
	{"fanout", "rtt_p50_us", "ping-pong RTT p50 (µs)", 0, "lower"},
	{"fanout", "rtt_p99_us", "ping-pong RTT p99 (µs)", 0, "lower"},
	{"fanout", "rtt_p999_us", "ping-pong RTT p99.9 (µs)", 0, "lower"},
	{"fanout", "cpu_us_per_msg", "proxy CPU per message (µs)", 2, "lower"},
	{"fanout", "rss_per_tunnel_after_kib", "proxy RSS per tunnel after ping-pong (KiB)", 2, "lower"},
	{"fanout", "proxy_cores", "proxy CPU during ping-pong (cores)", 2, ""},
	{"fanout", "client_cores", "bench client + targets CPU (cores)", 2, ""},
	{"fanout", "other_cores", "other load on the machine (cores)", 2, ""},

	{"throughput", "gbit_per_s", "Gbit/s (both directions)", 2, "higher"},
	{"throughput", "cpu_s_per_gb", "proxy CPU seconds per GB", 3, "lower"},
	{"throughput", "proxy_cores", "proxy CPU (cores)", 2, ""},
	{"throughput", "client_cores", "bench client + targets CPU (cores)", 2, ""},
	{"throughput", "other_cores", "other load on the machine (cores)", 2, ""},

	{"slowreader", "rss_growth_mib", "proxy RSS growth (MiB)", 2, "lower"},
	{"slowreader", "rss_growth_per_tunnel_kib", "proxy RSS growth per tunnel (KiB)", 1, "lower"},
	{"slowreader", "rss_growth_last_half_mib", "RSS growth in the window's second half (MiB)", 2, ""},
	{"slowreader", "flood_gbit_while_reading", "flood rate before clients stopped (Gbit/s)", 2, ""},
	{"slowreader", "other_cores", "other load on the machine (cores)", 2, ""},
}

// report is the whole run, as --json writes it.
type report struct {
	Started  time.Time `json:"started"`
	Seconds  float64   `json:"seconds"`
	Command  []string  `json:"command"`
	Machine  machine   `json:"machine"`
	Config   config    `json:"config"`
	Subjects []string  `json:"subjects"`
	Results  []result  `json:"results"`
	Notes    []string  `json:"notes,omitempty"`
}

type machine struct {
	CPUs        int    `json:"cpus"`
	GoVersion   string `json:"go_version"`
	Kernel      string `json:"kernel"`
	NofileLimit uint64 `json:"nofile_limit"`
	Sources     int    `json:"source_addrs"`
	TargetPorts int    `json:"target_ports_per_kind"`
	Targets     string `json:"targets"`
}

func (rp *report) find(scenario, subject string) *result {
	for i := range rp.Results {
		if rp.Results[i].Scenario == scenario && rp.Results[i].Subject == subject {
			return &rp.Results[i]
		}
	}
	return nil
}

func fmtNum(v float64, prec int) string {
	s := strconv.FormatFloat(v, 'f', prec, 64)
	if prec == 0 && (v >= 10000 || v <= -10000) {
		// Thousands separators for big counts.
		neg := strings.HasPrefix(s, "-")
		s = strings.TrimPrefix(s, "-")
		var b strings.Builder
		for i, c := range s {
			if i > 0 && (len(s)-i)%3 == 0 {
				b.WriteByte(',')
			}
			b.WriteRune(c)
		}
		s = b.String()
		if neg {
			s = "-" + s
		}
	}
	return s
}

// writeTable prints the Markdown table: one row per metric, a column per
// subject, and the first subject's ratio to each other subject.
func (rp *report) writeTable(w io.Writer) {
	subs := rp.Subjects
	head := []string{"scenario", "metric"}
	head = append(head, subs...)
	for _, s := range subs[1:] {
		head = append(head, subs[0]+" / "+s)
	}
	fmt.Fprintln(w, "| "+strings.Join(head, " | ")+" |")
	seps := make([]string, len(head))
	for i := range seps {
		seps[i] = "---"
		if i >= 2 {
			seps[i] = "---:"
		}
	}
	fmt.Fprintln(w, "| "+strings.Join(seps, " | ")+" |")
	for _, sc := range rp.Config.Scenarios {
		for _, d := range metricDefs {
			if d.scenario != sc {
				continue
			}
			row := []string{sc, d.label}
			have := false
			vals := make([]*float64, len(subs))
			for i, s := range subs {
				cell := "–"
				if r := rp.find(sc, s); r != nil {
					if v, ok := r.Metrics[d.key]; ok {
						vals[i] = &v
						cell = fmtNum(v, d.prec)
						have = true
					} else if r.Skipped != "" && i == 0 {
						cell = "skipped"
					}
				}
				row = append(row, cell)
			}
			if !have {
				continue
			}
			for i := 1; i < len(subs); i++ {
				cell := ""
				if d.better != "" && vals[0] != nil && vals[i] != nil && *vals[i] != 0 {
					cell = strconv.FormatFloat(*vals[0] / *vals[i], 'f', 2, 64) + "x"
				}
				row = append(row, cell)
			}
			fmt.Fprintln(w, "| "+strings.Join(row, " | ")+" |")
		}
	}
}

// compareNotes adds notes on figures that do not compare like with like.
func (rp *report) compareNotes() {
	held := map[float64][]string{}
	for _, r := range rp.Results {
		if v, ok := r.Metrics["tunnels"]; ok && r.Scenario == "fanout" {
			held[v] = append(held[v], r.Subject)
		}
	}
	if len(held) > 1 {
		rp.Notes = append(rp.Notes, "fanout held different tunnel counts per subject, so its ping-pong rows compare unequal loads: "+
			"every tunnel keeps one message in flight, so RTT is about tunnels / (messages/s) (Little's law); "+
			"rerun with --scenarios fanout --tunnels N (N at most the smallest count held) to compare RTT at equal load")
	}
}

// writeNotes prints every note and skip under the table.
func (rp *report) writeNotes(w io.Writer) {
	var lines []string
	for _, r := range rp.Results {
		if r.Skipped != "" {
			lines = append(lines, fmt.Sprintf("- %s %s: skipped: %s", r.Scenario, r.Subject, r.Skipped))
		}
		for _, n := range r.Notes {
			lines = append(lines, fmt.Sprintf("- %s %s: %s", r.Scenario, r.Subject, n))
		}
	}
	for _, n := range rp.Notes {
		lines = append(lines, "- "+n)
	}
	if len(lines) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Notes:")
		for _, l := range lines {
			fmt.Fprintln(w, l)
		}
	}
}

func (rp *report) writeJSON(path string) error {
	b, err := json.MarshalIndent(rp, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
