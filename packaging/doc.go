// Package packaging says how homenet is built for release: the targets
// (GOARCH, GOARM, GOMIPS and what each platform calls them), the
// tailscale.com feature tags, the linker flags and the version numbers the
// package formats want.
//
// "go run ./packaging/build" builds every target and every package; the
// package formats live in packaging/openwrt, packaging/synology and
// packaging/qnap.
package packaging
