package main

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"homenet/control"
)

// TestMissingNodes: row 6 counts an acknowledged node whose key is not
// listed as missing, and a hostname listed twice as a duplicate.
func TestMissingNodes(t *testing.T) {
	f := &fleet{}
	nodes := []*simNode{f.newNode(0), f.newNode(1), f.newNode(2)}
	info := func(sn *simNode) control.NodeInfo {
		return control.NodeInfo{NodeKey: sn.nodeKey.Public().String(), Hostname: sn.hostinfo.Hostname}
	}
	tests := []struct {
		name          string
		listed        []control.NodeInfo
		wantMissing   int
		wantDuplicate int
	}{
		{"all there", []control.NodeInfo{info(nodes[0]), info(nodes[1]), info(nodes[2])}, 0, 0},
		{"one lost", []control.NodeInfo{info(nodes[0]), info(nodes[2])}, 1, 0},
		{"none listed", nil, 3, 0},
		{"one twice", []control.NodeInfo{info(nodes[0]), info(nodes[1]), info(nodes[2]), {NodeKey: "nodekey:other", Hostname: nodes[1].hostinfo.Hostname}}, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, d := missingNodes(nodes, tt.listed)
			if m != tt.wantMissing || d != tt.wantDuplicate {
				t.Errorf("missingNodes = %d missing, %d duplicates; want %d, %d", m, d, tt.wantMissing, tt.wantDuplicate)
			}
		})
	}
}

// TestParsePing: row 8 reads iputils ping's replies and summary.
func TestParsePing(t *testing.T) {
	out := `PING 192.168.1.10 (192.168.1.10) 56(84) bytes of data.
64 bytes from 192.168.1.10: icmp_seq=1 ttl=63 time=1.25 ms
64 bytes from 192.168.1.10: icmp_seq=3 ttl=63 time=0.612 ms

--- 192.168.1.10 ping statistics ---
3 packets transmitted, 2 received, 33.3333% packet loss, time 402ms
rtt min/avg/max/mdev = 0.612/0.931/1.250/0.319 ms
`
	sent, received, rtts, err := parsePing(out)
	if err != nil {
		t.Fatal(err)
	}
	want := []time.Duration{1250 * time.Microsecond, 612 * time.Microsecond}
	if sent != 3 || received != 2 || !slices.Equal(rtts, want) {
		t.Errorf("parsePing = %d sent, %d received, %v; want 3, 2, %v", sent, received, rtts, want)
	}
	if _, _, _, err := parsePing("ping: connect: Network is unreachable\n"); err == nil {
		t.Errorf("parsePing of an error message: no error")
	}
	w := floodWindow{sent: sent, received: received}
	if got := fmt.Sprintf("%.1f", w.lossPct()); got != "33.3" {
		t.Errorf("lossPct = %s, want 33.3", got)
	}
}
