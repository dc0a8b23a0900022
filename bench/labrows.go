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
func labRows(e *env, want map[string]bool, kernel map[int][]tput, hn, st *sysResult) []Row {
	var rows []Row
	if want["1"] {
		rows = append(rows, subnetRows(kernel, hn, st)...)
	}
	if want["2"] {
		rows = append(rows, relayRows(hn, st))
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

func subnetRows(kernel map[int][]tput, hn, st *sysResult) []Row {
	var rows []Row
	for _, n := range []int{1, 4} {
		cs := fmt.Sprintf("%d stream", n)
		if n > 1 {
			cs += "s"
		}
		row := Row{ID: "1", Name: rowName("1"), Case: cs}
		hg, hc := medianTput(hn.subnet[n])
		sg, sc := medianTput(st.subnet[n])
		kg, _ := medianTput(kernel[n])
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
			fmtRuns(hn.subnet[n], true), fmtRuns(st.subnet[n], true), fmtRuns(kernel[n], false), hn.subnetPath, st.subnetPath))
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
