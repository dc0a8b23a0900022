package packaging

import (
	"maps"
	"slices"
	"strings"

	"tailscale.com/feature/featuretags"
)

// KeepFeatures are the tailscale.com features the release binary keeps;
// every other omittable feature gets its ts_omit_ tag (OmitTags). This is
// the one list to extend when homenet starts using another feature.
//
// homenet never imports tailscale.com/feature/condregister, so features
// that only register themselves from there (portmapper, ssh, taildrop,
// relayserver, …) are absent either way; the tags still trim code paths
// inside the packages we do import (ipn/ipnlocal, wgengine, magicsock).
var KeepFeatures = []featuretags.FeatureTag{
	// The gateway agent advertises the LAN prefixes and, by default,
	// offers itself as an exit node (which runs the ExitDNS peerAPI).
	"advertiseroutes",
	"advertiseexitnode",
	// Peers' routes go into the agent's netmap handling; cheap to keep.
	"useroutes",
	// MagicDNS and the exit node's DNS forwarder (CorpDNS itself is off).
	"dns",
	// The agent passes the health tracker to the engine and reports it.
	"health",
	// Fallback CA roots when the device's store is missing or stale (the
	// agent dials control, the relay dials Let's Encrypt).
	"bakedroots",
	// Without it, v1.102.5 denies every LocalAPI call ("status access
	// denied", ipn/ipnauth/ipnauth_omit_unixsocketidentity.go).
	"unixsocketidentity",
	// The engine's byte and packet counters, which /metrics serves for
	// the gateway (subnet/metrics.go).
	"usermetrics",
}

// StockFeatures are what a trimmed stock tailscaled needs to do the
// agent's job: KeepFeatures plus its own router and netfilter code
// (homenet brings its own). The size table builds tailscaled with them.
var StockFeatures = append(slices.Clone(KeepFeatures), "osrouter", "iptables")

// OmitTags returns the ts_omit_ build tags for every omittable feature
// that keep (with what it requires) does not need, sorted.
func OmitTags(keep []featuretags.FeatureTag) []string {
	need := map[featuretags.FeatureTag]bool{}
	for _, f := range keep {
		for dep := range featuretags.Requires(f) {
			need[dep] = true
		}
	}
	var tags []string
	for _, f := range slices.Sorted(maps.Keys(featuretags.Features)) {
		if f == "" || need[f] || !f.IsOmittable() {
			continue
		}
		tags = append(tags, f.OmitTag())
	}
	return tags
}

// Tags returns the build tags of a release binary, comma-separated as
// "go build -tags" takes them.
func Tags() string {
	return strings.Join(OmitTags(KeepFeatures), ",")
}
