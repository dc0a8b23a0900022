package main

import (
	"context"
	"fmt"
	"time"

	"homenet/appliance"
)

const selftestLong = `Check that this binary works on this machine, without a configuration and
without touching any state or public port: create and migrate a throwaway
SQLite store in a temporary directory, start a control server on it (which
makes its keys) and create a pre-auth key, then start the DERP relay and
STUN server on loopback, pass a packet between two registered nodes,
check that an unregistered one is refused, and stop the relay. Run it
after installing a package, or under qemu-user for another architecture.
Exits 1 if a step fails.`

// selftestResult is one line of selftest's JSON output.
type selftestResult struct {
	Step   string  `json:"step"`
	OK     bool    `json:"ok"`
	Detail string  `json:"detail"`
	Secs   float64 `json:"seconds"`
}

// selftest runs appliance.Selftest and prints each step as it finishes.
func selftest(ctx context.Context, inv *invocation) error {
	var results []selftestResult
	start := time.Now()
	err := appliance.Selftest(ctx, "", func(s appliance.SelftestStep) {
		r := selftestResult{Step: s.Name, OK: s.Err == nil, Detail: s.Detail, Secs: s.Took.Seconds()}
		results = append(results, r)
		if inv.opts.json {
			return
		}
		status := "ok  "
		if !r.OK {
			status = "FAIL"
		}
		fmt.Fprintf(inv.stdout, "%s %-8s %6.2fs  %s\n", status, r.Step, r.Secs, r.Detail)
	})
	if inv.opts.json {
		if perr := printJSON(inv.stdout, results); perr != nil {
			return perr
		}
	} else if err == nil {
		v := buildVersion()
		fmt.Fprintf(inv.stdout, "selftest passed in %.2fs (homenet %s, %s)\n", time.Since(start).Seconds(), v.Version, v.Platform)
	}
	return err
}
