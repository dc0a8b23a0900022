//go:build !linux

package firewall

import "errors"

var errNotLinux = errors.New("firewall: netfilter backends exist only on Linux")

func newIPTables(kind string) (Firewall, error) { return nil, errNotLinux }

func newNftables() (Firewall, error) { return nil, errNotLinux }
