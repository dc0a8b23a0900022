package appliance

import (
	"strings"
	"testing"
)

func TestDetectPlatform(t *testing.T) {
	tests := []struct {
		name      string
		pc        platformCase
		wantKind  PlatformKind
		wantName  string
		wantState string
		wantWhy   string // in some Why line
	}{
		{
			name:     "OpenWrt without a description",
			pc:       platformCase{files: map[string]string{"/etc/openwrt_release": "DISTRIB_ID=\"OpenWrt\"\nDISTRIB_RELEASE=\"23.05.5\"\n"}},
			wantKind: PlatformOpenWrt, wantName: "OpenWrt 23.05.5", wantState: "/etc/homenet/state", wantWhy: "/var is RAM",
		},
		{
			name:     "OpenWrt wins over a running systemd",
			pc:       platformCase{files: map[string]string{"/etc/openwrt_release": openwrtRelease}, dirs: []string{"/run/systemd/system"}},
			wantKind: PlatformOpenWrt, wantName: "OpenWrt 24.10.0 r28427-6df0e3d02a",
		},
		{
			name:     "DSM 6 is named as too old",
			pc:       platformCase{files: map[string]string{"/etc.defaults/VERSION": "majorversion=\"6\"\nminorversion=\"2\"\nproductversion=\"6.2.4\"\nbuildnumber=\"25556\"\n"}},
			wantKind: PlatformSynology, wantName: "Synology DSM 6.2.4-25556", wantState: "/var/packages/homenet/var", wantWhy: "older than 7",
		},
		{
			name:     "QNAP without the QPKG assumes its usual place",
			pc:       platformCase{files: map[string]string{"/etc/config/uLinux.conf": qnapULinux}},
			wantKind: PlatformQNAP, wantName: "QNAP QTS 5.1.7", wantState: "/share/CACHEDEV1_DATA/.qpkg/homenet/var", wantWhy: "not installed",
		},
		{
			name:     "QNAP by platform.conf, QPKG on another volume",
			pc:       platformCase{files: map[string]string{"/etc/platform.conf": "x", "/etc/config/qpkg.conf": "[other]\nInstall_Path = /x\n\n[homenet]\nInstall_Path = /share/CACHEDEV2_DATA/.qpkg/homenet\n"}},
			wantKind: PlatformQNAP, wantName: "QNAP QTS", wantState: "/share/CACHEDEV2_DATA/.qpkg/homenet/var", wantWhy: "installed in /share/CACHEDEV2_DATA",
		},
		{
			name:     "Raspberry Pi OS 32-bit with systemd",
			pc:       platformCase{files: map[string]string{"/etc/os-release": "PRETTY_NAME=\"Raspbian GNU/Linux 12 (bookworm)\"\nID=raspbian\n"}, dirs: []string{"/run/systemd/system"}},
			wantKind: PlatformSystemd, wantName: "Raspbian GNU/Linux 12 (bookworm)", wantState: "/var/lib/homenet", wantWhy: "systemd is running",
		},
		{
			name:     "nothing known",
			pc:       platformCase{},
			wantKind: PlatformLinux, wantName: "Linux", wantState: "/var/lib/homenet", wantWhy: "no service manager",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := DetectPlatform(makeRoot(t, tt.pc))
			if p.Kind != tt.wantKind || p.Name != tt.wantName {
				t.Errorf("got %s %q, want %s %q", p.Kind, p.Name, tt.wantKind, tt.wantName)
			}
			if tt.wantState != "" && p.StateDir != tt.wantState {
				t.Errorf("state dir %s, want %s", p.StateDir, tt.wantState)
			}
			if tt.wantWhy != "" && !strings.Contains(strings.Join(p.Why, "\n"), tt.wantWhy) {
				t.Errorf("why %q does not mention %q", p.Why, tt.wantWhy)
			}
		})
	}
}
