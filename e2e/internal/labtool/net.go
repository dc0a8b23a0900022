package main

import (
	"bytes"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

func httpGet(args []string) error {
	fs := flag.NewFlagSet("http-get", flag.ExitOnError)
	timeout := fs.Duration("timeout", 5*time.Second, "request timeout")
	fs.Parse(args)
	if fs.NArg() != 1 {
		return errors.New("want one URL")
	}
	c := &http.Client{Timeout: *timeout}
	resp, err := c.Get(fs.Arg(0))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	fmt.Printf("%s\n%s\n", resp.Status, body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s", resp.Status)
	}
	return nil
}

// tcpEcho echoes every connection back to itself.
func tcpEcho(args []string) error {
	fs := flag.NewFlagSet("tcp-echo", flag.ExitOnError)
	listen := fs.String("listen", ":7777", "TCP address")
	fs.Parse(args)
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	fmt.Println("listening on", ln.Addr())
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			c.SetDeadline(time.Now().Add(time.Minute))
			io.Copy(c, c)
		}()
	}
}

// tcpCheck sends 64 KiB of random bytes to an echo server and checks they
// come back unchanged.
func tcpCheck(args []string) error {
	fs := flag.NewFlagSet("tcp-check", flag.ExitOnError)
	addr := fs.String("addr", "", "echo server host:port")
	timeout := fs.Duration("timeout", 10*time.Second, "overall timeout")
	fs.Parse(args)
	c, err := net.DialTimeout("tcp", *addr, *timeout)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(*timeout))
	want := make([]byte, 64<<10)
	rand.Read(want)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(want)
		errc <- err
	}()
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil {
		return fmt.Errorf("reading echo: %w", err)
	}
	if err := <-errc; err != nil {
		return err
	}
	if !bytes.Equal(got, want) {
		return errors.New("echo differs from what was sent")
	}
	fmt.Printf("ok: %d bytes echoed by %s from %s\n", len(want), c.RemoteAddr(), c.LocalAddr())
	return nil
}

// whoami tells every TCP or UDP client the address it came from.
func whoami(args []string) error {
	fs := flag.NewFlagSet("whoami", flag.ExitOnError)
	listen := fs.String("listen", ":9999", "TCP and UDP address")
	poke := fs.String("poke", "", "host:port to send one unsolicited UDP packet to from the listening port, first")
	fs.Parse(args)
	pc, err := net.ListenPacket("udp", *listen)
	if err != nil {
		return err
	}
	if *poke != "" {
		to, err := net.ResolveUDPAddr("udp", *poke)
		if err != nil {
			return err
		}
		if _, err := pc.WriteTo([]byte("poke"), to); err != nil {
			return err
		}
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	fmt.Println("listening on", *listen)
	go func() {
		buf := make([]byte, 1500)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo([]byte(from.String()), from)
		}
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		io.WriteString(c, c.RemoteAddr().String())
		c.Close()
	}
}

// whoamiQuery prints the address a whoami server saw us come from.
func whoamiQuery(args []string) error {
	fs := flag.NewFlagSet("whoami-query", flag.ExitOnError)
	addr := fs.String("addr", "", "whoami server host:port")
	proto := fs.String("proto", "udp", "udp or tcp")
	lport := fs.Int("lport", 0, "local port to send from (0: any)")
	timeout := fs.Duration("timeout", 3*time.Second, "timeout")
	fs.Parse(args)
	d := net.Dialer{Timeout: *timeout}
	if *lport != 0 {
		la := net.JoinHostPort("", strconv.Itoa(*lport))
		var err error
		if *proto == "udp" {
			d.LocalAddr, err = net.ResolveUDPAddr("udp", la)
		} else {
			d.LocalAddr, err = net.ResolveTCPAddr("tcp", la)
		}
		if err != nil {
			return err
		}
	}
	c, err := d.Dial(*proto, *addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(*timeout))
	if *proto == "udp" {
		if _, err := c.Write([]byte("who")); err != nil {
			return err
		}
	}
	buf := make([]byte, 256)
	n, err := c.Read(buf)
	if err != nil {
		return err
	}
	fmt.Println(string(buf[:n]))
	return nil
}
