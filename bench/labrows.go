package main

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// labRows turns the lab measurements into table rows. Throughput figures
// are the median over the rounds (homenet and stock alternate within each
// round); the notes list every round.
func labRows(e *env, want map[string]bool, kernel map[flow][]tput, hn, st *sysResult, mem []memCase) []Row {
	var rows []Row
	if want["1"] {
		rows = append(rows, subnetRows(kernel, hn, st)...)
		for _, m := range mem {
			rows = append(rows, memRows(m, hn, st)...)
		}
	}
	if want["2"] {
		rows = append(rows, relayRows(hn, st))
		if e.opts.relayPairs > 1 {
			rows = append(rows, relayManyRow(e.opts.relayPairs, hn, st))
		}
	}
	if want["4"] {
		rows = append(rows, rssRows(hn, st))
	}
	if want["5"] {
		rows = append(rows, coldRow(e, hn, st))
	}
	return rows
}

// medianTput returns the median goodput and the median CPU per GB.
func medianTput(ts []tput) (gbps, cpuPerGB float64) {
	if len(ts) == 0 {
		return 0, 0
	}
	var g, c []float64
	for _, t := range ts {
		g = append(g, t.Gbps)
		c = append(c, t.CPUPerGB)
	}
	return medianF(g), medianF(c)
}

