package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"homenet/packaging"
)

// Row 4, the part that needs no lab: binary sizes per arch, and on
// loopback the time from process start to serving and the idle RSS of
// homenet serve (control + relay) against a stock derper. The RSS with
// real nodes and after the throughput runs come from the lab (lab.go).

func rowFootprintLocal(e *env) ([]Row, error) {
	var rows []Row
	sizes, err := footprintSizes(e)
	if err != nil {
		return nil, err
	}
	rows = append(rows, sizes...)
	start, err := footprintStartup(e)
	if err != nil {
		rows = append(rows, Row{ID: "4", Name: "footprint", Case: "start and idle, loopback", NotMeasured: "error: " + firstLine(err.Error())})
	} else {
		rows = append(rows, start)
	}
	return rows, nil
}

// footprintSizes compares stripped release binaries: homenet (control,
// relay and gateway agent in one) against a trimmed stock tailscaled plus
// a stock derper, built with the same flags.
func footprintSizes(e *env) ([]Row, error) {
	ht, err := hostTarget()
	if err != nil {
		return nil, err
	}
	targets := []packaging.Target{ht}
	if !e.opts.short && e.opts.arches != "" {
		targets = nil
		for _, name := range strings.Split(e.opts.arches, ",") {
			t, err := packaging.LookupTarget(strings.TrimSpace(name))
			if err != nil {
				return nil, err
			}
			targets = append(targets, t)
		}
	}
	e.command("go build -trimpath -tags " + abbrevTags(packaging.Tags()) + " -ldflags '" + packaging.LDFlags(e.b.version(e.ctx)) + "' homenet/cmd/homenet   # packaging.GoBuild")
	e.command("(in tailscale.com@VERSION) go build -trimpath -tags " + abbrevTags(stockTags()) + " -ldflags '-s -w -buildid=' ./cmd/tailscaled ./cmd/derper   # as packaging/build -stock")
	var rows []Row
	for _, t := range targets {
		hn, _, err := e.b.homenet(e.ctx, t)
		if err != nil {
			return nil, err
		}
		ts, _, err := e.b.stock(e.ctx, "tailscaled", t)
		if err != nil {
			return nil, err
		}
		dp, _, err := e.b.stock(e.ctx, "derper", t)
		if err != nil {
			return nil, err
		}
		h, s, d := fileSize(hn), fileSize(ts), fileSize(dp)
		m := Metric{Name: "stripped binary", Unit: "MiB", Value: mib(h), Better: "lower"}.
			withRef("trimmed tailscaled + derper", mib(s+d)).
			also("trimmed tailscaled alone", mib(s))
		rows = append(rows, Row{ID: "4", Name: "footprint", Case: "size " + t.Name, Metrics: []Metric{m},
			Notes: []string{fmt.Sprintf("%s: homenet %d B; stock tailscaled %d B, derper %d B (packaging.StockFeatures: %v)", t, h, s, d, packaging.StockFeatures)}})
	}
	return rows, nil
}

func abbrevTags(tags string) string {
	n := strings.Count(tags, ",") + 1
	return fmt.Sprintf("<%d ts_omit_ tags>", n)
}

