//go:build linux

package firewall

import (
	"testing"
	"time"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// BenchmarkIntact measures one Intact of the gateway rules per backend, as
// the router's watchdog runs it every 3 s. Besides wall time it reports
// cpu-µs/op: CPU time of this process plus the iptables processes it
// forks, which is what the check costs a small router.
//
// "idle" checks an unchanged ruleset, the watchdog's steady state;
// "changed" commits an unrelated nf_tables change before each check
// (outside the measurement), the worst case for the nf_tables backends.
//
//	sudo go test -run '^$' -bench BenchmarkIntact -benchtime 100x -count 3 ./firewall/
func BenchmarkIntact(b *testing.B) {
	if netnsSkip != "" {
		b.Skip(netnsSkip)
	}
	need(b, "nft")
	r := gatewayRules()
	for _, be := range backends {
		for _, mode := range []string{"idle", "changed"} {
			b.Run(be.kind+"/"+mode, func(b *testing.B) {
				fw, err := New(be.kind)
				if err != nil {
					b.Skipf("backend %s unavailable: %v", be.kind, err)
				}
				resetNetfilter(b)
				b.Cleanup(func() { resetNetfilter(b) })
				apply(b, fw, r)
				if !intact(b, fw, r) {
					b.Fatal("Intact = false after Apply")
				}
				var cpu time.Duration
				b.ResetTimer()
				for i := 0; b.Loop(); i++ {
					if mode == "changed" {
						b.StopTimer()
						pokeNftables(b, i)
						b.StartTimer()
					}
					start := cpuTime(b)
					ok, err := fw.Intact(r)
					cpu += cpuTime(b) - start
					if err != nil || !ok {
						b.Fatalf("Intact = %v, %v", ok, err)
					}
				}
				b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
			})
		}
	}
}

// cpuTime is the CPU time used so far by this process and its waited-for
// children.
func cpuTime(tb testing.TB) time.Duration {
	var total time.Duration
	for _, who := range []int{unix.RUSAGE_SELF, unix.RUSAGE_CHILDREN} {
		var ru unix.Rusage
		if err := unix.Getrusage(who, &ru); err != nil {
			tb.Fatalf("getrusage: %v", err)
		}
		total += time.Duration(unix.TimevalToNsec(ru.Utime) + unix.TimevalToNsec(ru.Stime))
	}
	return total
}

// pokeNftables commits a change to nf_tables that does not concern us:
// it adds or deletes the table "inet hnbench".
func pokeNftables(tb testing.TB, i int) {
	c, err := nftables.New()
	if err != nil {
		tb.Fatal(err)
	}
	t := &nftables.Table{Family: nftables.TableFamilyINet, Name: "hnbench"}
	if i%2 == 0 {
		c.AddTable(t)
	} else {
		c.DelTable(t)
	}
	if err := c.Flush(); err != nil {
		tb.Fatalf("poking nftables: %v", err)
	}
}
