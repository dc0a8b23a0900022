package portmap

import (
	"bytes"
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestParsePMPResponse(t *testing.T) {
	tests := []struct {
		name    string
		hex     string
		want    pmpResponse
		wantErr string
	}{
		{name: "address", hex: "008000000000000acb007107", want: pmpResponse{op: 0, epoch: 10, externalIP: netip.MustParseAddr("203.0.113.7")}},
		{name: "map tcp", hex: "00820000" + "0000000a" + "20fb" + "480b" + "00001c20",
			want: pmpResponse{op: 2, epoch: 10, internal: 8443, external: 18443, lifetime: 7200}},
		{name: "map udp", hex: "00810000" + "0000000a" + "0d96" + "0d96" + "00000e10",
			want: pmpResponse{op: 1, epoch: 10, internal: 3478, external: 3478, lifetime: 3600}},
		{name: "unsupported version, short", hex: "0081000100000009", want: pmpResponse{op: 1, result: 1, epoch: 9}},
		{name: "refused, no epoch", hex: "00820002", want: pmpResponse{op: 2, result: 2}},
		{name: "short address", hex: "0080000000000009cb00", wantErr: "NAT-PMP opcode 0 response of 10 bytes"},
		{name: "short map", hex: "00820000000000090000", wantErr: "NAT-PMP opcode 2 response of 10 bytes"},
		{name: "too short", hex: "0080", wantErr: "NAT-PMP response of 2 bytes"},
		{name: "PCP answer", hex: "02810001" + strings.Repeat("00", 20), wantErr: "NAT-PMP response version 2"},
		{name: "request", hex: "0002000020fb20fb00000e10", wantErr: "NAT-PMP request, not a response"},
		{name: "unknown opcode", hex: "00830000000000090000000000000000", wantErr: "NAT-PMP response to opcode 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parsePMPResponse(unhex(t, tt.hex))
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestPMPMapRequest(t *testing.T) {
	tests := []struct {
		proto               string
		internal, suggested uint16
		lifetime            uint32
		want                string
	}{
		{"tcp", 8443, 18443, 3600, "0002000020fb480b00000e10"},
		{"udp", 3478, 0, 0, "000100000d96000000000000"},
	}
	for _, tt := range tests {
		if got := pmpMapRequest(tt.proto, tt.internal, tt.suggested, tt.lifetime); !bytes.Equal(got, unhex(t, tt.want)) {
			t.Errorf("pmpMapRequest(%s, %d, %d, %d) = %x, want %s", tt.proto, tt.internal, tt.suggested, tt.lifetime, got, tt.want)
		}
	}
}

func FuzzParsePMPResponse(f *testing.F) {
	f.Add(unhex(f, "008000000000000acb007107"))
	f.Add(unhex(f, "00820000"+"0000000a"+"20fb"+"480b"+"00001c20"))
	f.Add(unhex(f, "0081000100000009"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parsePMPResponse(b)
		if err != nil {
			return
		}
		if len(b) < 4 || b[0] != 0 || b[1] < pmpResponseBase || r.op > pmpOpMapTCP {
			t.Fatalf("accepted %x as %+v", b, r)
		}
		if r.result == 0 && ((r.op == pmpOpAddr && len(b) < 12) || (r.op != pmpOpAddr && len(b) < 16)) {
			t.Fatalf("short success accepted: %x", b)
		}
	})
}

func TestPMPClient(t *testing.T) {
	fr, port := newFakeRouter(t, false, true, 1)
	lo := netip.MustParseAddr("127.0.0.1")
	c := &pmpClient{server: netip.AddrPortFrom(lo, port), local: lo}
	ctx := context.Background()
	if err := c.probe(ctx); err != nil {
		t.Fatalf("probe: %v", err)
	}
	if ip, err := c.externalIPv4(ctx); err != nil || ip != netip.MustParseAddr("203.0.113.7") {
		t.Errorf("externalIPv4 = %v, %v; want 203.0.113.7", ip, err)
	}
	mp := &mapping{Port: Port{Proto: "udp", Internal: 3478, External: 3479}}
	ext, lease, err := c.add(ctx, mp, 2*time.Hour)
	if err != nil {
		t.Fatalf("add: %v", err)
	}
	if ext != 3480 || lease != 2*time.Hour {
		t.Errorf("add = port %d for %v, want 3480 for 2h", ext, lease)
	}
	if maps, _ := fr.state(); len(maps) != 1 || maps[0] != "udp 3478->3480" {
		t.Errorf("router has %v, want [udp 3478->3480]", maps)
	}
	mp.ext = ext
	if err := c.del(ctx, mp); err != nil {
		t.Fatalf("del: %v", err)
	}
	if maps, _ := fr.state(); len(maps) != 0 {
		t.Errorf("router still has %v after del", maps)
	}
	fr.setResult(4)
	if _, _, err := c.add(ctx, mp, time.Hour); err == nil || err.Error() != "NAT-PMP result 4 (out of resources)" {
		t.Errorf("add refused: err = %v, want NAT-PMP result 4 (out of resources)", err)
	}
}