func fileSize(p string) int64 {
	fi, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// footprintStartup measures, on loopback, the time from exec to serving
// (median of 5, after one warm-up start that creates the state) and the
// RSS 3 s after that, for homenet serve (control + relay, gateway off)
// and for stock derper.
func footprintStartup(e *env) (Row, error) {
	ht, err := hostTarget()
	if err != nil {
		return Row{}, err
	}
	hbin, _, err := e.b.homenet(e.ctx, ht)
	if err != nil {
		return Row{}, err
	}
	dbin, _, err := e.b.stock(e.ctx, "derper", ht)
	if err != nil {
		return Row{}, err
	}
	self, err := e.b.self()
	if err != nil {
		return Row{}, err
	}
	runs := 5
	if e.opts.short {
		runs = 2
	}

	// homenet serve: control answers /key and the relay answers over TLS.
	hdir, err := os.MkdirTemp(e.work, "fph")
	if err != nil {
		return Row{}, err
	}
	hp, err := freePorts(3)
	if err != nil {
		return Row{}, err
	}
	hcfg := filepath.Join(hdir, "homenet.toml")
	if err := os.WriteFile(hcfg, []byte(loopbackHomenetConfig(filepath.Join(hdir, "state"), hp, true)), 0o644); err != nil {
		return Row{}, err
	}
	hURLs := fmt.Sprintf("http://127.0.0.1:%d/key?v=113,https://127.0.0.1:%d/derp/probe", hp[0], hp[1])
	hArgs := []string{hbin, "serve", "--config", hcfg}

	// derper: serves DERP over TLS with a self-signed certificate for
	// 127.0.0.1, as homenet's relay does.
	ddir, err := os.MkdirTemp(e.work, "fpd")
	if err != nil {
		return Row{}, err
	}
	dp, err := freePorts(2)
	if err != nil {
		return Row{}, err
	}
	dArgs := derperArgs(dbin, ddir, "127.0.0.1", dp[0], dp[1])
	dURLs := fmt.Sprintf("https://127.0.0.1:%d/derp/probe", dp[0])
	e.command(strings.Join(derperArgs("derper", "DIR", "ADDR", 8443, 3478), " "))

	// startup runs the startup helper: exec to serving, and the RSS after
	// hold.
	var anon = map[string]int64{}
	startup := func(urls string, args []string, hold time.Duration) (time.Duration, int64, error) {
		cmd := exec.CommandContext(e.ctx, self, append([]string{"helper", "startup", "-hold", hold.String(), "-url", urls, "--"}, args...)...)
		out, err := cmd.Output()
		if err != nil {
			var stderr string
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = string(ee.Stderr)
			}
			return 0, 0, fmt.Errorf("%s: %v\n%s", args[0], err, tailLines(stderr, 20))
		}
		var r struct{ NS, RSS, Anon int64 }
		if err := json.Unmarshal(out, &r); err != nil {
			return 0, 0, fmt.Errorf("helper startup: %q", out)
		}
		anon[args[0]] = r.Anon
		return time.Duration(r.NS), r.RSS, nil
	}
	// measure returns the median time to serving of runs starts, after
	// one warm-up start that creates keys and certificates, and the RSS 3 s
	// after serving.
	measure := func(urls string, args []string) (time.Duration, int64, error) {
		if _, _, err := startup(urls, args, 0); err != nil {
			return 0, 0, err
		}
		var ts []time.Duration
		for range runs {
			d, _, err := startup(urls, args, 0)
			if err != nil {
				return 0, 0, err
			}
			ts = append(ts, d)
		}
		_, rss, err := startup(urls, args, 3*time.Second)
		return median(ts), rss, err
	}
	// Interleave the two systems' runs as little as possible differently:
	// one after the other, back to back.
	hStart, hRSS, err := measure(hURLs, hArgs)
	if err != nil {
		return Row{}, err
	}
	dStart, dRSS, err := measure(dURLs, dArgs)
	if err != nil {
		return Row{}, err
	}
	// Heap profile of the same code idle (appliance.Serve in the helper).
	if err := heapProfileIdle(e, self, hdir, hp); err != nil {
		e.logf("row 4: heap profile: %v", err)
	}
	return Row{ID: "4", Name: "footprint", Case: "start and idle, loopback",
		Metrics: []Metric{
			Metric{Name: "process start → serving, median", Unit: "ms", Value: ms(hStart), Better: "lower"}.withRef("stock derper", ms(dStart)),
			Metric{Name: "RSS idle, no nodes", Unit: "MiB", Value: mib(hRSS), Better: "lower"}.withRef("stock derper", mib(dRSS)),
		},
		Notes: []string{
			fmt.Sprintf("idle RSS: homenet %.1f MiB of which %.1f MiB anonymous (heap, stacks, runtime) and the rest file-backed (binary pages); derper %.1f MiB of which %.1f MiB anonymous",
				mib(hRSS), mib(anon[hbin]), mib(dRSS), mib(anon[dbin])),
			fmt.Sprintf("homenet serve runs control and relay (gateway off); the reference is derper alone, since no stock control server is available here: homenet carries a role the reference lacks. Serving = control answers /key and the relay answers over TLS; derper: answers over TLS. Median of %d starts after one warm-up start that creates keys and certificates", runs),
		},
	}, nil
}

// heapProfileIdle runs appliance.Serve in the bench helper with the config
// in dir, waits 3 s after it serves and saves its in-use heap (after a
// GC) as the row 4 profile.
func heapProfileIdle(e *env, self, dir string, ports []int) error {
	pp, err := freePorts(1)
	if err != nil {
		return err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", pp[0])
	// memprofilerate=4096 samples small allocations too: the idle heap is
	// a few MiB, which the default rate (512 KiB) barely sees.
	c, err := startChild(dir, "helper-serve", []string{pprofEnv + "=" + addr, "GODEBUG=memprofilerate=4096"}, self, "helper", "serve", "-config", filepath.Join(dir, "homenet.toml"))
	if err != nil {
		return err
	}
	defer c.stop()
	if err := c.waitHTTP(e.ctx, fmt.Sprintf("http://127.0.0.1:%d/key?v=113", ports[0]), 30*time.Second); err != nil {
		return err
	}
	time.Sleep(3 * time.Second)
	prof := filepath.Join(dir, "heap.pb.gz")
	if err := fetchProfile(e.ctx, "http://"+addr+"/debug/pprof/heap?gc=1", prof); err != nil {
		return err
	}
	e.profileOf("4-idle", "in-use heap of homenet serve (control + relay) idle on loopback, after a GC", prof, "-sample_index=inuse_space")
	return nil
}

// derperArgs runs a stock derper as homenet's relay runs: DERP over TLS on
// port with a self-signed certificate for ip (certmode manual creates it),
// STUN on stun, no plain-HTTP port, no client verification.
func derperArgs(bin, dir, ip string, port, stun int) []string {
	return []string{bin,
		"-c", filepath.Join(dir, "derper.key"),
		"-a", fmt.Sprintf("%s:%d", ip, port),
		"-http-port", "-1",
		"-stun-port", fmt.Sprint(stun),
		"-certmode", "manual",
		"-certdir", dir,
		"-hostname", ip,
		"-verify-clients=false",
	}
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
