package portmap

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// PCP (RFC 6887): only what a client behind one router needs, ANNOUNCE to
// probe and MAP to add, renew and delete.

const (
	pcpVersion     = 2
	pcpOpAnnounce  = 0
	pcpOpMap       = 1
	pcpResponseBit = 0x80
	pcpHeaderLen   = 24
	pcpMapLen      = pcpHeaderLen + 36
	pcpMaxLen      = 1100
)

// pcpResults are the result codes of RFC 6887 section 7.4.
var pcpResults = [...]string{
	0: "SUCCESS", 1: "UNSUPP_VERSION", 2: "NOT_AUTHORIZED", 3: "MALFORMED_REQUEST",
	4: "UNSUPP_OPCODE", 5: "UNSUPP_OPTION", 6: "MALFORMED_OPTION", 7: "NETWORK_FAILURE",
	8: "NO_RESOURCES", 9: "UNSUPP_PROTOCOL", 10: "USER_EX_QUOTA", 11: "CANNOT_PROVIDE_EXTERNAL",
	12: "ADDRESS_MISMATCH", 13: "EXCESSIVE_REMOTE_PEERS",
}

// pcpResultError is a PCP response's non-zero result code.
type pcpResultError uint8

func (e pcpResultError) Error() string {
	if int(e) < len(pcpResults) {
		return fmt.Sprintf("PCP result %d (%s)", uint8(e), pcpResults[e])
	}
	return fmt.Sprintf("PCP result %d", uint8(e))
}

// errPCPVersion0 says a PCP request was answered in NAT-PMP's format: the
// router speaks NAT-PMP only (RFC 6887 section 9).
var errPCPVersion0 = errors.New("router answered PCP with NAT-PMP's version 0")

// pcpResponse is a parsed PCP response. The MAP fields are set only for
// MAP responses.
type pcpResponse struct {
	op       uint8 // without the response bit
	result   uint8
	lifetime uint32 // seconds
	epoch    uint32

	nonce      [12]byte
	proto      uint8
	internal   uint16
	external   uint16
	externalIP netip.Addr // unmapped: an IPv4 address for IPv4 mappings
}

// parsePCPResponse parses a datagram from the router's PCP port. It fails
// on anything that is not a well-formed PCP response (RFC 6887 section
// 8.3), and with errPCPVersion0 on a NAT-PMP answer.
func parsePCPResponse(b []byte) (pcpResponse, error) {
	var r pcpResponse
	if len(b) >= 2 && b[0] == 0 && b[1]&pcpResponseBit != 0 {
		return r, errPCPVersion0
	}
	if len(b) < pcpHeaderLen || len(b) > pcpMaxLen || len(b)%4 != 0 {
		return r, fmt.Errorf("PCP response of %d bytes", len(b))
	}
	if b[0] != pcpVersion {
		return r, fmt.Errorf("PCP response version %d", b[0])
	}
	if b[1]&pcpResponseBit == 0 {
		return r, errors.New("PCP request, not a response")
	}
	r.op = b[1] &^ pcpResponseBit
	r.result = b[3]
	r.lifetime = binary.BigEndian.Uint32(b[4:])
	r.epoch = binary.BigEndian.Uint32(b[8:])
	if r.op != pcpOpMap {
		return r, nil
	}
	if len(b) < pcpMapLen {
		if r.result != 0 {
			return r, nil // an error need not echo the MAP fields
		}
		return r, fmt.Errorf("PCP MAP response of %d bytes", len(b))
	}
	m := b[pcpHeaderLen:]
	copy(r.nonce[:], m[0:12])
	r.proto = m[12]
	r.internal = binary.BigEndian.Uint16(m[16:])
	r.external = binary.BigEndian.Uint16(m[18:])
	r.externalIP = netip.AddrFrom16([16]byte(m[20:36])).Unmap()
	return r, nil
}

