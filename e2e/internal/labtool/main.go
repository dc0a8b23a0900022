// Command labtool is the e2e lab's helper, run inside lab namespaces: small
// clients and servers the tests need and that Debian's tools do not give
// exactly (a DNS responder on a chosen address, a DERP admission probe, an
// address echo to see what a NAT did, …).
//
//	labtool http-get [-timeout D] URL
//	labtool dns-serve -listen ADDR -record NAME=IP…
//	labtool dns-query -server ADDR -name NAME [-timeout D]
//	labtool derp-probe -derpmap FILE -key new|state:FILE [-timeout D]
//	labtool tcp-echo -listen ADDR
//	labtool tcp-check -addr ADDR [-timeout D]
//	labtool whoami -listen ADDR [-poke ADDR] (TCP and UDP)
//	labtool whoami-query -addr ADDR [-proto udp|tcp] [-lport N]
//	labtool portmap -status FILE -port PROTO:INTERNAL[:EXTERNAL]… [-gateway ADDR] [-lifetime D]
//	labtool flood -url URL [-duration D] [-workers N] [-reuse N] [-rate N] [-derpmap FILE]
//
// Exit status: 0 success, 1 failure, 2 usage, 3 (derp-probe) refused.
package main

import (
	"fmt"
	"os"
)

var commands = map[string]func(args []string) error{
	"http-get":     httpGet,
	"dns-serve":    dnsServe,
	"dns-query":    dnsQuery,
	"derp-probe":   derpProbe,
	"tcp-echo":     tcpEcho,
	"tcp-check":    tcpCheck,
	"whoami":       whoami,
	"whoami-query": whoamiQuery,
	"portmap":      portmapRun,
	"flood":        flood,
}

// exitError carries a specific exit status.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }

func main() {
	if len(os.Args) < 2 || commands[os.Args[1]] == nil {
		fmt.Fprintln(os.Stderr, "usage: labtool http-get|dns-serve|dns-query|derp-probe|tcp-echo|tcp-check|whoami|whoami-query|portmap|flood [flags]")
		os.Exit(2)
	}
	if err := commands[os.Args[1]](os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "labtool %s: %v\n", os.Args[1], err)
		if e, ok := err.(exitError); ok {
			os.Exit(e.code)
		}
		os.Exit(1)
	}
}
