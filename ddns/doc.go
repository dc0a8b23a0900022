// Package ddns keeps a DNS name's A and AAAA records pointing at this host.
// The caller says which addresses the name should have (Updater.Set, on
// every address change it sees); the Updater publishes them through a
// provider.Provider, retries failures with back-off and reports what it
// published and the last error for `homenet status`.
//
// A family whose address is missing has its record removed, so clients
// never dial an address the host no longer has. Records are written at
// start, on each change and once every resync interval, never on a timer
// tighter than that: DNS providers rate-limit their APIs.
package ddns
