package appliance

import (
	"fmt"
	"log/slog"

	"homenet/firewall"
)

// FW4Status is what OpenWrt's fw4 does with the tunnel's forwarded traffic,
// for `homenet status` ("fw4" in its Extra). Warning is set when fw4 drops
// it: homenet's own accept rules cannot override a drop in fw4's table.
type FW4Status struct {
	firewall.FW4
	Error   string   `json:"error,omitempty"` // reading nftables failed
	Warning *Warning `json:"warning,omitempty"`
}

// fw4Fix is the fix for a tunnel fw4 drops: the UCI sections the OpenWrt
// package and homenet init add (openwrtSections), as commands.
const fw4Fix = "Install the homenet package (its /etc/uci-defaults script adds the zone), run homenet init, or add the zone by hand: " +
	"uci set network.homenet=interface; uci set network.homenet.proto=none; uci set network.homenet.device=" + tunName + "; " +
	"uci set firewall.homenet=zone; uci set firewall.homenet.name=homenet; uci add_list firewall.homenet.network=homenet; " +
	"uci set firewall.homenet.input=ACCEPT; uci set firewall.homenet.output=ACCEPT; uci set firewall.homenet.forward=ACCEPT; " +
	"uci set firewall.homenet.masq=1; uci set firewall.homenet.mtu_fix=1; " +
	"uci set firewall.homenet_to_lan=forwarding; uci set firewall.homenet_to_lan.src=homenet; uci set firewall.homenet_to_lan.dest=lan; " +
	"uci set firewall.homenet_from_lan=forwarding; uci set firewall.homenet_from_lan.src=lan; uci set firewall.homenet_from_lan.dest=homenet; " +
	"%s" +
	"uci commit network; uci commit firewall; /etc/init.d/network reload; /etc/init.d/firewall reload " +
	"(see \"fw4 drops the tailnet\" in docs/install.md)."

// fw4ExitFix adds the exit node's forwarding to fw4Fix.
const fw4ExitFix = "uci set firewall.homenet_to_wan=forwarding; uci set firewall.homenet_to_wan.src=homenet; uci set firewall.homenet_to_wan.dest=wan; "

// fw4Warning explains a fw4 that drops the tunnel's forwarded traffic, or
// returns nil.
func fw4Warning(f firewall.FW4, exitNode bool) *Warning {
	if !f.DropsForward() {
		return nil
	}
	what, exit := "phones cannot reach the LAN", ""
	if exitNode {
		what, exit = "phones cannot reach the LAN or use this router as an exit node", fw4ExitFix
	}
	return &Warning{
		Code: "fw4-forward-drop",
		Message: fmt.Sprintf("OpenWrt's firewall (fw4) drops traffic forwarded from %s: its forward chain has policy drop and no zone takes %s, so %s. "+
			"homenet's own rules cannot override a drop in fw4's table.", tunName, tunName, what),
		Fix: fmt.Sprintf(fw4Fix, exit),
	}
}

// checkFW4 reads fw4's live ruleset for the tunnel and says what it does.
func checkFW4(exitNode bool) FW4Status {
	f, err := firewall.CheckFW4(tunName)
	st := FW4Status{FW4: f, Warning: fw4Warning(f, exitNode)}
	if err != nil {
		st.Error = err.Error()
	}
	return st
}

// logFW4 logs fw4's warning when the gateway starts, where logread shows
// it; `homenet status` reads fw4 again on each call.
func logFW4(cfg Config, logger *slog.Logger) {
	if w := checkFW4(cfg.Gateway.ExitNode).Warning; w != nil {
		logger.Warn("gateway: "+w.Message, "fix", w.Fix, "code", w.Code)
	}
}

// warnFW4 adds fw4's warning to init's. It reads the live ruleset, so only
// on the running system (Run set, root "/"), after init added the zone
// and reloaded the firewall: what it finds then is what phones get.
func (in *initRun) warnFW4(cfg *Config) {
	if !cfg.Gateway.Enabled || in.o.Run == nil || in.root != "/" {
		return
	}
	if w := checkFW4(cfg.Gateway.ExitNode).Warning; w != nil {
		in.res.Warnings = append(in.res.Warnings, *w)
	}
}