// pcpRequest returns a PCP request header for op from client, asking for
// lifetime seconds.
func pcpRequest(op uint8, client netip.Addr, lifetime uint32, size int) []byte {
	b := make([]byte, size)
	b[0] = pcpVersion
	b[1] = op
	binary.BigEndian.PutUint32(b[4:], lifetime)
	c := client.As16() // IPv4-mapped for IPv4, as the RFC wants
	copy(b[8:24], c[:])
	return b
}

// pcpMapRequest returns a MAP request. A zero lifetime deletes the mapping
// with this nonce.
func pcpMapRequest(client netip.Addr, nonce [12]byte, proto uint8, internal, suggested uint16, lifetime uint32) []byte {
	b := pcpRequest(pcpOpMap, client, lifetime, pcpMapLen)
	m := b[pcpHeaderLen:]
	copy(m[0:12], nonce[:])
	m[12] = proto
	binary.BigEndian.PutUint16(m[16:], internal)
	binary.BigEndian.PutUint16(m[18:], suggested)
	any4 := netip.IPv4Unspecified().As16() // ::ffff:0.0.0.0, "an IPv4 address, any"
	copy(m[20:36], any4[:])
	return b
}

// ipProto returns the IANA protocol number of "tcp" or "udp".
func ipProto(proto string) uint8 {
	if proto == "tcp" {
		return 6
	}
	return 17
}

// pcpClient maps ports with PCP.
type pcpClient struct {
	server     netip.AddrPort
	local      netip.Addr
	externalIP netip.Addr // from the last MAP response
}

func (c *pcpClient) protocol() string { return "pcp" }

// do sends req and returns the response that answers it: same opcode and,
// for MAP, the same nonce.
func (c *pcpClient) do(ctx context.Context, req []byte) (pcpResponse, error) {
	var resp pcpResponse
	var perr error
	_, err := exchange(ctx, c.local, c.server, req, func(b []byte) bool {
		r, err := parsePCPResponse(b)
		if errors.Is(err, errPCPVersion0) {
			perr = err
			return true
		}
		if err != nil || r.op != req[1] {
			return false
		}
		if r.op == pcpOpMap && len(b) >= pcpMapLen && [12]byte(req[pcpHeaderLen:]) != r.nonce {
			return false
		}
		resp = r
		return true
	})
	if err != nil {
		return resp, fmt.Errorf("PCP: %w", err)
	}
	if perr != nil {
		return resp, perr
	}
	if resp.result != 0 {
		return resp, pcpResultError(resp.result)
	}
	return resp, nil
}

// probe sends ANNOUNCE, which changes nothing and which every PCP server
// answers.
func (c *pcpClient) probe(ctx context.Context) error {
	_, err := c.do(ctx, pcpRequest(pcpOpAnnounce, c.local, 0, pcpHeaderLen))
	return err
}

func (c *pcpClient) add(ctx context.Context, mp *mapping, lifetime time.Duration) (uint16, time.Duration, error) {
	req := pcpMapRequest(c.local, mp.nonce, ipProto(mp.Proto), mp.Internal, mp.want(), seconds(lifetime))
	r, err := c.do(ctx, req)
	if err != nil {
		return 0, 0, err
	}
	if r.lifetime == 0 || r.external == 0 {
		return 0, 0, fmt.Errorf("PCP: router granted port %d for %d s", r.external, r.lifetime)
	}
	if r.externalIP.Is4() && !r.externalIP.IsUnspecified() {
		c.externalIP = r.externalIP
	}
	return r.external, time.Duration(r.lifetime) * time.Second, nil
}

func (c *pcpClient) del(ctx context.Context, mp *mapping) error {
	_, err := c.do(ctx, pcpMapRequest(c.local, mp.nonce, ipProto(mp.Proto), mp.Internal, 0, 0))
	return err
}

func (c *pcpClient) externalIPv4(context.Context) (netip.Addr, error) {
	if !c.externalIP.IsValid() {
		return netip.Addr{}, errors.New("PCP: no external address in the router's answers yet")
	}
	return c.externalIP, nil
}

// seconds converts a lifetime for the wire.
func seconds(d time.Duration) uint32 {
	return uint32(min(d/time.Second, 1<<32-1))
}
