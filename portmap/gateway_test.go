package portmap

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestParseRoutes(t *testing.T) {
	const header = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
	// Gateways as a little-endian machine prints them: 0101A8C0 is
	// 192.168.1.1.
	tests := []struct {
		name    string
		routes  string
		want    string
		wantErr error
	}{
		{
			name:   "one default route",
			routes: "eth0\t00000000\t0101A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\neth0\t0001A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n",
			want:   "192.168.1.1",
		},
		{
			name: "lowest metric wins",
			routes: "wlan0\t00000000\t0100A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n" +
				"eth0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n",
			want: "192.168.1.1",
		},
		{
			name:    "default route without a gateway (point-to-point)",
			routes:  "ppp0\t00000000\t00000000\t0001\t0\t0\t0\t00000000\t0\t0\t0\n",
			wantErr: errNoDefaultRoute,
		},
		{
			name:    "route down",
			routes:  "eth0\t00000000\t0101A8C0\t0002\t0\t0\t0\t00000000\t0\t0\t0\n",
			wantErr: errNoDefaultRoute,
		},
		{
			name:    "not a default route",
			routes:  "eth0\t0000000A\t0101A8C0\t0003\t0\t0\t0\t000000FF\t0\t0\t0\n",
			wantErr: errNoDefaultRoute,
		},
		{name: "empty", routes: "", wantErr: errNoDefaultRoute},
		{name: "garbage", routes: "eth0\t00000000\tzz\t0003\t0\t0\t0\t00000000\n", wantErr: errNoDefaultRoute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseRoutes(strings.NewReader(header + tt.routes))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if nativeLittle() && got != netip.MustParseAddr(tt.want) {
				t.Errorf("gateway = %v, want %s", got, tt.want)
			}
		})
	}
}

// nativeLittle reports whether this machine prints /proc/net/route the
// way the table above is written.
func nativeLittle() bool {
	a, _ := procRouteAddr("0100007F")
	return a == netip.MustParseAddr("127.0.0.1")
}
