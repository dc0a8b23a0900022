package portmap

import (
	"bufio"
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/huin/goupnp"
	"github.com/huin/goupnp/dcps/internetgateway2"
	"github.com/huin/goupnp/soap"
)

// UPnP IGD: SSDP finds the router's description URL, goupnp does the SOAP.

const (
	ssdpPort = 1900
	// ssdpWait bounds discovery. Routers answer a unicast M-SEARCH at
	// once and a multicast one within MX (1 s).
	ssdpWait = 2 * time.Second
	igdST    = "urn:schemas-upnp-org:device:InternetGatewayDevice:1"
	// upnpCallTimeout bounds one SOAP call.
	upnpCallTimeout = 5 * time.Second
)

// UPnP error codes we act on (WANIPConnection:2 service spec).
const (
	upnpInvalidArgs        = 402
	upnpNoSuchEntry        = 714
	upnpOnlyPermanentLease = 725
)

var ssdpMulticast = netip.AddrPortFrom(netip.AddrFrom4([4]byte{239, 255, 255, 250}), ssdpPort)

// ssdpSearch sends an M-SEARCH for an IGD from local, both to gw and to
// the SSDP multicast group (leaving by local's interface), and returns the
// description URLs of the answers, the gateway's first. It returns early
// once the gateway has answered.
func ssdpSearch(ctx context.Context, local, gw netip.Addr) ([]*url.URL, error) {
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(local, 0)))
	if err != nil {
		return nil, fmt.Errorf("SSDP: %w", err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, ssdpWait)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	req := fmt.Appendf(nil, "M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 1\r\nST: %s\r\n\r\n", igdST)
	for _, to := range []netip.AddrPort{netip.AddrPortFrom(gw, ssdpPort), ssdpMulticast} {
		if _, err := c.WriteToUDPAddrPort(req, to); err != nil {
			return nil, fmt.Errorf("SSDP: sending to %v: %w", to, err)
		}
	}
	var fromGW, others []*url.URL
	buf := make([]byte, 2048)
	for len(fromGW) == 0 {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			break // the deadline
		}
		loc, err := parseSSDPResponse(buf[:n])
		if err != nil {
			continue
		}
		if from.Addr().Unmap() == gw {
			fromGW = append(fromGW, loc)
		} else if !slices.ContainsFunc(others, func(u *url.URL) bool { return *u == *loc }) {
			others = append(others, loc)
		}
	}
	return append(fromGW, others...), nil
}

// parseSSDPResponse returns the description URL of an SSDP answer about an
// IGD.
func parseSSDPResponse(b []byte) (*url.URL, error) {
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(b)), nil)
	if err != nil {
		return nil, fmt.Errorf("SSDP answer: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("SSDP answer: status %s", resp.Status)
	}
	if st := resp.Header.Get("St"); !strings.Contains(st, "InternetGatewayDevice") {
		return nil, fmt.Errorf("SSDP answer about %q, not an IGD", st)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		return nil, fmt.Errorf("SSDP answer: location: %w", err)
	}
	if loc.Scheme != "http" || loc.Host == "" {
		return nil, fmt.Errorf("SSDP answer: location %q is not an http URL", loc)
	}
	return loc, nil
}

// igdService is what WANIPConnection1, WANIPConnection2 and
// WANPPPConnection1 have in common.
type igdService interface {
	AddPortMappingCtx(ctx context.Context, remoteHost string, external uint16, proto string, internal uint16, client string, enabled bool, desc string, lease uint32) error
	DeletePortMappingCtx(ctx context.Context, remoteHost string, external uint16, proto string) error
	GetExternalIPAddressCtx(ctx context.Context) (string, error)
}

// igdAnyPort is WANIPConnection2's AddAnyPortMapping: the router picks
// another port when the asked-for one is taken.
type igdAnyPort interface {
	AddAnyPortMappingCtx(ctx context.Context, remoteHost string, external uint16, proto string, internal uint16, client string, enabled bool, desc string, lease uint32) (uint16, error)
}

// upnpClient maps ports through one IGD service.
type upnpClient struct {
	svc   igdService
	local netip.Addr // the internal client
	// permanent is set once the router refused a lease with a duration.
	permanent bool
}

func (c *upnpClient) protocol() string { return "upnp-igd" }

// findIGD looks for an IGD answering from gw (SSDP unless location is
// given) and returns a client for its first connection service that tells
// its external address.
func findIGD(ctx context.Context, local, gw netip.Addr, location string) (*upnpClient, error) {
	var locs []*url.URL
	if location != "" {
		u, err := url.Parse(location)
		if err != nil {
			return nil, fmt.Errorf("UPnP: description URL: %w", err)
		}
		locs = []*url.URL{u}
	} else {
		var err error
		if locs, err = ssdpSearch(ctx, local, gw); err != nil {
			return nil, err
		}
	}
	if len(locs) == 0 {
		return nil, fmt.Errorf("UPnP: %w to SSDP search from %v", errNoAnswer, local)
	}
	var msgs []string
	for _, loc := range locs {
		svc, err := igdServiceAt(ctx, loc)
		if err != nil {
			msgs = append(msgs, err.Error())
			continue
		}
		return &upnpClient{svc: svc, local: local}, nil
	}
	return nil, fmt.Errorf("UPnP: %s", strings.Join(msgs, "; "))
}

