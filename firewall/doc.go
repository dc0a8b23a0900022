// Package firewall installs and removes homenet's netfilter rules behind one
// interface with iptables (nft and legacy) and native nftables backends.
//
// The caller describes what the gateway needs as a Rules value; a Firewall
// (from New, or New("auto") which follows Detect) makes netfilter match it
// exactly, checks it (Intact) and takes it away (Remove), in IPv4 and IPv6.
// The rules, in order, per hook:
//
//	input        lo: return; ! tun, tailnet source: drop; in tun: accept;
//	             udp WireGuardPort: accept
//	forward      ! tun, tailnet source: drop; in tun: accept; out tun: accept
//	postrouting  tailnet source out of ! tun: masquerade (MasqueradeLAN), or
//	             out of WANInterface only (ExitNode without MasqueradeLAN)
//	forward      tcp SYN in or out of tun: clamp MSS to the route MTU (mangle)
//
// Only our own TailnetPrefixes are anti-spoofed; there is no 100.64.0.0/10
// drop, which would cut off a WAN behind an ISP's CGNAT.
//
// Layout. iptables: chains HN-INPUT and HN-FORWARD (filter), HN-POSTROUTING
// (nat) and HN-MSS (mangle FORWARD), each reached by one jump at position 1
// of the built-in chain, in iptables and ip6tables, with the binaries of the
// chosen variant (iptables-nft / iptables-legacy). A stock tailscaled's ts-*
// chains beside them are left alone. nftables: one table, inet homenet,
// with base chains input, forward (filter), postrouting (nat, srcnat) and
// mss (filter at mangle priority), talking netlink. Remove works from these
// fixed names alone, so it also cleans up after a process killed with -9.
//
// iptables-nft creates the nf_tables tables and built-in chains our jumps
// need (ip and ip6 filter, nat, mangle) when they are missing, and Remove
// leaves them, since it cannot tell them from the system's own. A caller
// that records what exists before its first Apply (RecordTables, to a file
// that survives a kill -9) deletes, after Remove, those that are new and
// empty (RemoveCreatedTables). iptables-legacy's x_tables tables cannot be
// deleted and stay.
//
// The package parses no network input. A Firewall is safe for concurrent
// use, but two processes applying different Rules will fight.
package firewall
