package portmap

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"
)

// pxpPort is the router's port for PCP and NAT-PMP.
const pxpPort = 5351

// errNoAnswer marks failures where the router did not answer at all (as
// opposed to answering "no"): the protocol is not there, or no longer.
var errNoAnswer = errors.New("no answer")

// resends are the waits between sends of one PCP or NAT-PMP request. The
// router is one hop away: RFC 6886 starts at 250 ms and doubles; we stop
// after a few seconds rather than its minute, and try again later.
var resends = [...]time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second, 1500 * time.Millisecond}

// exchange sends req from local to server over UDP, resending it on the
// schedule above, and returns the first datagram from server for which
// match returns true. Datagrams that do not match are ignored.
func exchange(ctx context.Context, local netip.Addr, server netip.AddrPort, req []byte, match func([]byte) bool) ([]byte, error) {
	d := net.Dialer{LocalAddr: net.UDPAddrFromAddrPort(netip.AddrPortFrom(local, 0))}
	c, err := d.DialContext(ctx, "udp4", server.String())
	if err != nil {
		return nil, fmt.Errorf("%v: %w", server, err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	buf := make([]byte, 1500)
	for _, wait := range resends {
		if _, err := c.Write(req); err != nil {
			return nil, noAnswer(ctx, server, err)
		}
		c.SetReadDeadline(time.Now().Add(wait))
		for {
			n, err := c.Read(buf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() && ctx.Err() == nil {
					break // send again
				}
				return nil, noAnswer(ctx, server, err)
			}
			if match(buf[:n]) {
				return append([]byte(nil), buf[:n]...), nil
			}
		}
	}
	return nil, fmt.Errorf("%v: %w after %d tries", server, errNoAnswer, len(resends))
}

// noAnswer wraps a socket error. ECONNREFUSED is the router's ICMP "port
// unreachable": nothing listens there, so there is no point in waiting.
func noAnswer(ctx context.Context, server netip.AddrPort, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("%v: %w (port unreachable)", server, errNoAnswer)
	}
	return fmt.Errorf("%v: %w: %v", server, errNoAnswer, err)
}