// igdServiceAt reads the device description at loc and returns its best
// WAN connection service: IP before PPP, version 2 before 1, the first
// that answers GetExternalIPAddress.
func igdServiceAt(ctx context.Context, loc *url.URL) (igdService, error) {
	root, err := goupnp.DeviceByURLCtx(ctx, loc)
	if err != nil {
		return nil, err
	}
	var svcs []igdService
	ip2, _ := internetgateway2.NewWANIPConnection2ClientsFromRootDevice(root, loc)
	ip1, _ := internetgateway2.NewWANIPConnection1ClientsFromRootDevice(root, loc)
	ppp, _ := internetgateway2.NewWANPPPConnection1ClientsFromRootDevice(root, loc)
	for _, s := range ip2 {
		svcs = append(svcs, s)
	}
	for _, s := range ip1 {
		svcs = append(svcs, s)
	}
	for _, s := range ppp {
		svcs = append(svcs, s)
	}
	if len(svcs) == 0 {
		return nil, fmt.Errorf("%s: no WANIPConnection or WANPPPConnection service", loc)
	}
	var lastErr error
	for _, s := range svcs {
		cctx, cancel := context.WithTimeout(ctx, upnpCallTimeout)
		_, err := s.GetExternalIPAddressCtx(cctx)
		cancel()
		if err == nil {
			return s, nil
		}
		lastErr = err
	}
	return nil, fmt.Errorf("%s: GetExternalIPAddress: %w", loc, lastErr)
}

func (c *upnpClient) add(ctx context.Context, mp *mapping, lifetime time.Duration) (uint16, time.Duration, error) {
	lease := seconds(lifetime)
	if c.permanent {
		lease = 0
	}
	ext, err := c.addLease(ctx, mp, lease)
	if code := upnpErrorCode(err); lease != 0 && (code == upnpOnlyPermanentLease || code == upnpInvalidArgs) {
		// Old IGDv1 routers only take permanent leases (and some say
		// so with "invalid args"). Close still deletes them.
		if ext, err = c.addLease(ctx, mp, 0); err == nil {
			c.permanent, lease = true, 0
		}
	}
	if err != nil {
		return 0, 0, upnpError("AddPortMapping", mp, err)
	}
	return ext, time.Duration(lease) * time.Second, nil
}

// addLease adds (or renews) mp for lease seconds and returns the external
// port the router gave.
func (c *upnpClient) addLease(ctx context.Context, mp *mapping, lease uint32) (uint16, error) {
	ctx, cancel := context.WithTimeout(ctx, upnpCallTimeout)
	defer cancel()
	proto, want, client, desc := strings.ToUpper(mp.Proto), mp.want(), c.local.String(), mp.description()
	if v2, ok := c.svc.(igdAnyPort); ok && lease != 0 {
		got, err := v2.AddAnyPortMappingCtx(ctx, "", want, proto, mp.Internal, client, true, desc, lease)
		if err == nil && got == 0 {
			got = want // some routers leave NewReservedPort out
		}
		return got, err
	}
	return want, c.svc.AddPortMappingCtx(ctx, "", want, proto, mp.Internal, client, true, desc, lease)
}

func (c *upnpClient) del(ctx context.Context, mp *mapping) error {
	ctx, cancel := context.WithTimeout(ctx, upnpCallTimeout)
	defer cancel()
	err := c.svc.DeletePortMappingCtx(ctx, "", mp.ext, strings.ToUpper(mp.Proto))
	if upnpErrorCode(err) == upnpNoSuchEntry {
		return nil // gone already: expired, or the router restarted
	}
	if err != nil {
		return upnpError("DeletePortMapping", mp, err)
	}
	return nil
}

func (c *upnpClient) externalIPv4(ctx context.Context) (netip.Addr, error) {
	ctx, cancel := context.WithTimeout(ctx, upnpCallTimeout)
	defer cancel()
	s, err := c.svc.GetExternalIPAddressCtx(ctx)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("UPnP GetExternalIPAddress: %w", noAnswerUnlessFault(err))
	}
	ip, err := netip.ParseAddr(s)
	if err != nil || !ip.Is4() || ip.IsUnspecified() {
		return netip.Addr{}, fmt.Errorf("UPnP GetExternalIPAddress: router says %q", s)
	}
	return ip, nil
}

// upnpError names the call and the mapping. A failure without a SOAP
// fault means the router did not answer: errNoAnswer.
func upnpError(call string, mp *mapping, err error) error {
	return fmt.Errorf("UPnP %s %s %d->%d: %w", call, mp.Proto, mp.want(), mp.Internal, noAnswerUnlessFault(err))
}

func noAnswerUnlessFault(err error) error {
	var f *soap.SOAPFaultError
	if errors.As(err, &f) || errors.Is(err, context.Canceled) {
		return err
	}
	return fmt.Errorf("%w: %w", errNoAnswer, err)
}

// upnpErrorCode returns the UPnP error code in a SOAP fault, or 0.
func upnpErrorCode(err error) int {
	var f *soap.SOAPFaultError
	if !errors.As(err, &f) {
		return 0
	}
	if c := f.Detail.UPnPError.Errorcode; c != 0 {
		return c
	}
	// Some routers put UPnPError in a namespace goupnp does not decode.
	var e struct {
		Code int `xml:"errorCode"`
	}
	if xml.Unmarshal(f.Detail.Raw, &e) == nil {
		return e.Code
	}
	return 0
}