func medianF(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func fmtRuns(ts []tput, cpu bool) string {
	var parts []string
	for _, t := range ts {
		if cpu {
			parts = append(parts, fmt.Sprintf("%.2f Gb/s @ %.2f CPU-s/GB", t.Gbps, t.CPUPerGB))
		} else {
			parts = append(parts, fmt.Sprintf("%.2f Gb/s", t.Gbps))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func subnetRows(kernel map[flow][]tput, hn, st *sysResult) []Row {
	var rows []Row
	for _, f := range rowOneFlows() {
		row := Row{ID: "1", Name: rowName("1"), Case: f.String()}
		hg, hc := medianTput(hn.subnet[f])
		sg, sc := medianTput(st.subnet[f])
		kg, _ := medianTput(kernel[f])
		var refs []string
		switch {
		case sg > 0:
			refs = append(refs, fmt.Sprintf("stock tailscaled %.2f Gb/s, %.2f CPU-s/GB", sg, sc))
		case st.subnetNote != "":
			refs = append(refs, "stock tailscaled not measured: "+st.subnetNote)
		}
		if kg > 0 {
			refs = append(refs, fmt.Sprintf("kernel forwarding %.2f Gb/s", kg))
		}
		if hg == 0 {
			why := hn.subnetNote
			if why == "" {
				why = "no result"
			}
			row.NotMeasured = why
			if len(refs) > 0 {
				row.NotMeasured += "; references: " + strings.Join(refs, "; ")
			}
			rows = append(rows, row)
			continue
		}
		g := Metric{Name: "goodput", Unit: "Gb/s", Value: hg, Better: "higher"}
		c := Metric{Name: "gateway CPU per GB", Unit: "CPU-s/GB", Value: hc, Better: "lower"}
		if sg > 0 {
			g = g.withRef("stock tailscaled", sg)
			c = c.withRef("stock tailscaled", sc)
		}
		if kg > 0 {
			if sg > 0 {
				g = g.also("kernel forwarding", kg)
			} else {
				g = g.withRef("kernel forwarding", kg)
			}
		}
		row.Metrics = []Metric{g, c}
		row.Notes = append(row.Notes, fmt.Sprintf("runs: homenet %s; stock %s; kernel %s. Path phone → gateway: homenet %s, stock %s. CPU is the gateway process's (homenet serve; stock: tailscaled) over each run",
			fmtRuns(hn.subnet[f], true), fmtRuns(st.subnet[f], true), fmtRuns(kernel[f], false), hn.subnetPath, st.subnetPath))
		if sg == 0 {
			row.Notes = append(row.Notes, strings.Join(refs, "; "))
		}
		rows = append(rows, row)
	}
	return rows
}

func relayRows(hn, st *sysResult) Row {
	row := Row{ID: "2", Name: rowName("2"), Case: "1 stream via DERP"}
	hg, hc := medianTput(hn.relay)
	sg, sc := medianTput(st.relay)
	if hg == 0 {
		row.NotMeasured = hn.relayNote
		if row.NotMeasured == "" {
			row.NotMeasured = "no result"
		}
		if sg > 0 {
			row.NotMeasured += fmt.Sprintf("; reference: stock derper %.3f Gb/s, %.1f CPU-s/GB", sg, sc)
		}
		return row
	}
	g := Metric{Name: "goodput", Unit: "Gb/s", Value: hg, Better: "higher"}
	c := Metric{Name: "relay CPU per GB", Unit: "CPU-s/GB", Value: hc, Better: "lower"}
	if sg > 0 {
		g = g.withRef("stock derper", sg)
		c = c.withRef("stock derper", sc)
	} else {
		row.Notes = append(row.Notes, "stock derper not measured: "+st.relayNote)
	}
	row.Metrics = []Metric{g, c}
	row.Notes = append(row.Notes, fmt.Sprintf("runs: homenet %s; stock %s. Two phones behind --random-fully NATs (path %s / %s); both relays speak TLS with a self-signed certificate pinned by sha256-raw in a DERP map of the same shape; CPU is the relay process's (homenet serve, which also runs control and the gateway agent; stock: derper -verify-clients=false)",
		fmtRuns(hn.relay, true), fmtRuns(st.relay, true), hn.relayPath, st.relayPath))
	return row
}

// rssRows compares the memory on the gateway host: homenet serve against
// the stock processes in the roles homenet serve plays (derper as the
// relay, and tailscaled as the subnet router when homenet's agent ran).
// There is no stock control server, so homenet's control is extra.
func rssRows(hn, st *sysResult) Row {
	row := Row{ID: "4", Name: rowName("4"), Case: "RSS on the gateway, lab"}
	stockRoles := []string{"derper"}
	if hn.gatewayWired {
		stockRoles = append(stockRoles, "tailscaled-gw")
	}
	var metrics []Metric
	for _, phase := range []string{"idle", "3 nodes", "after throughput", "settled"} {
		h := sum(hn.rss[phase], nil)
		s := sum(st.rss[phase], stockRoles)
		if h == 0 {
			continue
		}
		name := map[string]string{"idle": "RSS idle", "3 nodes": "RSS with 3 real nodes", "after throughput": "RSS after the throughput runs",
			"settled": fmt.Sprintf("RSS %v after the throughput runs", settleAfter)}[phase]
		m := Metric{Name: name, Unit: "MiB", Value: mib(h), Better: "lower"}
		if s > 0 {
			m = m.withRef(strings.Join(stockRoles, " + "), mib(s))
		}
		metrics = append(metrics, m)
	}
	if len(metrics) == 0 {
		row.NotMeasured = "no RSS figures (see the lab errors)"
		return row
	}
	row.Metrics = metrics
	roles := "homenet serve runs control + relay"
	if hn.gatewayWired {
		roles += " + gateway agent"
	} else {
		roles += " (its gateway agent did not run, so the stock subnet router is left out of the reference)"
	}
	row.Notes = append(row.Notes, roles+fmt.Sprintf("; the stock side runs %s. The control stand-in is homenet's own code and is not counted; after the throughput runs: %s; %v later: %s. "+
		"RSS just after the runs is mostly wireguard-go's packet buffers kept in sync.Pool, which Go frees after two collections (an idle program collects every 2 minutes)",
		st.roles, fmtRSS(st.rss["after throughput"]), settleAfter, fmtRSS(st.rss["settled"])))
	return row
}

func sum(m map[string]int64, only []string) int64 {
	var t int64
	for k, v := range m {
		if only != nil && !slices.Contains(only, k) {
			continue
		}
		t += v
	}
	return t
}

func fmtRSS(m map[string]int64) string {
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s %.1f MiB", k, mib(m[k])))
	}
	return strings.Join(parts, ", ")
}

func coldRow(e *env, hn, st *sysResult) Row {
	row := Row{ID: "5", Name: rowName("5"), Case: fmt.Sprintf("median of %d", e.opts.coldRuns)}
	if len(hn.cold) == 0 {
		row.NotMeasured = hn.coldNote
		if row.NotMeasured == "" {
			row.NotMeasured = "no result"
		}
		return row
	}
	m := Metric{Name: "tailscale up --authkey → first ping through the tunnel", Unit: "ms", Value: ms(median(hn.cold)), Better: "lower"}
	if len(st.cold) > 0 {
		m = m.withRef("stock derper + control helper", ms(median(st.cold)))
	} else {
		row.Notes = append(row.Notes, "stock not measured: "+st.coldNote)
	}
	row.Metrics = []Metric{m}
	row.Notes = append(row.Notes, fmt.Sprintf("runs (alternating): homenet %v; stock %v. A phone behind plain NAT with fresh state (tailscaled restarted, state wiped) runs tailscale up and pings another phone's tailnet address every 20 ms; the reference differs in the relay (derper) and in running control in a process of its own",
		roundAll(hn.cold), roundAll(st.cold)))
	return row
}

func roundAll(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Millisecond)
	}
	return out
}

// memGoal is the goal for homenet under GOMEMLIMIT=64MiB: at
// least this share of its unlimited goodput, with at most memGoalRSS.
const (
	memGoalShare = 0.8
	memGoalRSS   = 80 << 20
)

// memRows are row 1 under one GOMEMLIMIT: homenet against the stock
// tailscaled under the same limit, beside homenet's unlimited run of the
// same rounds; goodput and the gateway's RSS just after each run.
func memRows(m memCase, hnFree, stFree *sysResult) []Row {
	var rows []Row
	for _, f := range rowOneFlows() {
		row := Row{ID: "1", Name: rowName("1"), Case: fmt.Sprintf("%v, GOMEMLIMIT=%s", f, m.name())}
		hg, hc := medianTput(m.hn.subnet[f])
		sg, sc := medianTput(m.st.subnet[f])
		fg, _ := medianTput(hnFree.subnet[f])
		sfg, _ := medianTput(stFree.subnet[f])
		if hg == 0 {
			row.NotMeasured = cmpOr(m.hn.subnetNote, "no result")
			if sg > 0 {
				row.NotMeasured += fmt.Sprintf("; reference: stock tailscaled under the same limit %.2f Gb/s", sg)
			}
			rows = append(rows, row)
			continue
		}
		g := Metric{Name: "goodput", Unit: "Gb/s", Value: hg, Better: "higher"}
		c := Metric{Name: "gateway CPU per GB", Unit: "CPU-s/GB", Value: hc, Better: "lower"}
		hr := maxI(m.hn.subnetRSS[f])
		r := Metric{Name: "gateway RSS after the run (largest)", Unit: "MiB", Value: mib(hr), Better: "lower"}
		if sg > 0 {
			g = g.withRef("stock tailscaled, same limit", sg)
			c = c.withRef("stock tailscaled, same limit", sc)
			r = r.withRef("stock tailscaled, same limit", mib(maxI(m.st.subnetRSS[f])))
		}
		// Without the stock run (-systems), homenet's own unlimited run
		// is the reference.
		ref := func(m Metric, name string, v float64) Metric {
			if m.RefName == "" {
				return m.withRef(name, v)
			}
			return m.also(name, v)
		}
		if fg > 0 {
			g = ref(g, "homenet, no limit", fg)
		}
		if sfg > 0 {
			g = ref(g, "stock tailscaled, no limit", sfg)
		}
		if fr := maxI(hnFree.subnetRSS[f]); fr > 0 {
			r = ref(r, "homenet, no limit", mib(fr))
		}
		row.Metrics = []Metric{g, r, c}
		goal := "n/a (no unlimited run)"
		if fg > 0 {
			met := hg >= memGoalShare*fg && hr <= memGoalRSS
			goal = fmt.Sprintf("%.2f× the unlimited goodput, RSS %.0f MiB: goal (≥ %.1f×, ≤ %d MiB) %s", hg/fg, mib(hr), memGoalShare, memGoalRSS>>20, map[bool]string{true: "met", false: "not met"}[met])
		}
		row.Notes = append(row.Notes, fmt.Sprintf("runs: homenet %s (RSS after: %s; peak VmHWM %.0f MiB); stock %s (RSS after: %s; peak %.0f MiB). %s. "+
			"Each system is a lab of its own (gateway, LAN host, one phone) whose gateway process runs with GOMEMLIMIT=%s in its environment; homenet serve also holds control and the relay, the stock figure is tailscaled alone",
			fmtRuns(m.hn.subnet[f], true), fmtMiBs(m.hn.subnetRSS[f]), mib(m.hn.peakRSS), fmtRuns(m.st.subnet[f], true), fmtMiBs(m.st.subnetRSS[f]), mib(m.st.peakRSS), goal, m.limit))
		rows = append(rows, row)
	}
	return rows
}

// relayManyRow is row 2 with several phone pairs through the relay at
// once: the sum, and the slowest pair (a pair starved by the others is
// the collapse seen with unpaced pairs against derpserver).
func relayManyRow(pairs int, hn, st *sysResult) Row {
	row := Row{ID: "2", Name: rowName("2"), Case: fmt.Sprintf("%d pairs at once via DERP", pairs)}
	hg, hc := medianTput(hn.relayMany)
	sg, sc := medianTput(st.relayMany)
	if hg == 0 {
		row.NotMeasured = cmpOr(hn.relayManyNote, "no result")
		if sg > 0 {
			row.NotMeasured += fmt.Sprintf("; reference: stock derper %.3f Gb/s", sg)
		}
		return row
	}
	g := Metric{Name: "goodput, all pairs", Unit: "Gb/s", Value: hg, Better: "higher"}
	lo := Metric{Name: "goodput of the slowest pair", Unit: "Gb/s", Value: medianF(mins(hn.relayManyEach)), Better: "higher"}
	c := Metric{Name: "relay CPU per GB", Unit: "CPU-s/GB", Value: hc, Better: "lower"}
	if sg > 0 {
		g = g.withRef("stock derper", sg)
		lo = lo.withRef("stock derper", medianF(mins(st.relayManyEach)))
		c = c.withRef("stock derper", sc)
	} else {
		row.Notes = append(row.Notes, "stock derper not measured: "+st.relayManyNote)
	}
	if g1, _ := medianTput(hn.relay); g1 > 0 {
		g = g.also("homenet, 1 pair", g1)
	}
	row.Metrics = []Metric{g, lo, c}
	row.Notes = append(row.Notes, fmt.Sprintf("runs, each pair's goodput: homenet %s; stock %s. Senders behind one --random-fully NAT, receivers behind another, one iperf3 stream per pair, all started together",
		fmtPairs(hn.relayManyEach), fmtPairs(st.relayManyEach)))
	return row
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func maxI(v []int64) int64 {
	if len(v) == 0 {
		return 0
	}
	return slices.Max(v)
}

func mins(rounds [][]float64) []float64 {
	var out []float64
	for _, r := range rounds {
		if len(r) > 0 {
			out = append(out, slices.Min(r))
		}
	}
	if len(out) == 0 {
		return []float64{0}
	}
	return out
}

func fmtMiBs(v []int64) string {
	var parts []string
	for _, b := range v {
		parts = append(parts, fmt.Sprintf("%.0f", mib(b)))
	}
	return strings.Join(parts, ", ") + " MiB"
}

func fmtPairs(rounds [][]float64) string {
	var parts []string
	for _, r := range rounds {
		parts = append(parts, "("+fmtGbps(r)+")")
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}
