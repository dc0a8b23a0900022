package control

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"homenet/control/store"
)

// PendingLogin is an interactive login waiting for the owner: the device
// ran `tailscale up` (or logged in from an app) without a key and waits
// for ApproveRegistration or DenyRegistration with Code.
type PendingLogin struct {
	Code       string    `json:"code"` // the last path element of the login's AuthURL
	Hostname   string    `json:"hostname"`
	OS         string    `json:"os,omitempty"`
	MachineKey string    `json:"machine_key"`
	Created    time.Time `json:"created"`
}

// PendingLogins lists the interactive logins waiting for approval, oldest
// first. Logins older than the pending TTL are dropped, as a new login
// would drop them, so that the list and Status.Pending show only what can
// still be approved.
func (s *Server) PendingLogins(ctx context.Context) ([]PendingLogin, error) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]PendingLogin, 0, len(s.pending))
	for code, p := range s.pending {
		if now.Sub(p.created) > pendingTTL {
			delete(s.pending, code)
			continue
		}
		pl := PendingLogin{
			Code:       p.code,
			Hostname:   hostnameOf(p.hostinfo),
			MachineKey: p.machineKey.String(),
			Created:    p.created,
		}
		if p.hostinfo != nil {
			pl.OS = p.hostinfo.OS
		}
		out = append(out, pl)
	}
	slices.SortFunc(out, func(a, b PendingLogin) int {
		return cmp.Or(a.Created.Compare(b.Created), cmp.Compare(a.Code, b.Code))
	})
	return out, nil
}

// DenyRegistration refuses the interactive login with code: the device's
// wait for approval ends with "the owner denied this login". The device is
// not banned; logging in again starts a new login with a new code.
func (s *Server) DenyRegistration(ctx context.Context, code string) error {
	s.mu.Lock()
	p := s.pending[code]
	delete(s.pending, code)
	if p != nil {
		p.denied = true
	}
	s.mu.Unlock()
	if p == nil {
		return fmt.Errorf("no login is waiting with code %q: %w", code, store.ErrNotFound)
	}
	close(p.done)
	s.log.Info("control: login denied", "code", code, "hostname", hostnameOf(p.hostinfo))
	return nil
}
