package appliance

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// PlatformKind says how homenet runs as a service on a platform.
type PlatformKind string

const (
	// PlatformOpenWrt runs homenet from a procd init script and opens the
	// firewall with UCI sections.
	PlatformOpenWrt PlatformKind = "openwrt"
	// PlatformSynology runs homenet from its DSM 7 package.
	PlatformSynology PlatformKind = "synology"
	// PlatformQNAP runs homenet from its QTS package (QPKG).
	PlatformQNAP PlatformKind = "qnap"
	// PlatformSystemd is a Linux distribution running systemd, such as
	// Debian or Raspberry Pi OS: a systemd unit, started over D-Bus.
	PlatformSystemd PlatformKind = "systemd"
	// PlatformLinux is anything else, such as a container: no service is
	// installed; run "homenet serve" under your own supervisor.
	PlatformLinux PlatformKind = "linux"
)

// PackageName is the name of homenet's package on every platform: the
// Synology package ID (/var/packages/homenet), the QPKG name
// ([homenet] in /etc/config/qpkg.conf) and the OpenWrt package.
const PackageName = "homenet"

// Platform is what DetectPlatform found: the platform, and where homenet's
// files go on it. Paths are as seen on the platform, without the root
// prefix DetectPlatform was given.
type Platform struct {
	Kind PlatformKind `json:"kind"`
	// Name is for people, as in "OpenWrt 24.10.0" or "Synology DSM 7.2.1-69057".
	Name string `json:"name"`
	// ConfigPath is where init writes the config by default.
	ConfigPath string `json:"config_path"`
	// StateDir is the default state_dir. OpenWrt keeps it under /etc
	// because /var is RAM there.
	StateDir string `json:"state_dir"`
	// Binary is where the platform's service runs homenet from, unless
	// init is told otherwise.
	Binary string `json:"binary"`
	// PackageDir is the homenet package's directory on Synology and QNAP.
	PackageDir string `json:"package_dir,omitempty"`
	// Why lists the evidence, one line per decision.
	Why []string `json:"why"`
}

// Files init and uninstall manage, as seen on the platform.
const (
	systemdUnitPath  = "/etc/systemd/system/homenet.service"
	procdScriptPath  = "/etc/init.d/homenet"
	sysctlPath       = "/etc/sysctl.d/99-homenet.conf"
	nmConfPath       = "/etc/NetworkManager/conf.d/homenet.conf"
	defaultConfigDir = "/etc/homenet"
)

