// Package e2e holds homenet's end-to-end tests: the real homenet binary and
// the real tailscaled/tailscale (built from the pinned tailscale.com module)
// in a lab of network namespaces with NAT routers (package e2e/lab). They
// need root; without it they skip.
//
//	sudo go test -timeout 30m ./e2e/...
//
// The first run builds tailscaled and tailscale (a few minutes) and caches
// them under ~/.cache/homenet-e2e. HOMENET_E2E_KEEP=1 keeps each lab's
// scratch directory (logs, state) for a look after the run;
// HOMENET_E2E_BINARY=PATH tests that homenet binary instead of building one.
package e2e
