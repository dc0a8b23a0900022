package relay

import (
	"log/slog"
	"testing"

	"tailscale.com/types/key"
)

// BenchmarkRoundTrip measures one 1 KiB packet from a to b and back through
// the relay over TLS on loopback (clients and relay share the CPU).
func BenchmarkRoundTrip(b *testing.B) {
	logger := slog.New(slog.DiscardHandler)
	ka, kb := key.NewNode(), key.NewNode()
	r := startRelay(b, logger, Config{}, newRegistry(ka.Public(), kb.Public()).admit)
	region := r.Region()
	ca, cb := newClient(b, logger, ka, region), newClient(b, logger, kb, region)
	connectAdmitted(b, ca)
	connectAdmitted(b, cb)
	payload := make([]byte, 1024)
	b.SetBytes(2 * int64(len(payload)))
	for b.Loop() {
		if err := ca.Send(kb.Public(), payload); err != nil {
			b.Fatal(err)
		}
		recvPacket(b, cb)
		if err := cb.Send(ka.Public(), payload); err != nil {
			b.Fatal(err)
		}
		recvPacket(b, ca)
	}
}

// BenchmarkAdmittedConnect measures a new DERP connection: TCP, TLS with the
// pinned certificate, the DERP handshake and the in-process admission query.
func BenchmarkAdmittedConnect(b *testing.B) {
	logger := slog.New(slog.DiscardHandler)
	k := key.NewNode()
	r := startRelay(b, logger, Config{}, newRegistry(k.Public()).admit)
	region := r.Region()
	for b.Loop() {
		c := newClient(b, logger, k, region)
		connectAdmitted(b, c)
		c.Close()
	}
}