// DetectPlatform tells the platform from files under root ("/" on a live
// system): /etc/openwrt_release (OpenWrt), /etc.defaults/VERSION
// (Synology DSM), /etc/config/uLinux.conf or /etc/platform.conf (QNAP),
// /run/systemd/system (systemd is running) and /etc/os-release (the
// distribution's name). It reads nothing else and never fails: what it
// cannot tell becomes PlatformLinux.
func DetectPlatform(root string) Platform {
	read := func(p string) ([]byte, bool) {
		b, err := os.ReadFile(filepath.Join(root, p))
		return b, err == nil
	}
	exists := func(p string) bool {
		_, err := os.Stat(filepath.Join(root, p))
		return err == nil
	}

	if b, ok := read("/etc/openwrt_release"); ok {
		v := shellVars(b)
		name := v["DISTRIB_DESCRIPTION"]
		if name == "" {
			name = strings.TrimSpace("OpenWrt " + v["DISTRIB_RELEASE"])
		}
		return Platform{
			Kind:       PlatformOpenWrt,
			Name:       name,
			ConfigPath: defaultConfigDir + "/homenet.toml",
			StateDir:   defaultConfigDir + "/state",
			Binary:     "/usr/sbin/homenet",
			Why: []string{
				"OpenWrt: /etc/openwrt_release exists",
				"state in /etc/homenet/state: /var is RAM on OpenWrt",
			},
		}
	}

	if b, ok := read("/etc.defaults/VERSION"); ok {
		v := shellVars(b)
		ver := v["productversion"]
		if ver == "" {
			ver = v["majorversion"] + "." + v["minorversion"]
		}
		if v["buildnumber"] != "" {
			ver += "-" + v["buildnumber"]
		}
		pkg := path.Join("/var/packages", PackageName)
		p := Platform{
			Kind:       PlatformSynology,
			Name:       "Synology DSM " + ver,
			ConfigPath: pkg + "/etc/homenet.toml",
			StateDir:   pkg + "/var",
			Binary:     pkg + "/target/bin/homenet",
			PackageDir: pkg,
			Why:        []string{"Synology DSM: /etc.defaults/VERSION exists"},
		}
		if major, _ := strconv.Atoi(v["majorversion"]); major != 0 && major < 7 {
			p.Why = append(p.Why, fmt.Sprintf("DSM %d is older than 7, which the homenet package needs", major))
		}
		return p
	}

	if b, ok := read("/etc/config/uLinux.conf"); ok || exists("/etc/platform.conf") {
		sys := iniSection(b, "System")
		name := "QNAP QTS"
		if ver := sys["Version"]; ver != "" {
			name += " " + ver
		}
		p := Platform{Kind: PlatformQNAP, Name: name, Why: []string{"QNAP: /etc/config/uLinux.conf or /etc/platform.conf exists"}}
		qpkg, _ := read("/etc/config/qpkg.conf")
		if dir := iniSection(qpkg, PackageName)["Install_Path"]; dir != "" {
			p.PackageDir = dir
			p.Why = append(p.Why, fmt.Sprintf("the %s QPKG is installed in %s (/etc/config/qpkg.conf)", PackageName, dir))
		} else {
			p.PackageDir = path.Join("/share/CACHEDEV1_DATA/.qpkg", PackageName)
			p.Why = append(p.Why, fmt.Sprintf("the %s QPKG is not installed; assuming its usual place, %s", PackageName, p.PackageDir))
		}
		p.ConfigPath = p.PackageDir + "/etc/homenet.toml"
		p.StateDir = p.PackageDir + "/var"
		p.Binary = p.PackageDir + "/bin/homenet"
		return p
	}

	osr, _ := read("/etc/os-release")
	name := shellVars(osr)["PRETTY_NAME"]
	if name == "" {
		name = "Linux"
	}
	if model, ok := read("/proc/device-tree/model"); ok {
		if m := strings.TrimSpace(string(bytes.TrimRight(model, "\x00"))); m != "" {
			name += " on " + m
		}
	}
	p := Platform{
		Kind:       PlatformLinux,
		Name:       name,
		ConfigPath: defaultConfigDir + "/homenet.toml",
		StateDir:   "/var/lib/homenet",
		Binary:     "/usr/local/bin/homenet",
	}
	if fi, err := os.Stat(filepath.Join(root, "/run/systemd/system")); err == nil && fi.IsDir() {
		p.Kind = PlatformSystemd
		p.Why = append(p.Why, "systemd is running: /run/systemd/system exists")
	} else {
		p.Why = append(p.Why, "no service manager homenet knows: not OpenWrt, Synology or QNAP, and systemd is not running (no /run/systemd/system)")
	}
	return p
}

// shellVars parses KEY=value lines as in /etc/os-release and
// /etc/openwrt_release, with the value optionally in single or double
// quotes.
func shellVars(b []byte) map[string]string {
	m := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		k = strings.TrimSpace(strings.TrimPrefix(k, "export "))
		v = strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		m[k] = v
	}
	return m
}

// iniSection returns the "Key = value" pairs of [section] in an ini file
// as QNAP writes them (/etc/config/uLinux.conf, /etc/config/qpkg.conf).
func iniSection(b []byte, section string) map[string]string {
	m := map[string]string{}
	in := false
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			in = line[1:len(line)-1] == section
			continue
		}
		if !in || line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok {
			m[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return m
}
