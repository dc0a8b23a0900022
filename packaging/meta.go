package packaging

import "strings"

// Package metadata shared by every format.
const (
	Name        = "homenet"
	DisplayName = "homenet"
	Maintainer  = "homenet maintainers"
	Source      = "homenet"
	// License is what the package metadata declares. The project has not
	// chosen a license yet; set it here once it has. The binary embeds
	// tailscale.com (BSD-3-Clause), whose notice a release must carry.
	License = "Proprietary"
	// Description is one summary line, then more.
	Description = "Tailscale-compatible control server, DERP relay and subnet router\n" +
		"homenet runs a coordination server for the official Tailscale apps, an\n" +
		"embedded DERP relay and STUN server, and a subnet-router and exit-node\n" +
		"agent in one static binary, so that phones reach the home LAN."
)

// OneLineDescription is Description as one paragraph, for formats whose
// description is a single line.
func OneLineDescription() string {
	summary, rest, _ := strings.Cut(Description, "\n")
	return summary + ". " + strings.ReplaceAll(rest, "\n", " ")
}
