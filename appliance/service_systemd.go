package appliance

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"text/template"

	"github.com/godbus/dbus/v5"
)

// tunName is the gateway agent's kernel TUN (subnet.DefaultTun). Tailscale's
// code recognises its own interface by the "tailscale" prefix.
const tunName = "tailscale0"

// unitName is homenet's systemd unit.
const unitName = "homenet.service"

var unitTemplate = template.Must(template.New("unit").Parse(`# {{.Marker}}
[Unit]
Description=homenet: Tailscale-compatible control server, DERP relay and subnet router
Wants=network-pre.target
After=network-pre.target NetworkManager.service systemd-resolved.service

[Service]
Type=simple
ExecStart={{.Binary}} serve --config {{.Config}}
Restart=on-failure
RestartSec=5
# The gateway configures the tunnel, routes and netfilter (NET_ADMIN), sends
# raw packets (NET_RAW) and may listen on ports below 1024. It writes
# /proc/sys (forwarding), so no ProtectKernelTunables.
AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW CAP_NET_BIND_SERVICE
CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW CAP_NET_BIND_SERVICE
NoNewPrivileges=yes

[Install]
WantedBy=multi-user.target
`))

// SystemdUnit returns homenet's systemd unit, running binary with the
// config file at config.
func SystemdUnit(binary, config string) []byte {
	var b bytes.Buffer
	unitTemplate.Execute(&b, struct{ Marker, Binary, Config string }{
		Marker: initMarker + `; "homenet uninstall" removes it.`,
		Binary: systemdQuote(binary),
		Config: systemdQuote(config),
	})
	return b.Bytes()
}

// systemdQuote quotes a path for ExecStart when it needs it.
func systemdQuote(s string) string {
	if !strings.ContainsAny(s, " \t\"'\\$%;") {
		return s
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `$$`, `%`, `%%`)
	return `"` + r.Replace(s) + `"`
}

// sysctlConf is /etc/sysctl.d/99-homenet.conf: forwarding for the subnet
// router and exit node, as the gateway agent sets it while it runs, made to
// survive reboots. With IPv6 forwarding on, an interface with accept_ra = 1
// stops taking router advertisements, so the WAN's goes to 2.
func sysctlConf(wan string) []byte {
	var b bytes.Buffer
	b.WriteString(markerLine)
	b.WriteString("# The subnet router and exit node forward packets between the tailnet and the LAN.\n")
	b.WriteString("net.ipv4.ip_forward = 1\n")
	b.WriteString("net.ipv6.conf.all.forwarding = 1\n")
	if wan != "" {
		b.WriteString("# Keep taking IPv6 router advertisements on the WAN with forwarding on.\n")
		if strings.Contains(wan, ".") { // a VLAN such as eth0.2: use the slash form
			fmt.Fprintf(&b, "net/ipv6/conf/%s/accept_ra = 2\n", wan)
		} else {
			fmt.Fprintf(&b, "net.ipv6.conf.%s.accept_ra = 2\n", wan)
		}
	}
	return b.Bytes()
}

// nmConf is /etc/NetworkManager/conf.d/homenet.conf. NetworkManager must not
// manage the tunnel: it would remove its IPv6 address and routes
// (tailscale/tailscale#1699). "+=" adds to unmanaged-devices set in other
// files instead of replacing it; the device section says the same for
// NetworkManager versions that prefer it.
func nmConf() []byte {
	return []byte(markerLine +
		"# NetworkManager must leave homenet's tunnel alone.\n" +
		"[keyfile]\n" +
		"unmanaged-devices+=interface-name:" + tunName + "\n" +
		"\n" +
		"[device-homenet-" + tunName + "]\n" +
		"match-device=interface-name:" + tunName + "\n" +
		"managed=0\n")
}

// D-Bus names of the services init drives.
const (
	systemdDest    = "org.freedesktop.systemd1"
	systemdPath    = "/org/freedesktop/systemd1"
	systemdManager = "org.freedesktop.systemd1.Manager"

	firewalldDest       = "org.fedoraproject.FirewallD1"
	firewalldPath       = "/org/fedoraproject/FirewallD1"
	firewalldConfigPath = "/org/fedoraproject/FirewallD1/config"

	nmDest = "org.freedesktop.NetworkManager"
	nmPath = "/org/freedesktop/NetworkManager"

	propertiesGet = "org.freedesktop.DBus.Properties.Get"
	propertiesSet = "org.freedesktop.DBus.Properties.Set"
)

// systemdUnitState returns whether unit's file is enabled and whether the
// unit is active (or activating).
func systemdUnitState(ctx context.Context, bus Bus, unit string) (enabled, active bool, err error) {
	state, err := callString(ctx, bus, systemdDest, systemdPath, systemdManager+".GetUnitFileState", unit)
	if err != nil && dbusErrorName(err) == "" {
		return false, false, err
	}
	enabled = state == "enabled" || state == "enabled-runtime"
	path, err := callString(ctx, bus, systemdDest, systemdPath, systemdManager+".LoadUnit", unit)
	if err != nil {
		return enabled, false, err
	}
	as, err := callString(ctx, bus, systemdDest, path, propertiesGet, "org.freedesktop.systemd1.Unit", "ActiveState")
	if err != nil {
		return enabled, false, err
	}
	return enabled, as == "active" || as == "activating" || as == "reloading", nil
}

