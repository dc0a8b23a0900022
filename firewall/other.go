//go:build !linux

package firewall

import "errors"

var errNotLinux = errors.New("firewall: netfilter backends exist only on Linux")

func newIPTables(kind string) (Firewall, error) { return nil, errNotLinux }

func newNftables() (Firewall, error) { return nil, errNotLinux }

// RecordTables fails: there is no netfilter to record.
func RecordTables(path string) error { return errNotLinux }

// RemoveCreatedTables does nothing: there is no netfilter.
func RemoveCreatedTables(path string) (removed, kept []string, err error) { return nil, nil, nil }
