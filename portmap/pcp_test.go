package portmap

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// pcpMapAnswer is a MAP success: nonce 01…0c, TCP, internal 8443,
// external 18443, 203.0.113.7, lifetime 7200, epoch 1234.
const pcpMapAnswer = "02810000" + "00001c20" + "000004d2" + "000000000000000000000000" +
	"0102030405060708090a0b0c" + "06000000" + "20fb" + "480b" + "00000000000000000000ffff" + "cb007107"

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParsePCPResponse(t *testing.T) {
	tests := []struct {
		name    string
		hex     string
		want    pcpResponse
		wantErr string
	}{
		{
			name: "map",
			hex:  pcpMapAnswer,
			want: pcpResponse{op: 1, lifetime: 7200, epoch: 1234, nonce: [12]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12},
				proto: 6, internal: 8443, external: 18443, externalIP: netip.MustParseAddr("203.0.113.7")},
		},
		{
			name: "announce",
			hex:  "02800000" + "00000000" + "00000063" + "000000000000000000000000",
			want: pcpResponse{op: 0, epoch: 99},
		},
		{
			name: "short map error",
			hex:  "02810002" + "0000001e" + "00000063" + "000000000000000000000000",
			want: pcpResponse{op: 1, result: 2, lifetime: 30, epoch: 99},
		},
		{name: "short map success", hex: "02810000" + "0000001e" + "00000063" + "000000000000000000000000", wantErr: "PCP MAP response of 24 bytes"},
		{name: "NAT-PMP answer", hex: "0081000100000009", wantErr: errPCPVersion0.Error()},
		{name: "too short", hex: "028100000000", wantErr: "PCP response of 6 bytes"},
		{name: "not a multiple of 4", hex: pcpMapAnswer + "00", wantErr: "PCP response of 61 bytes"},
		{name: "too long", hex: pcpMapAnswer + strings.Repeat("00", 1100), wantErr: "PCP response of 1160 bytes"},
		{name: "version 3", hex: "03810000" + pcpMapAnswer[8:], wantErr: "PCP response version 3"},
		{name: "request", hex: "02010000" + pcpMapAnswer[8:], wantErr: "PCP request, not a response"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parsePCPResponse(unhex(t, tt.hex))
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

func TestPCPMapRequest(t *testing.T) {
	got := pcpMapRequest(netip.MustParseAddr("192.168.1.10"), [12]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, 17, 3478, 13478, 3600)
	want := "02010000" + "00000e10" + "00000000000000000000ffffc0a8010a" +
		"0102030405060708090a0b0c" + "11000000" + "0d96" + "34a6" + "00000000000000000000ffff00000000"
	if !bytes.Equal(got, unhex(t, want)) {
		t.Errorf("MAP request\n got %x\nwant %s", got, want)
	}
}

func FuzzParsePCPResponse(f *testing.F) {
	f.Add(unhex(f, pcpMapAnswer))
	f.Add(unhex(f, "0081000100000009"))
	f.Add(unhex(f, "02800000"+"00000000"+"00000063"+"000000000000000000000000"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parsePCPResponse(b)
		if err != nil {
			return
		}
		if len(b) < pcpHeaderLen || len(b) > pcpMaxLen || b[0] != pcpVersion || b[1]&pcpResponseBit == 0 {
			t.Fatalf("accepted %x", b)
		}
		if r.op == pcpOpMap && r.result == 0 && r.externalIP.Is6() && !r.externalIP.Is4In6() && len(b) < pcpMapLen {
			t.Fatalf("MAP success without MAP fields accepted: %x", b)
		}
	})
}

func TestPCPClient(t *testing.T) {
	fr, port := newFakeRouter(t, true, false, 10000)
	lo := netip.MustParseAddr("127.0.0.1")
	c := &pcpClient{server: netip.AddrPortFrom(lo, port), local: lo}
	ctx := context.Background()
	if err := c.probe(ctx); err != nil {
		t.Fatalf("probe: %v", err)
	}
	mp := &mapping{Port: Port{Proto: "tcp", Internal: 8443}, nonce: [12]byte{7}}
	ext, lease, err := c.add(ctx, mp, time.Hour)
	if err != nil {
		t.Fatalf("add: %v", err)
	}
	if ext != 18443 || lease != time.Hour {
		t.Errorf("add = port %d for %v, want 18443 for 1h", ext, lease)
	}
	if ip, err := c.externalIPv4(ctx); err != nil || ip != netip.MustParseAddr("203.0.113.7") {
		t.Errorf("externalIPv4 = %v, %v; want 203.0.113.7", ip, err)
	}
	mp.ext = ext
	if err := c.del(ctx, mp); err != nil {
		t.Fatalf("del: %v", err)
	}
	maps, log := fr.state()
	if len(maps) != 0 {
		t.Errorf("router still has %v after del", maps)
	}
	want := []string{"pcp announce", "pcp map tcp 8443 suggested=8443 lifetime=3600", "pcp map tcp 8443 suggested=0 lifetime=0"}
	if strings.Join(log, "\n") != strings.Join(want, "\n") {
		t.Errorf("router saw\n%s\nwant\n%s", strings.Join(log, "\n"), strings.Join(want, "\n"))
	}

	fr.setResult(2)
	var rerr pcpResultError
	if _, _, err := c.add(ctx, mp, time.Hour); !errors.As(err, &rerr) || rerr != 2 || !strings.Contains(err.Error(), "NOT_AUTHORIZED") {
		t.Errorf("add refused: err = %v, want PCP result 2 (NOT_AUTHORIZED)", err)
	}
}

func TestPCPClientNATPMPOnly(t *testing.T) {
	_, port := newFakeRouter(t, false, true, 0)
	lo := netip.MustParseAddr("127.0.0.1")
	c := &pcpClient{server: netip.AddrPortFrom(lo, port), local: lo}
	if err := c.probe(context.Background()); !errors.Is(err, errPCPVersion0) {
		t.Errorf("probe of a NAT-PMP-only router: err = %v, want %v", err, errPCPVersion0)
	}
}

func TestPCPClientNoServer(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	c := &pcpClient{server: netip.AddrPortFrom(lo, closedPort(t)), local: lo}
	start := time.Now()
	err := c.probe(context.Background())
	if !errors.Is(err, errNoAnswer) {
		t.Errorf("probe with nothing listening: err = %v, want %v", err, errNoAnswer)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("probe took %v; port unreachable should end it at once", d)
	}
}