// systemdInstall makes systemd pick up the unit file (when it changed),
// enable the unit and have it running: restarted when the unit or config
// changed, started when it was not running. It reports whether homenet was
// (re)started or is running.
func systemdInstall(ctx context.Context, bus Bus, unitChanged, configChanged bool) (steps []Step, running bool, err error) {
	step := func(target, result, detail string) {
		steps = append(steps, Step{What: "systemd", Target: target, Result: result, Detail: detail})
	}
	call := func(method string, args ...any) error {
		_, err := bus.Call(ctx, systemdDest, systemdPath, systemdManager+"."+method, args...)
		if err != nil {
			return fmt.Errorf("systemd %s: %w", method, err)
		}
		return nil
	}
	if unitChanged {
		if err := call("Reload"); err != nil {
			return steps, false, err
		}
		step("daemon", ResultDone, "reloaded unit files")
	}
	enabled, active, err := systemdUnitState(ctx, bus, unitName)
	if err != nil {
		return steps, false, fmt.Errorf("systemd: state of %s: %w", unitName, err)
	}
	if enabled {
		step(unitName, ResultUnchanged, "enabled")
	} else {
		if err := call("EnableUnitFiles", []string{unitName}, false, true); err != nil {
			return steps, false, err
		}
		step(unitName, ResultDone, "enabled: starts at boot")
	}
	switch {
	case active && (unitChanged || configChanged):
		if err := call("RestartUnit", unitName, "replace"); err != nil {
			return steps, false, err
		}
		step(unitName, ResultDone, "restarted with the new configuration")
	case active:
		step(unitName, ResultUnchanged, "running")
	default:
		if err := call("StartUnit", unitName, "replace"); err != nil {
			return steps, false, err
		}
		step(unitName, ResultDone, "started")
	}
	return steps, true, nil
}

// systemdRemove stops and disables the unit. Removing the file and
// reloading is up to the caller.
func systemdRemove(ctx context.Context, bus Bus) ([]Step, error) {
	var steps []Step
	enabled, active, err := systemdUnitState(ctx, bus, unitName)
	if err != nil {
		return nil, fmt.Errorf("systemd: state of %s: %w", unitName, err)
	}
	if active {
		if _, err := bus.Call(ctx, systemdDest, systemdPath, systemdManager+".StopUnit", unitName, "replace"); err != nil {
			return steps, fmt.Errorf("systemd StopUnit: %w", err)
		}
		steps = append(steps, Step{What: "systemd", Target: unitName, Result: ResultDone, Detail: "stopped"})
	}
	if enabled {
		if _, err := bus.Call(ctx, systemdDest, systemdPath, systemdManager+".DisableUnitFiles", []string{unitName}, false); err != nil {
			return steps, fmt.Errorf("systemd DisableUnitFiles: %w", err)
		}
		steps = append(steps, Step{What: "systemd", Target: unitName, Result: ResultDone, Detail: "disabled"})
	}
	return steps, nil
}

// systemdReload makes systemd re-read unit files.
func systemdReload(ctx context.Context, bus Bus) error {
	_, err := bus.Call(ctx, systemdDest, systemdPath, systemdManager+".Reload")
	return err
}

// systemdApplySysctl re-applies /etc/sysctl.d by restarting
// systemd-sysctl.service.
func systemdApplySysctl(ctx context.Context, bus Bus) error {
	_, err := bus.Call(ctx, systemdDest, systemdPath, systemdManager+".RestartUnit", "systemd-sysctl.service", "replace")
	return err
}

// firewalldTrust puts iface into firewalld's trusted zone, at runtime and
// in the permanent configuration, so that forwarded tailnet traffic is not
// dropped by firewalld's own table (tailscale/tailscale#4639).
func firewalldTrust(ctx context.Context, bus Bus, iface string) ([]Step, error) {
	var steps []Step
	zone, err := callString(ctx, bus, firewalldDest, firewalldPath, firewalldDest+".zone.getZoneOfInterface", iface)
	if err != nil {
		return nil, fmt.Errorf("firewalld getZoneOfInterface: %w", err)
	}
	if zone == "trusted" {
		steps = append(steps, Step{What: "firewalld", Target: iface, Result: ResultUnchanged, Detail: "in the trusted zone (runtime)"})
	} else {
		if _, err := bus.Call(ctx, firewalldDest, firewalldPath, firewalldDest+".zone.changeZoneOfInterface", "trusted", iface); err != nil {
			return steps, fmt.Errorf("firewalld changeZoneOfInterface: %w", err)
		}
		steps = append(steps, Step{What: "firewalld", Target: iface, Result: ResultDone, Detail: "moved to the trusted zone (runtime)"})
	}

	pzone, err := callString(ctx, bus, firewalldDest, firewalldConfigPath, firewalldDest+".config.getZoneOfInterface", iface)
	if err != nil {
		return steps, fmt.Errorf("firewalld config.getZoneOfInterface: %w", err)
	}
	if pzone == "trusted" {
		steps = append(steps, Step{What: "firewalld", Target: iface, Result: ResultUnchanged, Detail: "in the trusted zone (permanent)"})
		return steps, nil
	}
	if pzone != "" {
		if err := firewalldConfigZone(ctx, bus, pzone, "removeInterface", iface); err != nil {
			return steps, err
		}
	}
	if err := firewalldConfigZone(ctx, bus, "trusted", "addInterface", iface); err != nil {
		return steps, err
	}
	steps = append(steps, Step{What: "firewalld", Target: iface, Result: ResultDone, Detail: "added to the trusted zone (permanent)"})
	return steps, nil
}

