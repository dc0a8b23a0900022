package portmap

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// Route flags from <linux/route.h>.
const (
	rtfUp      = 0x1
	rtfGateway = 0x2
)

// defaultGateway returns the gateway of the IPv4 default route with the
// lowest metric in this network namespace's main routing table.
func defaultGateway() (netip.Addr, error) {
	f, err := os.Open("/proc/net/route")
	if err != nil {
		return netip.Addr{}, fmt.Errorf("finding the default gateway: %w", err)
	}
	defer f.Close()
	gw, err := parseRoutes(f)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("finding the default gateway in /proc/net/route: %w", err)
	}
	return gw, nil
}

var errNoDefaultRoute = errors.New("no IPv4 default route")

// parseRoutes reads the text of /proc/net/route and returns the gateway of
// the up default route with the lowest metric.
func parseRoutes(r io.Reader) (netip.Addr, error) {
	var best netip.Addr
	bestMetric := -1
	sc := bufio.NewScanner(r)
	for first := true; sc.Scan(); first = false {
		// Iface Destination Gateway Flags RefCnt Use Metric Mask MTU Window IRTT
		f := strings.Fields(sc.Text())
		if first || len(f) < 8 {
			continue
		}
		flags, err1 := strconv.ParseUint(f[3], 16, 32)
		metric, err2 := strconv.Atoi(f[6])
		if err1 != nil || err2 != nil || f[1] != "00000000" || f[7] != "00000000" || flags&(rtfUp|rtfGateway) != rtfUp|rtfGateway {
			continue
		}
		gw, ok := procRouteAddr(f[2])
		if !ok || !gw.IsValid() || gw.IsUnspecified() {
			continue
		}
		if bestMetric < 0 || metric < bestMetric {
			best, bestMetric = gw, metric
		}
	}
	if err := sc.Err(); err != nil {
		return netip.Addr{}, err
	}
	if bestMetric < 0 {
		return netip.Addr{}, errNoDefaultRoute
	}
	return best, nil
}

// procRouteAddr decodes an address of /proc/net/route: the kernel prints
// the network-order 32 bits as a host-order number, so the digits come out
// reversed on little-endian machines and in order on big-endian ones (MIPS
// routers).
func procRouteAddr(hex string) (netip.Addr, bool) {
	v, err := strconv.ParseUint(hex, 16, 32)
	if err != nil || len(hex) != 8 {
		return netip.Addr{}, false
	}
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], uint32(v))
	return netip.AddrFrom4(b), true
}

// localAddrTo returns the address this host sends from to reach gw: its
// address on the interface facing the router. Connecting a UDP socket
// sends nothing; it only asks the kernel for the route.
func localAddrTo(gw netip.Addr) (netip.Addr, error) {
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(gw, pxpPort)))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("finding our address toward %v: %w", gw, err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap(), nil
}
