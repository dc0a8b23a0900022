// Package firewall installs and removes homenet's netfilter rules behind one
// interface with iptables (nft and legacy) and native nftables backends.
package firewall
