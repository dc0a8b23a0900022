package appliance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"time"

	"homenet/control"
	"homenet/subnet"
)

// AuthKeyFile is where init --join keeps the pre-auth key, in the state dir.
const AuthKeyFile = "auth-key"

// JoinResult is how the gateway agent of a host that joins a control
// server elsewhere fared right after init started it.
type JoinResult struct {
	ControlURL string        `json:"control_url"`
	Status     subnet.Status `json:"status"`
	// Error says why the agent is not connected yet, if it is not.
	Error string `json:"error,omitempty"`
}

// checkJoin checks --join and --auth-key before anything is written.
func (in *initRun) checkJoin(existing *Config) error {
	o := &in.o
	if o.Join == "" {
		if o.AuthKey != "" {
			return errors.New("an auth key is only used with --join URL")
		}
		return nil
	}
	if err := validateServerURL(o.Join); err != nil {
		return fmt.Errorf("--join: %w", err)
	}
	if o.NoGateway {
		return errors.New("--join runs the gateway agent only; it cannot be combined with --lan none")
	}
	if o.ServerURL != "" || o.DDNS.Provider != "" {
		return errors.New("--join: this host joins a control server elsewhere, so --server-url and --ddns belong on that server")
	}
	if o.AuthKey == "" {
		if existing != nil && existing.Gateway.ControlURL == o.Join {
			return nil // registered before, or the key is in place
		}
		return fmt.Errorf("--join %s needs --auth-key KEY: create one on that server with homenet keys create --gateway", o.Join)
	}
	return CheckAuthKey(o.AuthKey)
}

// applyJoin makes c a config that joins o.Join, with the key in the state
// dir.
func (in *initRun) applyJoin(c *Config) {
	c.Gateway.ControlURL = in.o.Join
	c.Gateway.Enabled = true
	c.Gateway.AuthKeyFile = path.Join(c.StateDir, AuthKeyFile)
	c.Relay.Enabled = false
}

// writeAuthKey writes the --auth-key to the file the config names.
func (in *initRun) writeAuthKey(cfg *Config) error {
	if in.o.AuthKey == "" {
		return nil
	}
	p := cfg.Gateway.AuthKeyFile
	st := Step{What: "pre-auth key", Target: p, Result: ResultCreated}
	hp := filepath.Join(in.root, p)
	want := []byte(in.o.AuthKey + "\n")
	switch have, err := os.ReadFile(hp); {
	case err == nil && bytes.Equal(have, want):
		st.Result = ResultUnchanged
		in.step(st)
		return nil
	case err == nil:
		st.Result = ResultUpdated
	}
	if err := writeFileAtomic(hp, want, 0o600); err != nil {
		return fmt.Errorf("writing the pre-auth key: %w", err)
	}
	in.step(st)
	return nil
}

// DefaultJoinWait bounds how long init waits for a joining agent to
// connect to its control server.
const DefaultJoinWait = 30 * time.Second

// waitJoined waits for the started agent to connect to its control server
// and records how it fared.
func (in *initRun) waitJoined(ctx context.Context) {
	res := in.res.Join
	in.logf("Waiting for the gateway to join %s…", res.ControlURL)
	socket := filepath.Join(in.root, in.res.StateDir, "admin.sock")
	ctx, cancel := context.WithTimeout(ctx, in.o.AdminWait+DefaultJoinWait)
	defer cancel()
	client := control.DialAdmin(socket)
	defer client.Close()
	for {
		st, err := client.Status(ctx)
		if err == nil {
			if b, err := json.Marshal(st.Extra["gateway"]); err == nil {
				json.Unmarshal(b, &res.Status)
			}
			if res.Status.Connected && res.Status.State == "Running" {
				res.Error = ""
				return
			}
			res.Error = res.Status.LastError
		} else {
			res.Error = err.Error()
		}
		select {
		case <-ctx.Done():
			if res.Error == "" {
				res.Error = fmt.Sprintf("not connected after %v (state %s)", in.o.AdminWait+DefaultJoinWait, res.Status.State)
			}
			in.warn("not-joined", fmt.Sprintf("The gateway has not joined %s yet: %s.", res.ControlURL, res.Error),
				"It keeps trying; check with homenet status, and that this host can reach the URL.")
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
}
