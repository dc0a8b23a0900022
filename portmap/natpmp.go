package portmap

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// NAT-PMP (RFC 6886): opcode 0 asks for the external address, 1 and 2 map
// a UDP or TCP port.

const (
	pmpOpAddr       = 0
	pmpOpMapUDP     = 1
	pmpOpMapTCP     = 2
	pmpResponseBase = 128
)

// pmpResults are the result codes of RFC 6886 section 3.5.
var pmpResults = [...]string{
	0: "success", 1: "unsupported version", 2: "not authorized or refused",
	3: "network failure", 4: "out of resources", 5: "unsupported opcode",
}

// pmpResultError is a NAT-PMP response's non-zero result code.
type pmpResultError uint16

func (e pmpResultError) Error() string {
	if int(e) < len(pmpResults) {
		return fmt.Sprintf("NAT-PMP result %d (%s)", uint16(e), pmpResults[e])
	}
	return fmt.Sprintf("NAT-PMP result %d", uint16(e))
}

// pmpResponse is a parsed NAT-PMP response.
type pmpResponse struct {
	op     uint8 // the request's opcode
	result uint16
	epoch  uint32

	externalIP netip.Addr // opcode 0

	internal, external uint16 // opcodes 1 and 2
	lifetime           uint32 // seconds
}

// parsePMPResponse parses a datagram from the router's NAT-PMP port. A
// response with a non-zero result may be short (RFC 6886 section 3.5);
// its other fields are then zero.
func parsePMPResponse(b []byte) (pmpResponse, error) {
	var r pmpResponse
	if len(b) < 4 {
		return r, fmt.Errorf("NAT-PMP response of %d bytes", len(b))
	}
	if b[0] != 0 {
		return r, fmt.Errorf("NAT-PMP response version %d", b[0])
	}
	if b[1] < pmpResponseBase {
		return r, errors.New("NAT-PMP request, not a response")
	}
	r.op = b[1] - pmpResponseBase
	r.result = binary.BigEndian.Uint16(b[2:])
	if len(b) >= 8 {
		r.epoch = binary.BigEndian.Uint32(b[4:])
	}
	want := 0
	switch r.op {
	case pmpOpAddr:
		want = 12
	case pmpOpMapUDP, pmpOpMapTCP:
		want = 16
	default:
		return r, fmt.Errorf("NAT-PMP response to opcode %d", r.op)
	}
	if len(b) < want {
		if r.result != 0 {
			return r, nil
		}
		return r, fmt.Errorf("NAT-PMP opcode %d response of %d bytes", r.op, len(b))
	}
	if r.op == pmpOpAddr {
		r.externalIP = netip.AddrFrom4([4]byte(b[8:12]))
		return r, nil
	}
	r.internal = binary.BigEndian.Uint16(b[8:])
	r.external = binary.BigEndian.Uint16(b[10:])
	r.lifetime = binary.BigEndian.Uint32(b[12:])
	return r, nil
}

// pmpMapRequest returns a map request; lifetime 0 with suggested 0
// deletes the mapping of internal.
func pmpMapRequest(proto string, internal, suggested uint16, lifetime uint32) []byte {
	b := make([]byte, 12)
	b[1] = pmpOpMapUDP
	if proto == "tcp" {
		b[1] = pmpOpMapTCP
	}
	binary.BigEndian.PutUint16(b[4:], internal)
	binary.BigEndian.PutUint16(b[6:], suggested)
	binary.BigEndian.PutUint32(b[8:], lifetime)
	return b
}

// pmpClient maps ports with NAT-PMP.
type pmpClient struct {
	server netip.AddrPort
	local  netip.Addr
}

func (c *pmpClient) protocol() string { return "nat-pmp" }

// do sends req and returns the response to its opcode (and, for a
// mapping, its internal port).
func (c *pmpClient) do(ctx context.Context, req []byte) (pmpResponse, error) {
	var resp pmpResponse
	_, err := exchange(ctx, c.local, c.server, req, func(b []byte) bool {
		r, err := parsePMPResponse(b)
		if err != nil || r.op != req[1] {
			return false
		}
		if r.op != pmpOpAddr && r.result == 0 && r.internal != binary.BigEndian.Uint16(req[4:]) {
			return false
		}
		resp = r
		return true
	})
	if err != nil {
		return resp, fmt.Errorf("NAT-PMP: %w", err)
	}
	if resp.result != 0 {
		return resp, pmpResultError(resp.result)
	}
	return resp, nil
}

// probe asks for the external address, which changes nothing.
func (c *pmpClient) probe(ctx context.Context) error {
	_, err := c.externalIPv4(ctx)
	return err
}

func (c *pmpClient) add(ctx context.Context, mp *mapping, lifetime time.Duration) (uint16, time.Duration, error) {
	r, err := c.do(ctx, pmpMapRequest(mp.Proto, mp.Internal, mp.want(), seconds(lifetime)))
	if err != nil {
		return 0, 0, err
	}
	if r.lifetime == 0 || r.external == 0 {
		return 0, 0, fmt.Errorf("NAT-PMP: router granted port %d for %d s", r.external, r.lifetime)
	}
	return r.external, time.Duration(r.lifetime) * time.Second, nil
}

func (c *pmpClient) del(ctx context.Context, mp *mapping) error {
	_, err := c.do(ctx, pmpMapRequest(mp.Proto, mp.Internal, 0, 0))
	return err
}

func (c *pmpClient) externalIPv4(ctx context.Context) (netip.Addr, error) {
	r, err := c.do(ctx, []byte{0, pmpOpAddr})
	if err != nil {
		return netip.Addr{}, err
	}
	return r.externalIP, nil
}
