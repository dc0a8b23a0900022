package appliance

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"homenet/control"

	"rsc.io/qr"
)

// OnboardingKeyExpiry is how long the one-time key init creates is valid.
const OnboardingKeyExpiry = time.Hour

// DefaultAdminWait bounds how long init waits for a freshly started server
// to answer on its admin socket.
const DefaultAdminWait = 20 * time.Second

// Onboarding is what a phone (or any Tailscale client) needs to join.
type Onboarding struct {
	// ServerURL is what to enter as the custom coordination server.
	ServerURL string `json:"server_url"`
	// Key is a single-use pre-auth key, valid until KeyExpiry; empty when
	// the server was not running. KeyCommand then creates one.
	Key        string    `json:"key,omitempty"`
	KeyExpiry  time.Time `json:"key_expiry,omitzero"`
	KeyCommand string    `json:"key_command,omitempty"`
	// KeyError says why no key was created although the server should be
	// running.
	KeyError string `json:"key_error,omitempty"`
	// PasswordFile holds the admin password that approves a login in the
	// browser, the alternative to a key.
	PasswordFile string `json:"admin_password_file"`
}

// GatewayKeyOptions are those of a key for a home gateway that joins this
// server: single-use, valid for a day, tagged GatewayTag so that its routes
// and exit node are approved without asking.
func GatewayKeyOptions() control.AuthKeyOptions {
	return control.AuthKeyOptions{Tags: []string{GatewayTag}, Expiry: 24 * time.Hour}
}

// createOnboardingKey waits up to wait for the admin socket to answer and
// creates a pre-auth key with opts.
func createOnboardingKey(ctx context.Context, socket string, wait time.Duration, opts control.AuthKeyOptions) (string, control.AuthKeyInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	client := control.DialAdmin(socket)
	defer client.Close()
	var lastErr error
	for {
		_, err := client.Status(ctx)
		if err == nil {
			break
		}
		lastErr = err
		if _, unreachable := errors.AsType[*control.UnreachableError](err); !unreachable {
			return "", control.AuthKeyInfo{}, err
		}
		select {
		case <-ctx.Done():
			return "", control.AuthKeyInfo{}, fmt.Errorf("the server did not answer within %v: %w", wait, lastErr)
		case <-time.After(200 * time.Millisecond):
		}
	}
	info, key, err := client.CreateAuthKey(ctx, opts)
	if err != nil {
		return "", info, fmt.Errorf("creating a key: %w", err)
	}
	return key, info, nil
}

// QRCode renders text as a QR code for a terminal, two modules per
// character cell (Unicode half blocks) with a two-module quiet zone. Dark
// modules are drawn in the foreground colour; with ansi, escape codes set
// black on white, so that it scans on dark terminals too. Without ansi it
// suits a light background.
func QRCode(text string, ansi bool) (string, error) {
	code, err := qr.Encode(text, qr.M)
	if err != nil {
		return "", err
	}
	const quiet = 2
	n := code.Size + 2*quiet
	dark := func(x, y int) bool {
		x, y = x-quiet, y-quiet
		return x >= 0 && y >= 0 && x < code.Size && y < code.Size && code.Black(x, y)
	}
	var b strings.Builder
	for y := 0; y < n; y += 2 {
		if ansi {
			b.WriteString("\x1b[30;47m")
		}
		for x := 0; x < n; x++ {
			top, bottom := dark(x, y), y+1 < n && dark(x, y+1)
			switch {
			case top && bottom:
				b.WriteRune('█')
			case top:
				b.WriteRune('▀')
			case bottom:
				b.WriteRune('▄')
			default:
				b.WriteByte(' ')
			}
		}
		if ansi {
			b.WriteString("\x1b[0m")
		}
		b.WriteByte('\n')
	}
	return b.String(), nil
}
