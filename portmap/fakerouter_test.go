package portmap

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
)

// fakeRouter is a PCP and NAT-PMP server on loopback. It writes its
// answers byte by byte from the RFCs' tables rather than with the
// package's own encoders, so that a wrong offset cannot hide in both.
type fakeRouter struct {
	pcp, pmp bool
	extIP    [4]byte
	// shift is added to every suggested external port, as a router does
	// when the asked-for one is taken.
	shift uint16
	conn  *net.UDPConn

	mu sync.Mutex
	// result, when non-zero, is the result code of every MAP answer.
	result uint8
	// mappings are "tcp 8443->18443" (internal->external), made and not
	// yet deleted.
	mappings []string
	log      []string // "pcp map tcp 8443 lifetime=3600", "pmp addr", …
}

// newFakeRouter starts a fake router on 127.0.0.1 that speaks PCP and/or
// NAT-PMP and adds shift to asked-for ports; it returns the router and its
// port.
func newFakeRouter(t *testing.T, pcp, pmp bool, shift uint16) (*fakeRouter, uint16) {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeRouter{pcp: pcp, pmp: pmp, shift: shift, extIP: [4]byte{203, 0, 113, 7}, conn: c}
	t.Cleanup(func() { c.Close() })
	go f.serve()
	return f, uint16(c.LocalAddr().(*net.UDPAddr).Port)
}

func (f *fakeRouter) serve() {
	buf := make([]byte, 1500)
	for {
		n, from, err := f.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		var resp []byte
		switch b := buf[:n]; {
		case n >= 2 && b[0] == 2 && f.pcp:
			resp = f.answerPCP(b, from.Addr())
		case n >= 2 && b[0] == 2:
			resp = []byte{0, 128 + b[1], 0, 1, 0, 0, 0, 9} // NAT-PMP only: unsupported version
		case n >= 2 && b[0] == 0 && f.pmp:
			resp = f.answerPMP(b)
		case n >= 2 && b[0] == 0:
			resp = make([]byte, 24) // PCP only: UNSUPP_VERSION
			resp[0], resp[1], resp[3] = 2, 0x80|b[1], 1
		}
		if resp != nil {
			f.conn.WriteToUDPAddrPort(resp, from)
		}
	}
}

// setResult makes every later MAP answer carry result code r.
func (f *fakeRouter) setResult(r uint8) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.result = r
}

func (f *fakeRouter) getResult() uint8 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.result
}

func (f *fakeRouter) record(s string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log = append(f.log, s)
}

// setMapping adds (add) or removes the mapping of proto/internal.
func (f *fakeRouter) setMapping(proto string, internal, external uint16, add bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	prefix := fmt.Sprintf("%s %d->", proto, internal)
	f.mappings = slices.DeleteFunc(f.mappings, func(s string) bool { return len(s) > len(prefix) && s[:len(prefix)] == prefix })
	if add {
		f.mappings = append(f.mappings, fmt.Sprintf("%s%d", prefix, external))
	}
}

func (f *fakeRouter) state() (mappings, log []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.mappings), slices.Clone(f.log)
}

func protoName(n uint8) string {
	if n == 6 {
		return "tcp"
	}
	return "udp"
}

// answerPCP answers ANNOUNCE and MAP (RFC 6887 sections 7.1, 7.2, 11.1).
func (f *fakeRouter) answerPCP(b []byte, from netip.Addr) []byte {
	op := b[1]
	if len(b) < 24 || netip.AddrFrom16([16]byte(b[8:24])).Unmap() != from {
		return nil
	}
	lifetime := binary.BigEndian.Uint32(b[4:8])
	resp := make([]byte, 24)
	if op == 1 {
		if len(b) < 60 {
			return nil
		}
		resp = make([]byte, 60)
		copy(resp[24:], b[24:60]) // nonce, protocol, internal port
		proto, internal, suggested := b[36], binary.BigEndian.Uint16(b[40:42]), binary.BigEndian.Uint16(b[42:44])
		f.record(fmt.Sprintf("pcp map %s %d suggested=%d lifetime=%d", protoName(proto), internal, suggested, lifetime))
		if r := f.getResult(); r != 0 {
			resp[3] = r
		} else if lifetime == 0 {
			f.setMapping(protoName(proto), internal, 0, false)
			binary.BigEndian.PutUint16(resp[42:44], 0)
		} else {
			ext := suggested + f.shift
			f.setMapping(protoName(proto), internal, ext, true)
			binary.BigEndian.PutUint16(resp[42:44], ext)
			resp[54], resp[55] = 0xff, 0xff
			copy(resp[56:60], f.extIP[:])
		}
	} else {
		f.record("pcp announce")
	}
	resp[0], resp[1] = 2, 0x80|op
	binary.BigEndian.PutUint32(resp[4:8], lifetime)
	binary.BigEndian.PutUint32(resp[8:12], 1234) // epoch
	return resp
}

// answerPMP answers opcodes 0, 1 and 2 (RFC 6886 sections 3.2, 3.3).
func (f *fakeRouter) answerPMP(b []byte) []byte {
	op := b[1]
	switch {
	case op == 0:
		f.record("pmp addr")
		return []byte{0, 128, 0, 0, 0, 0, 0, 9, f.extIP[0], f.extIP[1], f.extIP[2], f.extIP[3]}
	case (op == 1 || op == 2) && len(b) >= 12:
		proto := map[byte]string{1: "udp", 2: "tcp"}[op]
		internal, suggested, lifetime := binary.BigEndian.Uint16(b[4:6]), binary.BigEndian.Uint16(b[6:8]), binary.BigEndian.Uint32(b[8:12])
		f.record(fmt.Sprintf("pmp map %s %d suggested=%d lifetime=%d", proto, internal, suggested, lifetime))
		resp := make([]byte, 16)
		resp[1] = 128 + op
		binary.BigEndian.PutUint32(resp[4:8], 9)
		binary.BigEndian.PutUint16(resp[8:10], internal)
		if r := f.getResult(); r != 0 {
			resp[3] = r
			return resp
		}
		if lifetime == 0 {
			f.setMapping(proto, internal, 0, false)
			return resp
		}
		ext := suggested + f.shift
		f.setMapping(proto, internal, ext, true)
		binary.BigEndian.PutUint16(resp[10:12], ext)
		binary.BigEndian.PutUint32(resp[12:16], lifetime)
		return resp
	}
	return []byte{0, 128 + op, 0, 5, 0, 0, 0, 9} // unsupported opcode
}

// closedPort returns a UDP port on 127.0.0.1 where nothing listens: the
// kernel answers "port unreachable" at once.
func closedPort(t *testing.T) uint16 {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	port := uint16(c.LocalAddr().(*net.UDPAddr).Port)
	c.Close()
	return port
}
