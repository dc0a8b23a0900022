package main

import (
	"context"
	"flag"
	"fmt"
	"text/tabwriter"

	"homenet/appliance"
)

const portsLong = `Ports lists the ports of this host that phones need to reach from the
internet, one a line: protocol, port, name and role. They follow the
configuration (server.listen, relay.listen, relay.stun_listen, the
gateway's WireGuard port): forward these on an upstream router, or open
them in a firewall. OpenWrt's init script reads them on every start and
points the package's fw4 WAN rules at them.`

func portsFlags(fs *flag.FlagSet, o *options) {
	configFlag(fs, o)
	jsonFlag(fs, o)
}

// ports prints the configuration's exposed ports.
func ports(ctx context.Context, inv *invocation) error {
	cfg, _, err := inv.config()
	if err != nil {
		return err
	}
	ps := appliance.Ports(&cfg)
	if inv.opts.json {
		if ps == nil {
			ps = []appliance.Port{}
		}
		return printJSON(inv.stdout, ps)
	}
	tw := tabwriter.NewWriter(inv.stdout, 0, 8, 2, ' ', 0)
	for _, p := range ps {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.Proto, p.Port, p.Name, p.Role)
	}
	return tw.Flush()
}
