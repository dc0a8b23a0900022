package portmap

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

var loopback = netip.MustParseAddr("127.0.0.1")

func TestConfigCheck(t *testing.T) {
	tcp := Port{Proto: "tcp", Internal: 8443}
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{name: "ok", cfg: Config{Ports: []Port{tcp, {Proto: "udp", Internal: 8443}}}},
		{name: "no ports", cfg: Config{}, wantErr: "portmap: no ports to map"},
		{name: "bad protocol", cfg: Config{Ports: []Port{{Proto: "sctp", Internal: 1}}}, wantErr: `portmap: port 1: protocol "sctp", want tcp or udp`},
		{name: "port 0", cfg: Config{Ports: []Port{{Proto: "udp"}}}, wantErr: "portmap: udp port 0"},
		{name: "same internal twice", cfg: Config{Ports: []Port{tcp, {Proto: "tcp", Internal: 8443, External: 443}}}, wantErr: "portmap: tcp internal 8443 port listed twice"},
		{name: "same external twice", cfg: Config{Ports: []Port{tcp, {Proto: "tcp", Internal: 9443, External: 8443}}}, wantErr: "portmap: tcp external 8443 port listed twice"},
		{name: "IPv6 gateway", cfg: Config{Ports: []Port{tcp}, Gateway: netip.MustParseAddr("fe80::1")}, wantErr: "portmap: gateway fe80::1 is not an IPv4 address"},
		{name: "negative lifetime", cfg: Config{Ports: []Port{tcp}, Lifetime: -time.Second}, wantErr: "portmap: negative lifetime -1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.check()
			if got := fmt.Sprint(err); (tt.wantErr == "" && err != nil) || (tt.wantErr != "" && got != tt.wantErr) {
				t.Errorf("check() = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// testKnobs are fast timings, with UPnP off unless location is set and
// PCP and NAT-PMP at port.
func testKnobs(port uint16, location string) knobs {
	return knobs{pxpPort: port, upnpLocation: location, noUPnP: location == "",
		firstRetry: 20 * time.Millisecond, maxRetry: 100 * time.Millisecond, idleRetry: 20 * time.Millisecond}
}

// logBuffer collects a Mapper's log.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// waitStatus polls m's Status until cond holds.
func waitStatus(t *testing.T, m *Mapper, what string, cond func(Status) bool) Status {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := m.Status()
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s; status: %+v", what, st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func allMapped(st Status) bool {
	return len(st.Mappings) > 0 && !slices.ContainsFunc(st.Mappings, func(m MappingStatus) bool { return m.External == 0 })
}

// ipRecorder records OnExternalIP calls.
type ipRecorder struct {
	mu  sync.Mutex
	ips []netip.Addr
}

func (r *ipRecorder) record(ip netip.Addr) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ips = append(r.ips, ip)
}

func (r *ipRecorder) get() []netip.Addr {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.ips)
}

var testPorts = []Port{{Proto: "tcp", Internal: 8443, External: 18443}, {Proto: "udp", Internal: 3478}}

func TestMapperUPnP(t *testing.T) {
	tests := []struct {
		name          string
		permanentOnly bool
		wantCalls     []string
	}{
		{
			name: "leases",
			wantCalls: []string{
				"AddPortMapping TCP 18443->127.0.0.1:8443 lease=3600",
				"AddPortMapping UDP 3478->127.0.0.1:3478 lease=3600",
				"DeletePortMapping TCP 18443",
				"DeletePortMapping UDP 3478",
			},
		},
		{
			name:          "only permanent leases (error 725)",
			permanentOnly: true,
			wantCalls: []string{
				"AddPortMapping TCP 18443->127.0.0.1:8443 lease=3600",
				"AddPortMapping TCP 18443->127.0.0.1:8443 lease=0",
				"AddPortMapping UDP 3478->127.0.0.1:3478 lease=0",
				"DeletePortMapping TCP 18443",
				"DeletePortMapping UDP 3478",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			igd, loc := startFakeIGD(t, tt.permanentOnly)
			var ips ipRecorder
			m, err := start(context.Background(), Config{Ports: testPorts, Gateway: loopback, OnExternalIP: ips.record}, testKnobs(closedPort(t), loc))
			if err != nil {
				t.Fatal(err)
			}
			st := waitStatus(t, m, "both ports mapped", func(st Status) bool { return allMapped(st) && st.ExternalIPv4.IsValid() })
			if st.Protocol != "upnp-igd" || st.Router != "127.0.0.1" || st.ExternalIPv4 != netip.MustParseAddr("203.0.113.9") || st.LastError != "" {
				t.Errorf("status = %+v; want upnp-igd via 127.0.0.1, external 203.0.113.9, no error", st)
			}
			for _, ms := range st.Mappings {
				if permanent := ms.Expires.IsZero(); permanent != tt.permanentOnly {
					t.Errorf("mapping %+v: permanent = %v, want %v", ms, permanent, tt.permanentOnly)
				}
			}
			if got := []uint16{st.Mappings[0].External, st.Mappings[1].External}; !slices.Equal(got, []uint16{18443, 3478}) {
				t.Errorf("external ports = %v, want [18443 3478]", got)
			}
			if err := m.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			calls, maps := igd.state()
			if len(maps) != 0 {
				t.Errorf("router still has %v after Close", maps)
			}
			if !slices.Equal(calls, tt.wantCalls) {
				t.Errorf("router saw\n%s\nwant\n%s", strings.Join(calls, "\n"), strings.Join(tt.wantCalls, "\n"))
			}
			if got := ips.get(); !slices.Equal(got, []netip.Addr{netip.MustParseAddr("203.0.113.9")}) {
				t.Errorf("OnExternalIP calls = %v, want [203.0.113.9]", got)
			}
			if st := m.Status(); slices.ContainsFunc(st.Mappings, func(ms MappingStatus) bool { return ms.External != 0 }) || !st.NextTry.IsZero() {
				t.Errorf("status after Close = %+v, want nothing mapped and no next try", st)
			}
		})
	}
}

func TestMapperPCPAndNATPMP(t *testing.T) {
	tests := []struct {
		name     string
		pcp, pmp bool
		wantProt string
	}{
		{name: "PCP first", pcp: true, pmp: true, wantProt: "pcp"},
		{name: "NAT-PMP only", pmp: true, wantProt: "nat-pmp"},
		{name: "PCP only", pcp: true, wantProt: "pcp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The router gives other ports than asked.
			fr, port := newFakeRouter(t, tt.pcp, tt.pmp, 1000)
			var logs logBuffer
			m, err := start(context.Background(), Config{Ports: testPorts, Gateway: loopback, Logger: logs.logger()}, testKnobs(port, ""))
			if err != nil {
				t.Fatal(err)
			}
			st := waitStatus(t, m, "both ports mapped", func(st Status) bool { return allMapped(st) && st.ExternalIPv4.IsValid() })
			if st.Protocol != tt.wantProt || st.ExternalIPv4 != netip.MustParseAddr("203.0.113.7") {
				t.Errorf("status = %+v; want %s, external 203.0.113.7", st, tt.wantProt)
			}
			if got := []uint16{st.Mappings[0].External, st.Mappings[1].External}; !slices.Equal(got, []uint16{19443, 4478}) {
				t.Errorf("external ports = %v, want the router's [19443 4478]", got)
			}
			if !strings.Contains(logs.String(), "the router gave another external port than asked") {
				t.Errorf("log does not say the router gave another port:\n%s", logs.String())
			}
			if maps, _ := fr.state(); len(maps) != 2 {
				t.Errorf("router has %v, want 2 mappings", maps)
			}
			if err := m.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			if maps, _ := fr.state(); len(maps) != 0 {
				t.Errorf("router still has %v after Close", maps)
			}
		})
	}
}

func TestMapperRenews(t *testing.T) {
	fr, port := newFakeRouter(t, true, false, 0)
	k := testKnobs(port, "")
	k.minRenew = 0
	m, err := start(context.Background(), Config{Ports: testPorts[:1], Gateway: loopback, Lifetime: 2 * time.Second}, k)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	first := waitStatus(t, m, "the port mapped", allMapped)
	if d := time.Until(first.NextTry); d > time.Second+100*time.Millisecond {
		t.Errorf("next try in %v, want at half the 2s lease", d)
	}
	waitStatus(t, m, "a renewal", func(st Status) bool { return st.Mappings[0].Expires.After(first.Mappings[0].Expires) })
	_, log := fr.state()
	if n := strings.Count(strings.Join(log, "\n"), "pcp map tcp 8443 suggested=18443 lifetime=2"); n < 2 {
		t.Errorf("router saw %d requests to map tcp 8443 for 2s, want >= 2:\n%s", n, strings.Join(log, "\n"))
	}
}

func TestMapperRetriesRefusal(t *testing.T) {
	fr, port := newFakeRouter(t, true, false, 0)
	fr.setResult(8) // NO_RESOURCES
	var logs logBuffer
	m, err := start(context.Background(), Config{Ports: testPorts[:1], Gateway: loopback, Logger: logs.logger()}, testKnobs(port, ""))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	st := waitStatus(t, m, "the refusal", func(st Status) bool { return st.LastError != "" })
	if st.LastError != "PCP result 8 (NO_RESOURCES)" || st.Mappings[0].Err != st.LastError {
		t.Errorf("status = %+v, want PCP result 8 (NO_RESOURCES) as last and mapping error", st)
	}
	time.Sleep(300 * time.Millisecond) // several retries
	fr.setResult(0)
	waitStatus(t, m, "the port mapped after the refusals", func(st Status) bool { return allMapped(st) && st.LastError == "" })
	if n := strings.Count(logs.String(), "level=WARN"); n != 1 {
		t.Errorf("%d warnings for one repeated refusal, want 1:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "every port is mapped again") {
		t.Errorf("log does not say the ports are mapped again:\n%s", logs.String())
	}
}

func TestMapperNoProtocol(t *testing.T) {
	var logs logBuffer
	m, err := start(context.Background(), Config{Ports: testPorts, Gateway: loopback, Logger: logs.logger()}, testKnobs(closedPort(t), ""))
	if err != nil {
		t.Fatal(err)
	}
	st := waitStatus(t, m, "the error", func(st Status) bool { return st.LastError != "" })
	const want = "no UPnP IGD, PCP or NAT-PMP answer from 127.0.0.1"
	if st.LastError != want || st.Protocol != "" || st.NextTry.IsZero() {
		t.Errorf("status = %+v, want last error %q, no protocol, a next try", st, want)
	}
	time.Sleep(200 * time.Millisecond) // about ten more tries
	warns := strings.Count(logs.String(), "level=WARN")
	if warns != 1 || !strings.Contains(logs.String(), want) {
		t.Errorf("%d warnings, want exactly one saying %q:\n%s", warns, want, logs.String())
	}
	if n := strings.Count(logs.String(), "still failing"); n < 3 {
		t.Errorf("%d quiet retries logged at debug level, want several:\n%s", n, logs.String())
	}
	if err := m.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func TestMapperStopsWithContext(t *testing.T) {
	fr, port := newFakeRouter(t, true, false, 0)
	ctx, cancel := context.WithCancel(context.Background())
	m, err := start(ctx, Config{Ports: testPorts, Gateway: loopback}, testKnobs(port, ""))
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, m, "both ports mapped", allMapped)
	cancel()
	select {
	case <-m.done:
	case <-time.After(10 * time.Second):
		t.Fatal("Mapper still running 10s after its context ended")
	}
	if maps, _ := fr.state(); len(maps) != 0 {
		t.Errorf("router still has %v after the context ended", maps)
	}
	if err := m.Close(); err != nil {
		t.Errorf("Close after the context ended: %v", err)
	}
}
