package appliance

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/vishvananda/netlink"
)

// DetectReachability reads this host's addresses and says how phones away
// from home can reach it. keep is the IPv6 address chosen last time, if
// any (see reachabilityFrom).
func DetectReachability(keep netip.Addr) (Reachability, error) {
	addrs, err := hostAddrs()
	if err != nil {
		return Reachability{}, err
	}
	wan := ""
	if f, err := os.Open("/proc/net/route"); err == nil {
		wan = defaultRouteIface(f)
		f.Close()
	}
	return reachabilityFrom(wan, addrs, keep), nil
}

// hostAddrs lists every address of every interface with its flags.
func hostAddrs() ([]hostAddr, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("listing interfaces: %w", err)
	}
	byIndex := map[int]net.Interface{}
	for _, ifc := range ifs {
		byIndex[ifc.Index] = ifc
	}
	list, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("listing addresses: %w", err)
	}
	var out []hostAddr
	for _, a := range list {
		ifc, ok := byIndex[a.LinkIndex]
		ip, ok2 := netip.AddrFromSlice(a.IP)
		if !ok || !ok2 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		out = append(out, hostAddr{
			Iface:        ifc.Name,
			Up:           ifc.Flags&net.FlagUp != 0,
			Addr:         ip.Unmap(),
			Flags:        a.Flags,
			PreferredLft: uint32(a.PreferedLft),
		})
	}
	return out, nil
}

// watchAddrs calls changed after the host's addresses change (debounced
// by settle), and every backstop in case an event was lost, until ctx is
// done. It needs no polling to see a change: netlink tells it.
func watchAddrs(ctx context.Context, settle, backstop time.Duration, changed func(), logger *slog.Logger) {
	for ctx.Err() == nil {
		ch := make(chan netlink.AddrUpdate, 64)
		done := make(chan struct{})
		err := netlink.AddrSubscribeWithOptions(ch, done, netlink.AddrSubscribeOptions{
			ErrorCallback: func(err error) { logger.Debug("reachability: netlink address watch", "err", err) },
		})
		if err != nil {
			logger.Warn("reachability: cannot watch address changes; checking every minute instead", "err", err)
			ch = nil
			backstop = min(backstop, time.Minute)
		}
		watchLoop(ctx, ch, settle, backstop, changed)
		close(done)
	}
}

// watchLoop runs one subscription until ctx is done or ch closes.
func watchLoop(ctx context.Context, ch <-chan netlink.AddrUpdate, settle, backstop time.Duration, changed func()) {
	tick := time.NewTicker(backstop)
	defer tick.Stop()
	var fire <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-ch:
			if !ok {
				return
			}
			if fire == nil {
				fire = time.After(settle)
			}
		case <-fire:
			fire = nil
			changed()
		case <-tick.C:
			changed()
		}
	}
}