// firewalldUntrust takes iface out of the trusted zone again.
func firewalldUntrust(ctx context.Context, bus Bus, iface string) ([]Step, error) {
	var steps []Step
	zone, err := callString(ctx, bus, firewalldDest, firewalldPath, firewalldDest+".zone.getZoneOfInterface", iface)
	if err != nil {
		return nil, fmt.Errorf("firewalld getZoneOfInterface: %w", err)
	}
	if zone == "trusted" {
		if _, err := bus.Call(ctx, firewalldDest, firewalldPath, firewalldDest+".zone.removeInterface", "trusted", iface); err != nil {
			return steps, fmt.Errorf("firewalld removeInterface: %w", err)
		}
		steps = append(steps, Step{What: "firewalld", Target: iface, Result: ResultRemoved, Detail: "from the trusted zone (runtime)"})
	}
	pzone, err := callString(ctx, bus, firewalldDest, firewalldConfigPath, firewalldDest+".config.getZoneOfInterface", iface)
	if err != nil {
		return steps, fmt.Errorf("firewalld config.getZoneOfInterface: %w", err)
	}
	if pzone == "trusted" {
		if err := firewalldConfigZone(ctx, bus, "trusted", "removeInterface", iface); err != nil {
			return steps, err
		}
		steps = append(steps, Step{What: "firewalld", Target: iface, Result: ResultRemoved, Detail: "from the trusted zone (permanent)"})
	}
	if len(steps) == 0 {
		steps = append(steps, Step{What: "firewalld", Target: iface, Result: ResultAbsent, Detail: "not in the trusted zone"})
	}
	return steps, nil
}

// firewalldConfigZone calls method (addInterface or removeInterface) on the
// permanent configuration of zone.
func firewalldConfigZone(ctx context.Context, bus Bus, zone, method, iface string) error {
	path, err := callString(ctx, bus, firewalldDest, firewalldConfigPath, firewalldDest+".config.getZoneByName", zone)
	if err != nil {
		return fmt.Errorf("firewalld config.getZoneByName %s: %w", zone, err)
	}
	if _, err := bus.Call(ctx, firewalldDest, path, firewalldDest+".config.zone."+method, iface); err != nil {
		return fmt.Errorf("firewalld config.zone.%s %s: %w", method, zone, err)
	}
	return nil
}

// nmReload makes NetworkManager re-read its configuration files.
func nmReload(ctx context.Context, bus Bus) error {
	const reloadConf = uint32(1) // NM_MANAGER_RELOAD_FLAG_CONF
	_, err := bus.Call(ctx, nmDest, nmPath, nmDest+".Reload", reloadConf)
	return err
}

// nmUnmanage marks iface unmanaged now, if NetworkManager knows it: the
// configuration file covers the device's future appearances.
func nmUnmanage(ctx context.Context, bus Bus, iface string) (Step, error) {
	st := Step{What: "NetworkManager", Target: iface}
	dev, err := callString(ctx, bus, nmDest, nmPath, nmDest+".GetDeviceByIpIface", iface)
	if err != nil {
		st.Result, st.Detail = ResultUnchanged, "no such device yet; the configuration file covers it"
		return st, nil
	}
	body, err := bus.Call(ctx, nmDest, dev, propertiesGet, nmDest+".Device", "Managed")
	if err != nil {
		return st, fmt.Errorf("NetworkManager: Managed of %s: %w", iface, err)
	}
	if len(body) > 0 {
		if v, ok := body[0].(dbus.Variant); ok && v.Value() == false {
			st.Result, st.Detail = ResultUnchanged, "unmanaged"
			return st, nil
		}
	}
	if _, err := bus.Call(ctx, nmDest, dev, propertiesSet, nmDest+".Device", "Managed", dbus.MakeVariant(false)); err != nil {
		return st, fmt.Errorf("NetworkManager: unmanaging %s: %w", iface, err)
	}
	st.Result, st.Detail = ResultDone, "set unmanaged"
	return st, nil
}
