package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"tailscale.com/control/tsp"
	"tailscale.com/derp/derphttp"
	"tailscale.com/net/netmon"
	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
)

// flood plays a stranger hammering a homenet for a while, as fast as -rate
// allows: workers open Noise connections with fresh machine keys and on
// each ask to register -reuse fresh node keys, without a key (interactive
// logins) or with a made-up one; with -derpmap, other workers open DERP
// connections with fresh node keys to the map's first region. At the end
// it prints one line per outcome, "COUNT\tOUTCOME", most frequent first,
// and "total\tN".
func flood(args []string) error {
	fs := flag.NewFlagSet("flood", flag.ExitOnError)
	serverURL := fs.String("url", "", "control server URL")
	duration := fs.Duration("duration", 20*time.Second, "how long to flood")
	workers := fs.Int("workers", 8, "concurrent Noise workers")
	reuse := fs.Int("reuse", 4, "registrations per Noise connection")
	rate := fs.Int("rate", 200, "attempts a second at most, in all")
	mapFile := fs.String("derpmap", "", "DERP map JSON file: also flood its first region with fresh node keys")
	derpWorkers := fs.Int("derp-workers", 2, "concurrent DERP workers (with -derpmap)")
	fs.Parse(args)
	if *serverURL == "" {
		return errors.New("-url is required")
	}

	ctx, cancel := context.WithTimeout(context.Background(), *duration)
	defer cancel()
	serverKey, err := tsp.DiscoverServerKey(ctx, *serverURL)
	if err != nil {
		return err
	}
	var region *tailcfg.DERPRegion
	if *mapFile != "" {
		if region, err = firstRegion(*mapFile); err != nil {
			return err
		}
	}

	// One token a tick, shared by all workers.
	tokens := make(chan struct{})
	go func() {
		t := time.NewTicker(time.Second / time.Duration(max(1, *rate)))
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				select {
				case tokens <- struct{}{}:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	take := func() bool {
		select {
		case <-tokens:
			return true
		case <-ctx.Done():
			return false
		}
	}

	var mu sync.Mutex
	outcomes := map[string]int{}
	count := func(o string) {
		mu.Lock()
		outcomes[o]++
		mu.Unlock()
	}
	var wg sync.WaitGroup
	for w := range *workers {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				c, err := tsp.NewClient(tsp.ClientOpts{ServerURL: *serverURL, MachineKey: key.NewMachine()})
				if err != nil {
					count("error: " + err.Error())
					return
				}
				c.SetControlPublicKey(serverKey)
				for range *reuse {
					if !take() {
						break
					}
					opts := tsp.RegisterOpts{NodeKey: key.NewNode(), Hostinfo: &tailcfg.Hostinfo{Hostname: fmt.Sprintf("flood-%d-%d", w, i), OS: "linux"}}
					if (w+i)%2 == 1 {
						opts.AuthKey = "hn-made-up-" + key.NewNode().Public().ShortString()
					}
					rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
					res, err := c.Register(rctx, opts)
					rcancel()
					o := registerOutcome(res, err)
					if ctx.Err() != nil && strings.HasPrefix(o, "error") {
						break // cut short by the end of the flood
					}
					count(o)
					if strings.HasPrefix(o, "upgrade") {
						break // a new connection for the next
					}
				}
				c.Close()
			}
		})
	}
	if region != nil {
		for range *derpWorkers {
			wg.Go(func() {
				for take() {
					count(derpAttempt(ctx, region))
				}
			})
		}
	}
	wg.Wait()

	keys := slices.SortedFunc(maps.Keys(outcomes), func(a, b string) int {
		return cmp.Or(cmp.Compare(outcomes[b], outcomes[a]), cmp.Compare(a, b))
	})
	total := 0
	for _, k := range keys {
		fmt.Printf("%d\t%s\n", outcomes[k], k)
		total += outcomes[k]
	}
	fmt.Printf("%d\ttotal\n", total)
	return nil
}

// registerOutcome names what one registration attempt got, in a few
// stable words.
func registerOutcome(res *tailcfg.RegisterResponse, err error) string {
	if err == nil {
		switch {
		case res.MachineAuthorized:
			return "register: authorized"
		case res.AuthURL != "":
			return "register: auth URL"
		}
		return "register: other answer"
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "http 429"):
		return "register: 429"
	case strings.HasPrefix(msg, "register: "):
		return "register: refused: " + short(strings.TrimPrefix(msg, "register: "), 60)
	// A refused Noise upgrade: controlhttp says "unexpected HTTP response:
	// 429 Too Many Requests" (after trying port 443 too).
	case strings.Contains(msg, "HTTP response: 429"):
		return "upgrade: 429"
	case strings.Contains(msg, "HTTP response: 503"):
		return "upgrade: 503"
	}
	return "error: " + short(msg, 200)
}

// derpAttempt connects to region with a fresh node key and says how the
// relay answered.
func derpAttempt(ctx context.Context, region *tailcfg.DERPRegion) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c := derphttp.NewRegionClient(key.NewNode(), func(string, ...any) {}, netmon.NewStatic(), func() *tailcfg.DERPRegion { return region })
	defer c.Close()
	if err := c.Connect(ctx); err != nil {
		if strings.Contains(err.Error(), "429") {
			return "derp: 429"
		}
		return "derp: error: " + short(err.Error(), 80)
	}
	// The handshake is done; a refused key sees the connection closed. A
	// client that knows the server's key from the TLS handshake does not
	// wait for the HTTP response (derp.FastStartHeader): a 429 then shows
	// as a first frame that is HTTP text.
	_, err := c.Recv()
	switch {
	case err == nil:
		return "derp: admitted"
	case strings.Contains(err.Error(), "unexpectedly large frame"): // "HTTP/1.1 429 …" read as a frame header
		return "derp: 429"
	case strings.Contains(err.Error(), "EOF"), strings.Contains(err.Error(), "reset by peer"):
		return "derp: refused after the handshake"
	}
	return "derp: error after the handshake: " + short(err.Error(), 80)
}

func short(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
