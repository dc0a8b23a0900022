package subnet

import (
	"fmt"
	"math"
	"os"
	"runtime/debug"
	"strconv"
)

// Memory is how the agent fits the engine into the process's soft memory
// limit (GOMEMLIMIT, or homenet's own from the RAM size).
//
// wireguard-go (the version tailscale.com pins) holds every packet in
// flight in a 64 KiB buffer, whatever its size, and nothing bounds how
// many. About 38 MiB of such buffers are allocated for good at start (128
// per UDP receive goroutine, of which magicsock has three, and 128 for
// the TUN reader) plus tstun's 8 MiB for reads from the TUN. On a gateway
// whose CPU cannot keep up, the receive goroutine moves every datagram
// waiting in the UDP socket into such a buffer before decryption gets to
// it, so the socket's receive buffer (7 MiB, which magicsock forces) sets
// how much more heap the backlog takes: ≈45 times the bytes waiting. Under
// a tight limit the collector then runs back to back, sync.Pool loses its
// buffers at every cycle and each packet costs a fresh 64 KiB allocation:
// at GOMEMLIMIT=64MiB throughput fell to a fifth in the bench lab. A small
// socket buffer makes the kernel drop instead, before any work was spent
// on the packet, and TCP backs off; a smaller TUN batch gives back half of
// tstun's 8 MiB. At 64 MiB both are needed (either alone still
// collapsed in the lab).
type Memory struct {
	// UDPReceiveBuffer caps SO_RCVBUF of the engine's UDP sockets, in
	// bytes; 0 leaves magicsock's 7 MiB.
	UDPReceiveBuffer int
	// TUNBatch caps how many packets one read from the TUN yields, and
	// with it the 64 KiB buffers tstun keeps for those reads (8 MiB at
	// wireguard-go's 128); 0 leaves 128.
	TUNBatch int
}

// minTUNBatch is the smallest TUN batch that keeps the kernel's TCP
// offload: a 64 KiB super-segment at the tunnel's MTU is about 53
// segments, and a TUN whose gso_max_segs is below that (see
// limitTUNBatch) makes the kernel segment every such packet in software,
// so each read from the TUN yields one packet. In the e2e lab at
// GOMEMLIMIT=64MiB, LAN → phone with 4 streams made 0.21 Gb/s at a batch
// of 16 and 0.25 at 32, against 0.92 at 64 (0.91 at wireguard-go's 128);
// phone → LAN made 0.68, 0.72, 0.71 and 0.45.
const minTUNBatch = 64

// memoryTiers are the engine settings by soft memory limit, smallest
// limit first: the first tier whose limit is at least the process's
// applies.
var memoryTiers = []struct {
	limit int64 // up to and including
	mem   Memory
}{
	{64 << 20, Memory{UDPReceiveBuffer: 32 << 10, TUNBatch: minTUNBatch}},
	{128 << 20, Memory{UDPReceiveBuffer: 64 << 10, TUNBatch: minTUNBatch}},
	{512 << 20, Memory{UDPReceiveBuffer: 1 << 20}},
}

// MemoryFor returns the engine settings for a soft memory limit of limit
// bytes (math.MaxInt64 for none).
func MemoryFor(limit int64) Memory {
	for _, t := range memoryTiers {
		if limit <= t.limit {
			return t.mem
		}
	}
	return Memory{}
}

// Environment overrides of the settings, to measure others: sizes in
// bytes or packets, 0 for wireguard-go's and magicsock's own.
const (
	udpBufferEnv = "HOMENET_GATEWAY_UDP_BUFFER" // Memory.UDPReceiveBuffer
	tunBatchEnv  = "HOMENET_GATEWAY_TUN_BATCH"  // Memory.TUNBatch
)

// currentMemory returns the settings for the process's soft memory limit
// (debug.SetMemoryLimit, as GOMEMLIMIT or homenet's own default set it),
// with the environment's overrides applied.
func currentMemory() (Memory, error) {
	m := MemoryFor(debug.SetMemoryLimit(-1))
	for env, field := range map[string]*int{udpBufferEnv: &m.UDPReceiveBuffer, tunBatchEnv: &m.TUNBatch} {
		v := os.Getenv(env)
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > math.MaxInt32 {
			return m, fmt.Errorf("$%s=%q: want a whole number, 0 or more", env, v)
		}
		*field = n
	}
	return m, nil
}
