package main

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

type recordsFlag map[string]netip.Addr

func (r recordsFlag) String() string { return fmt.Sprint(map[string]netip.Addr(r)) }

func (r recordsFlag) Set(s string) error {
	name, ip, ok := strings.Cut(s, "=")
	a, err := netip.ParseAddr(ip)
	if !ok || err != nil || !a.Is4() {
		return fmt.Errorf("want NAME=IPv4, got %q", s)
	}
	r[fqdn(name)] = a
	return nil
}

func fqdn(name string) string { return strings.ToLower(strings.TrimSuffix(name, ".")) + "." }

// dnsServe answers A queries for the configured names over UDP; everything
// else gets NXDOMAIN (or an empty answer for other types of a known name).
func dnsServe(args []string) error {
	fs := flag.NewFlagSet("dns-serve", flag.ExitOnError)
	listen := fs.String("listen", ":53", "UDP address")
	records := recordsFlag{}
	fs.Var(records, "record", "NAME=IPv4 (repeatable)")
	fs.Parse(args)
	pc, err := net.ListenPacket("udp", *listen)
	if err != nil {
		return err
	}
	fmt.Println("listening on", pc.LocalAddr())
	buf := make([]byte, 1500)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return err
		}
		resp, err := dnsAnswer(buf[:n], records)
		if err != nil {
			fmt.Printf("bad query from %v: %v\n", from, err)
			continue
		}
		fmt.Printf("query from %v\n", from)
		pc.WriteTo(resp, from)
	}
}

func dnsAnswer(query []byte, records recordsFlag) ([]byte, error) {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil {
		return nil, err
	}
	q, err := p.Question()
	if err != nil {
		return nil, err
	}
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired}
	ip, known := records[fqdn(q.Name.String())]
	if !known {
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(q); err != nil {
		return nil, err
	}
	if err := b.StartAnswers(); err != nil {
		return nil, err
	}
	if known && q.Type == dnsmessage.TypeA {
		err := b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60},
			dnsmessage.AResource{A: ip.As4()})
		if err != nil {
			return nil, err
		}
	}
	return b.Finish()
}

// dnsQuery sends one A query over UDP and prints the addresses.
func dnsQuery(args []string) error {
	fs := flag.NewFlagSet("dns-query", flag.ExitOnError)
	server := fs.String("server", "", "resolver host:port")
	name := fs.String("name", "", "name to resolve")
	timeout := fs.Duration("timeout", 3*time.Second, "timeout")
	fs.Parse(args)
	qname, err := dnsmessage.NewName(fqdn(*name))
	if err != nil {
		return err
	}
	var idb [2]byte
	rand.Read(idb[:])
	id := binary.BigEndian.Uint16(idb[:])
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: id, RecursionDesired: true})
	b.StartQuestions()
	b.Question(dnsmessage.Question{Name: qname, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET})
	msg, err := b.Finish()
	if err != nil {
		return err
	}
	c, err := net.Dial("udp", *server)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(*timeout))
	if _, err := c.Write(msg); err != nil {
		return err
	}
	buf := make([]byte, 1500)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return fmt.Errorf("no answer from %s: %w", *server, err)
		}
		var p dnsmessage.Parser
		h, err := p.Start(buf[:n])
		if err != nil || h.ID != id || !h.Response {
			continue
		}
		if h.RCode != dnsmessage.RCodeSuccess {
			return fmt.Errorf("%s: %v", *name, h.RCode)
		}
		p.SkipAllQuestions()
		answers, err := p.AllAnswers()
		if err != nil {
			return err
		}
		var ips []string
		for _, a := range answers {
			if r, ok := a.Body.(*dnsmessage.AResource); ok {
				ips = append(ips, netip.AddrFrom4(r.A).String())
			}
		}
		if len(ips) == 0 {
			return errors.New("no A records in answer")
		}
		fmt.Println(strings.Join(ips, " "))
		return nil
	}
}
