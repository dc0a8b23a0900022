package relay

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"tailscale.com/derp/derphttp"
	"tailscale.com/net/netmon"
	"tailscale.com/types/key"
)

// meshRetryDelay is how long the peer closer waits before reconnecting after
// its connection to the DERP server broke.
const meshRetryDelay = time.Second

// newMeshKey returns a random DERP mesh key. It never leaves the process: it
// is what lets the in-process peer closer use DERP's ClosePeer frame.
func newMeshKey() (key.DERPMesh, error) {
	var raw [32]byte
	rand.Read(raw[:]) // never fails
	k, err := key.ParseDERPMesh(hex.EncodeToString(raw[:]))
	if err != nil {
		return key.DERPMesh{}, fmt.Errorf("relay: making mesh key: %w", err)
	}
	return k, nil
}

// peerCloser drops a node's DERP connections on request. derpserver has no
// API for that, but it honours a ClosePeer frame from a trusted mesh peer, so
// peerCloser is such a peer: a DERP client holding the server's mesh key,
// connected over the loopback listener.
type peerCloser struct {
	client *derphttp.Client
	logger *slog.Logger
}

// newPeerCloser returns a peer closer for the DERP server at serverURL
// (plain HTTP on loopback). It connects when run starts.
func newPeerCloser(ctx context.Context, serverURL string, meshKey key.DERPMesh, logger *slog.Logger) (*peerCloser, error) {
	logger = logger.With("component", "derp-mesh")
	c, err := derphttp.NewClient(key.NewNode(), serverURL, logfAt(logger, slog.LevelDebug), netmon.NewStatic())
	if err != nil {
		return nil, fmt.Errorf("relay: mesh client for %q: %w", serverURL, err)
	}
	c.MeshKey = meshKey
	c.BaseContext = func() context.Context { return ctx }
	var d net.Dialer // loopback only: no need for tailscale's netns dialer
	c.SetURLDialer(d.DialContext)
	return &peerCloser{client: c, logger: logger}, nil
}

// run keeps the mesh connection up and drains what the server sends on it
// (server info, keepalives) until ctx is done or close is called.
func (p *peerCloser) run(ctx context.Context) {
	for ctx.Err() == nil {
		_, err := p.client.Recv() // (re)connects as needed
		if err == nil {
			continue
		}
		if errors.Is(err, derphttp.ErrClientClosed) || ctx.Err() != nil {
			return
		}
		p.logger.Debug("mesh connection to DERP server broke; retrying", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(meshRetryDelay):
		}
	}
}

// closePeer asks the DERP server to close every connection of k. A first
// failure usually means the mesh connection had broken; the derphttp client
// then reconnects on the second attempt.
func (p *peerCloser) closePeer(k key.NodePublic) error {
	err := p.client.ClosePeer(k)
	if err != nil && !errors.Is(err, derphttp.ErrClientClosed) {
		err = p.client.ClosePeer(k)
	}
	if errors.Is(err, derphttp.ErrClientClosed) {
		return nil // the relay is closed: no connections left to drop
	}
	if err != nil {
		return fmt.Errorf("asking DERP server to close %v: %w", k.ShortString(), err)
	}
	return nil
}

// close stops the mesh client; run returns soon after.
func (p *peerCloser) close() {
	p.client.Close()
}
