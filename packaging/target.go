package packaging

import (
	"fmt"
	"slices"
	"strings"
)

// Target is one release binary: a Go port and the names the package
// formats give the CPUs it runs on.
type Target struct {
	Name   string // short name, used in file names: amd64, arm64, arm, mipsle, mips
	GOARCH string
	GOARM  string // "7" for arm
	GOMIPS string // "softfloat" for mips and mipsle: most router SoCs have no FPU

	// OpenWrt lists the opkg architectures (/etc/opkg.conf "arch" lines)
	// this binary runs on. opkg refuses a package whose Architecture is not
	// listed there, so there is one .ipk per name.
	OpenWrt []string
	// Synology is the DSM "arch" values (space-separated in INFO), empty
	// when there is no Synology NAS with this CPU.
	Synology []string
	// QNAP is the QDK architectures, one QPKG each; empty when QNAP has no
	// NAS with this CPU.
	QNAP []string
	// QEMU is the qemu-user binary that runs this target on another host.
	QEMU string
}

// Env returns the environment for "go build" of t: a static binary
// (CGO_ENABLED=0) for linux.
func (t Target) Env() []string {
	env := []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=" + t.GOARCH}
	if t.GOARM != "" {
		env = append(env, "GOARM="+t.GOARM)
	}
	if t.GOMIPS != "" {
		env = append(env, "GOMIPS="+t.GOMIPS)
	}
	return env
}

// String describes t as in "linux/arm (GOARM=7)".
func (t Target) String() string {
	s := "linux/" + t.GOARCH
	switch {
	case t.GOARM != "":
		s += " (GOARM=" + t.GOARM + ")"
	case t.GOMIPS != "":
		s += " (GOMIPS=" + t.GOMIPS + ")"
	}
	return s
}

// Targets are the release targets, in the order the size table lists them.
//
// The ARM build needs ARMv7 with a VFPv3 FPU (GOARM=7 uses 16 double
// registers, so vfpv3-d16 is enough); ARMv5/v6 routers and NASes are not
// targets. MIPS builds use software floating point, which runs on every
// MIPS32 router whether or not it has an FPU.
var Targets = []Target{
	{
		Name: "amd64", GOARCH: "amd64",
		OpenWrt:  []string{"x86_64"},
		Synology: []string{"x86_64"},
		QNAP:     []string{"x86_64"},
		QEMU:     "qemu-x86_64-static",
	},
	{
		Name: "arm64", GOARCH: "arm64",
		OpenWrt:  []string{"aarch64_generic", "aarch64_cortex-a53", "aarch64_cortex-a72", "aarch64_cortex-a76"},
		Synology: []string{"armv8"},
		QNAP:     []string{"arm_64"},
		QEMU:     "qemu-aarch64-static",
	},
	{
		Name: "arm", GOARCH: "arm", GOARM: "7",
		OpenWrt: []string{"arm_cortex-a7_neon-vfpv4", "arm_cortex-a9_vfpv3-d16", "arm_cortex-a15_neon-vfpv4"},
		// Synology's ARMv7 models, each its own DSM arch name (as in
		// tailscale.com/release/dist/synology).
		Synology: []string{"armv7", "alpine", "armada370", "armada375", "armada38x", "armadaxp", "comcerto2k", "monaco"},
		QNAP:     []string{"arm-x41", "arm-x31"},
		QEMU:     "qemu-arm-static",
	},
	{
		Name: "mipsle", GOARCH: "mipsle", GOMIPS: "softfloat",
		OpenWrt: []string{"mipsel_24kc", "mipsel_74kc", "mipsel_mips32"},
		QEMU:    "qemu-mipsel-static",
	},
	{
		Name: "mips", GOARCH: "mips", GOMIPS: "softfloat",
		OpenWrt: []string{"mips_24kc", "mips_4kec", "mips_mips32"},
		QEMU:    "qemu-mips-static",
	},
}

// LookupTarget returns the target named name.
func LookupTarget(name string) (Target, error) {
	i := slices.IndexFunc(Targets, func(t Target) bool { return t.Name == name })
	if i < 0 {
		var names []string
		for _, t := range Targets {
			names = append(names, t.Name)
		}
		return Target{}, fmt.Errorf("unknown target %q; known: %s", name, strings.Join(names, ", "))
	}
	return Targets[i], nil
}
