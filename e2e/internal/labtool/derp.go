package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"tailscale.com/derp/derphttp"
	"tailscale.com/net/netmon"
	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
)

// derpProbe connects to the first region of a DERP map with a node key and
// reports whether the relay admits it: admitted when a DERP ping gets its
// pong, refused when the server closes the connection after the handshake.
// It prints "admitted" (exit 0) or "refused: …" (exit 3); any other failure,
// such as no connection at all, exits 1.
func derpProbe(args []string) error {
	fs := flag.NewFlagSet("derp-probe", flag.ExitOnError)
	mapFile := fs.String("derpmap", "", "DERP map JSON file (as from `tailscale debug derp-map`)")
	keySpec := fs.String("key", "new", `"new" for a fresh unregistered node key, or "state:FILE" for the node key in a tailscaled state file`)
	timeout := fs.Duration("timeout", 10*time.Second, "timeout")
	fs.Parse(args)

	region, err := firstRegion(*mapFile)
	if err != nil {
		return err
	}
	priv, err := nodeKey(*keySpec)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()

	c := derphttp.NewRegionClient(priv, func(string, ...any) {}, netmon.NewStatic(), func() *tailcfg.DERPRegion { return region })
	defer c.Close()
	if err := c.Connect(ctx); err != nil {
		return fmt.Errorf("connecting to region %d (%s): %w", region.RegionID, region.RegionCode, err)
	}
	// The handshake is done; a server that rejects the key now closes the
	// connection. Recv must run for pongs to be seen.
	recvErr := make(chan error, 1)
	go func() {
		for {
			if _, err := c.Recv(); err != nil {
				recvErr <- err
				return
			}
		}
	}()
	pingErr := make(chan error, 1)
	go func() { pingErr <- c.Ping(ctx) }()
	select {
	case err := <-pingErr:
		if err == nil {
			fmt.Printf("admitted: node key %v by region %d (%s)\n", priv.Public().ShortString(), region.RegionID, region.RegionCode)
			return nil
		}
		return exitError{3, fmt.Errorf("refused: node key %v: ping: %w", priv.Public().ShortString(), err)}
	case err := <-recvErr:
		return exitError{3, fmt.Errorf("refused: node key %v: connection closed: %w", priv.Public().ShortString(), err)}
	}
}

func firstRegion(path string) (*tailcfg.DERPRegion, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var dm tailcfg.DERPMap
	if err := json.Unmarshal(b, &dm); err != nil {
		return nil, fmt.Errorf("parsing DERP map %s: %w", path, err)
	}
	ids := dm.RegionIDs()
	if len(ids) == 0 {
		return nil, errors.New("DERP map has no regions")
	}
	return dm.Regions[ids[0]], nil
}

func nodeKey(spec string) (key.NodePrivate, error) {
	if spec == "new" {
		return key.NewNode(), nil
	}
	path, ok := strings.CutPrefix(spec, "state:")
	if !ok {
		return key.NodePrivate{}, fmt.Errorf("bad -key %q", spec)
	}
	return nodeKeyFromState(path)
}

// nodeKeyFromState reads the current profile's node private key from a
// tailscaled state file: a JSON object of base64 values, in which
// "_current-profile" names the key holding the profile's prefs, whose
// "Config" (persist.Persist) has PrivateNodeKey.
func nodeKeyFromState(path string) (key.NodePrivate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return key.NodePrivate{}, err
	}
	var state map[string][]byte
	if err := json.Unmarshal(b, &state); err != nil {
		return key.NodePrivate{}, fmt.Errorf("%s: %w", path, err)
	}
	profile := string(state["_current-profile"])
	if profile == "" {
		return key.NodePrivate{}, fmt.Errorf("%s: no _current-profile", path)
	}
	var prefs struct {
		Config struct{ PrivateNodeKey key.NodePrivate }
	}
	if err := json.Unmarshal(state[profile], &prefs); err != nil {
		return key.NodePrivate{}, fmt.Errorf("%s: profile %s: %w", path, profile, err)
	}
	if prefs.Config.PrivateNodeKey.IsZero() {
		return key.NodePrivate{}, fmt.Errorf("%s: profile %s has no node key", path, profile)
	}
	return prefs.Config.PrivateNodeKey, nil
}
