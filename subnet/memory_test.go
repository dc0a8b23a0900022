package subnet

import (
	"math"
	"testing"

	"tailscale.com/net/tstun"
)

func TestMemoryFor(t *testing.T) {
	tests := []struct {
		name  string
		limit int64
		want  Memory
	}{
		{"32 MiB", 32 << 20, Memory{UDPReceiveBuffer: 32 << 10, TUNBatch: 64}},
		{"64 MiB", 64 << 20, Memory{UDPReceiveBuffer: 32 << 10, TUNBatch: 64}},
		{"128 MiB", 128 << 20, Memory{UDPReceiveBuffer: 64 << 10, TUNBatch: 64}},
		{"just above 128 MiB", 128<<20 + 1, Memory{UDPReceiveBuffer: 1 << 20}},
		{"512 MiB", 512 << 20, Memory{UDPReceiveBuffer: 1 << 20}},
		{"1 GiB", 1 << 30, Memory{}},
		{"no limit", math.MaxInt64, Memory{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := MemoryFor(tt.limit); got != tt.want {
				t.Errorf("MemoryFor(%d) = %+v, want %+v", tt.limit, got, tt.want)
			}
		})
	}
}

func TestMemoryTiersAscend(t *testing.T) {
	for i := 1; i < len(memoryTiers); i++ {
		if memoryTiers[i].limit <= memoryTiers[i-1].limit {
			t.Errorf("tier %d (limit %d) is not above tier %d (limit %d): it would never apply", i, memoryTiers[i].limit, i-1, memoryTiers[i-1].limit)
		}
	}
}

// TestTUNBatchKeepsTSO: a tier's TUN batch, which becomes the TUN's
// gso_max_segs, must hold every segment of a 64 KiB TCP super-segment at
// the tunnel's MTU; with fewer the kernel segments each one in software
// and LAN → phone throughput collapses (see minTUNBatch).
func TestTUNBatchKeepsTSO(t *testing.T) {
	mss := int(tstun.DefaultTUNMTU()) - 40 // IPv4 and TCP headers
	segs := (64<<10 - 1 + mss - 1) / mss
	for _, tier := range memoryTiers {
		if b := tier.mem.TUNBatch; b != 0 && b < segs {
			t.Errorf("tier up to %d MiB: TUN batch %d is below the %d segments of a 64 KiB super-segment at MSS %d", tier.limit>>20, b, segs, mss)
		}
	}
}

func TestCurrentMemoryEnv(t *testing.T) {
	tests := []struct {
		env     string
		want    int
		wantErr bool
	}{
		{"0", 0, false},
		{"131072", 131072, false},
		{"-1", -1, true},
		{"1MiB", -1, true},
	}
	for _, tt := range tests {
		t.Run(tt.env, func(t *testing.T) {
			t.Setenv(udpBufferEnv, tt.env)
			m, err := currentMemory()
			if (err != nil) != tt.wantErr {
				t.Fatalf("currentMemory() with $%s=%q: err = %v, want error %v", udpBufferEnv, tt.env, err, tt.wantErr)
			}
			if !tt.wantErr && m.UDPReceiveBuffer != tt.want {
				t.Errorf("UDPReceiveBuffer = %d, want %d", m.UDPReceiveBuffer, tt.want)
			}
		})
	}
}
