//go:build linux

package subnet

import (
	"net"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// rcvbuf returns SO_RCVBUF of c as the kernel reports it.
func rcvbuf(t *testing.T, c *net.UDPConn) int {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	var serr error
	if err := rc.Control(func(fd uintptr) { n, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF) }); err != nil {
		t.Fatal(err)
	}
	if serr != nil {
		t.Fatal(serr)
	}
	return n
}

func listenUDP(t *testing.T, buf int) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.SetReadBuffer(buf); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCapUDPReceiveBuffers(t *testing.T) {
	const before = 200 << 10 // under the default net.core.rmem_max
	const size = 32 << 10
	ours := listenUDP(t, before)
	other := listenUDP(t, before)
	otherBefore := rcvbuf(t, other)
	port := uint16(ours.LocalAddr().(*net.UDPAddr).Port)

	// A TCP listener on the same port number is no UDP socket.
	if ln, err := net.Listen("tcp4", ours.LocalAddr().String()); err == nil {
		defer ln.Close()
	}

	n, err := capUDPReceiveBuffers(port, size)
	if err != nil {
		t.Fatalf("capUDPReceiveBuffers(%d, %d): %v", port, size, err)
	}
	if n != 1 {
		t.Errorf("capUDPReceiveBuffers(%d, %d) changed %d sockets, want 1", port, size, n)
	}
	if got := rcvbuf(t, ours); got != 2*size {
		t.Errorf("SO_RCVBUF on port %d = %d, want %d (the kernel doubles)", port, got, 2*size)
	}
	if got := rcvbuf(t, other); got != otherBefore {
		t.Errorf("SO_RCVBUF on another port changed: %d, was %d", got, otherBefore)
	}

	// Already small enough: left alone.
	if n, err := capUDPReceiveBuffers(port, size); err != nil || n != 0 {
		t.Errorf("second capUDPReceiveBuffers = %d, %v; want 0, nil", n, err)
	}
}

func TestIsUDPSocketOn(t *testing.T) {
	udp := listenUDP(t, 64<<10)
	port := uint16(udp.LocalAddr().(*net.UDPAddr).Port)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	tcpPort := uint16(ln.Addr().(*net.TCPAddr).Port)
	var p [2]int
	if err := syscall.Pipe(p[:]); err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(p[0])
	defer syscall.Close(p[1])
	fdOf := func(sc syscall.Conn) int {
		rc, err := sc.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var fd int
		rc.Control(func(f uintptr) { fd = int(f) })
		return fd
	}
	tests := []struct {
		name string
		fd   int
		port uint16
		want bool
	}{
		{"UDP socket, its port", fdOf(udp), port, true},
		{"UDP socket, another port", fdOf(udp), port + 1, false},
		{"TCP listener, its port", fdOf(ln.(*net.TCPListener)), tcpPort, false},
		{"pipe", p[0], 0, false},
	}
	for _, tt := range tests {
		if got := isUDPSocketOn(tt.fd, tt.port); got != tt.want {
			t.Errorf("%s: isUDPSocketOn(%d, %d) = %v, want %v", tt.name, tt.fd, tt.port, got, tt.want)
		}
	}
}
