//go:build linux

package subnet

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// capUDPReceiveBuffers lowers SO_RCVBUF to size bytes on this process's
// UDP sockets bound to port (magicsock's IPv4 and IPv6 sockets), where it
// is larger. magicsock offers no way to choose the size and creates new
// sockets when it rebinds, so the agent finds them by their port, again
// every so often. It returns how many sockets it changed.
func capUDPReceiveBuffers(port uint16, size int) (int, error) {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0, err
	}
	changed := 0
	for _, de := range ents {
		fd, err := strconv.Atoi(de.Name())
		if err != nil || !isUDPSocketOn(fd, port) {
			continue
		}
		// The kernel doubles what it is given, for its own overhead,
		// and reports the doubled figure.
		cur, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF)
		if err != nil || cur <= 2*size {
			continue
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, size); err != nil {
			return changed, fmt.Errorf("SO_RCVBUF %d on the UDP socket on port %d: %w", size, port, err)
		}
		changed++
	}
	return changed, nil
}

// isUDPSocketOn reports whether fd is a datagram socket bound to port.
func isUDPSocketOn(fd int, port uint16) bool {
	link, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil || !strings.HasPrefix(link, "socket:") {
		return false
	}
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil || typ != unix.SOCK_DGRAM {
		return false
	}
	proto, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PROTOCOL)
	if err != nil || proto != unix.IPPROTO_UDP {
		return false
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return false
	}
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return sa.Port == int(port)
	case *unix.SockaddrInet6:
		return sa.Port == int(port)
	}
	return false
}
