//go:build linux

package firewall

import (
	"errors"
	"fmt"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// recheckEvery is how long Intact trusts a quiet nf_tables: a safety net
// for a notification we cannot get (none is known), not a polling rate.
const recheckEvery = 60 * time.Second

// intactCache lets Intact of an nf_tables-based backend (nftables,
// iptables-nft) skip reading the ruleset back when nothing in nf_tables has
// changed since the last read found the rules intact. The watchdog calls
// Intact every few seconds, and reading back costs a dozen netlink dumps
// or, for iptables-nft, two forks of iptables-save; the answer almost never
// changes.
//
// It is not safe for concurrent use: the backend's mutex guards it.
type intactCache struct {
	changes *nftChanges // nil until the first check, or if we cannot listen
	tried   bool        // newNftChanges was called
	maxAge  time.Duration

	ok    bool      // rules were intact at the last read, at time at
	rules Rules     // what that read checked for
	at    time.Time // when that read started
}

func newIntactCache() *intactCache {
	return &intactCache{maxAge: recheckEvery}
}

// fresh reports whether r is known to be intact without reading the
// ruleset. When it returns false, the caller reads the ruleset and calls
// store. A nil cache is never fresh.
//
// fresh drains the change notifications before the caller reads: a change
// made while the caller reads is then still queued for the next call, so
// a change is never both missed by the read and drained unseen.
func (c *intactCache) fresh(r Rules) bool {
	if c == nil {
		return false
	}
	if !c.tried {
		c.tried = true
		// Without notifications (no CAP_NET_ADMIN for the group, say),
		// every Intact reads the ruleset, as it would without a cache.
		c.changes, _ = newNftChanges()
	}
	if c.changes == nil {
		return false
	}
	changed := c.changes.changed()
	if changed || !c.ok || time.Since(c.at) >= c.maxAge || !r.equal(c.rules) {
		c.ok = false
		c.at = time.Now()
		return false
	}
	return true
}

// store records what the read that followed fresh found.
func (c *intactCache) store(r Rules, ok bool) {
	if c == nil {
		return
	}
	c.ok = ok
	c.rules = r.clone()
}

// forget makes the next fresh false, for Apply and Remove: they change
// the ruleset, or find out it was not what we thought.
func (c *intactCache) forget() {
	if c != nil {
		c.ok = false
	}
}

// nftChanges listens to nf_tables' change notifications: the netlink
// multicast group NFNLGRP_NFTABLES, which `nft monitor` also uses. Every
// commit to nf_tables, by anyone and in any table (iptables-nft's
// included), sends at least one message (NFT_MSG_NEWGEN) to it.
//
// It has no goroutine: changed drains the socket when asked. The kernel
// queues a commit's notifications on every listening socket before the
// commit returns to whoever made it, so a change that completed before
// changed is called is always seen, without any race with a reader in
// the background.
type nftChanges struct {
	fd  int
	buf []byte
}

func newNftChanges() (*nftChanges, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_NETFILTER)
	if err != nil {
		return nil, fmt.Errorf("firewall: netlink socket for nf_tables notifications: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("firewall: binding netlink socket for nf_tables notifications: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_ADD_MEMBERSHIP, unix.NFNLGRP_NFTABLES); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("firewall: joining nf_tables notifications: %w", err)
	}
	// Messages are only counted, never parsed: a short buffer will do,
	// since a datagram's unread rest is dropped.
	c := &nftChanges{fd: fd, buf: make([]byte, 512)}
	// The Firewall interface has no Close; the socket goes with the
	// backend value.
	runtime.AddCleanup(c, func(fd int) { unix.Close(fd) }, fd)
	return c, nil
}

// changed reports whether any notification arrived since the last call,
// or may have: an overflowed queue (ENOBUFS) or a broken socket count as
// a change. It empties the queue.
func (c *nftChanges) changed() bool {
	changed := false
	for {
		_, _, err := unix.Recvfrom(c.fd, c.buf, unix.MSG_DONTWAIT)
		switch {
		case err == nil:
			changed = true
		case errors.Is(err, unix.EINTR):
		case errors.Is(err, unix.EAGAIN):
			return changed
		case errors.Is(err, unix.ENOBUFS):
			changed = true // notifications were lost; keep draining
		default:
			return true
		}
	}
}
