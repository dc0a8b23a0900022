package appliance

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"
)

// Bus is the part of the D-Bus system bus that init and uninstall use:
// systemd, firewalld and NetworkManager are all driven through it. Tests
// use a fake that records the calls.
type Bus interface {
	// NameHasOwner reports whether a service holds the well-known name,
	// that is, whether it is running.
	NameHasOwner(ctx context.Context, name string) (bool, error)
	// Call calls method ("interface.Member") on the object at path of the
	// service dest and returns the reply's body.
	Call(ctx context.Context, dest, path, method string, args ...any) ([]any, error)
	Close() error
}

// DialSystemBus connects to the D-Bus system bus.
func DialSystemBus() (Bus, error) {
	conn, err := dbus.ConnectSystemBus()
	if err != nil {
		return nil, fmt.Errorf("connecting to the D-Bus system bus: %w", err)
	}
	return systemBus{conn}, nil
}

type systemBus struct{ conn *dbus.Conn }

// busTimeout bounds one D-Bus call: systemd answers job requests at once,
// and a daemon that does not answer in this time is stuck.
const busTimeout = 30 * time.Second

// commandTimeout bounds one command, such as a firewall reload.
const commandTimeout = 2 * time.Minute

func (b systemBus) NameHasOwner(ctx context.Context, name string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, busTimeout)
	defer cancel()
	var ok bool
	err := b.conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.NameHasOwner", 0, name).Store(&ok)
	return ok, err
}

func (b systemBus) Call(ctx context.Context, dest, path, method string, args ...any) ([]any, error) {
	ctx, cancel := context.WithTimeout(ctx, busTimeout)
	defer cancel()
	call := b.conn.Object(dest, dbus.ObjectPath(path)).CallWithContext(ctx, method, 0, args...)
	return call.Body, call.Err
}

func (b systemBus) Close() error { return b.conn.Close() }

// callString calls method and returns the reply's first value as a string
// (a string, an object path, or a variant holding either).
func callString(ctx context.Context, b Bus, dest, path, method string, args ...any) (string, error) {
	body, err := b.Call(ctx, dest, path, method, args...)
	if err != nil {
		return "", err
	}
	if len(body) == 0 {
		return "", fmt.Errorf("%s: empty reply", method)
	}
	v := body[0]
	if vv, ok := v.(dbus.Variant); ok {
		v = vv.Value()
	}
	switch s := v.(type) {
	case string:
		return s, nil
	case dbus.ObjectPath:
		return string(s), nil
	}
	return "", fmt.Errorf("%s: reply is %T, not a string", method, v)
}

// callBool is callString for a boolean reply.
func callBool(ctx context.Context, b Bus, dest, path, method string, args ...any) (bool, error) {
	body, err := b.Call(ctx, dest, path, method, args...)
	if err != nil {
		return false, err
	}
	if len(body) == 0 {
		return false, fmt.Errorf("%s: empty reply", method)
	}
	v, ok := body[0].(bool)
	if !ok {
		return false, fmt.Errorf("%s: reply is %T, not a bool", method, body[0])
	}
	return v, nil
}

// dbusErrorName returns the D-Bus error name of err, such as
// "org.freedesktop.systemd1.NoSuchUnit", or "".
func dbusErrorName(err error) string {
	if e, ok := errors.AsType[dbus.Error](err); ok {
		return e.Name
	}
	if e, ok := errors.AsType[*dbus.Error](err); ok {
		return e.Name
	}
	return ""
}

// Runner runs commands on the host: the procd init script on OpenWrt and
// the package scripts on Synology and QNAP. Tests use a fake.
type Runner interface {
	// Run runs name with args and returns its combined output. A non-zero
	// exit is an error wrapping *exec.ExitError (or another error with an
	// ExitCode method).
	Run(ctx context.Context, name string, args ...string) ([]byte, error)
}

// ExecRunner runs commands with os/exec.
type ExecRunner struct{}

func (ExecRunner) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if len(msg) > 200 {
			msg = msg[:200] + "…"
		}
		if msg != "" {
			return out, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, msg)
		}
		return out, fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return out, nil
}

// exitedNonZero reports whether err says the command ran and exited with a
// non-zero status (as opposed to not running at all), as *exec.ExitError
// does.
func exitedNonZero(err error) bool {
	e, ok := errors.AsType[interface {
		error
		ExitCode() int
	}](err)
	return ok && e.ExitCode() > 0
}
