//go:build !linux

package firewall

// CheckFW4 finds no fw4: there is no netfilter.
func CheckFW4(tun string) (FW4, error) { return FW4{}, nil }
