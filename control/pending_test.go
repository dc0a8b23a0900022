package control

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"homenet/control/store"

	"tailscale.com/tailcfg"
)

// startLogin registers n without a key and returns the code of its
// pending login.
func startLogin(t *testing.T, n *testNode) string {
	t.Helper()
	res := n.register(t, "")
	if res.AuthURL == "" || res.MachineAuthorized {
		t.Fatalf("register %s without key = %+v, want an AuthURL", n.name, res)
	}
	return res.AuthURL[strings.LastIndex(res.AuthURL, "/")+1:]
}

func TestPendingLogins(t *testing.T) {
	ctx := context.Background()
	s := newTestServer(t, "100.86.0.0/16")
	if got, err := s.PendingLogins(ctx); err != nil || len(got) != 0 {
		t.Fatalf("PendingLogins with none waiting = %+v, %v; want empty", got, err)
	}
	laptop, phone := newTestNode(t, s.url, "laptop"), newTestNode(t, s.url, "phone")
	c1 := startLogin(t, laptop)
	c2 := startLogin(t, phone)
	if again := startLogin(t, laptop); again != c1 {
		t.Errorf("the same device logging in again got code %q, want its first %q", again, c1)
	}

	got, err := s.PendingLogins(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("PendingLogins = %+v, want 2", got)
	}
	want := []struct{ code, host, mkey string }{
		{c1, "laptop", laptop.mk.Public().String()},
		{c2, "phone", phone.mk.Public().String()},
	}
	for i, w := range want {
		p := got[i]
		if p.Code != w.code || p.Hostname != w.host || p.OS != "linux" || p.MachineKey != w.mkey {
			t.Errorf("PendingLogins[%d] = %+v, want code %s, hostname %s, OS linux, machine key %s", i, p, w.code, w.host, w.mkey)
		}
		if time.Since(p.Created) > time.Minute || p.Created.IsZero() {
			t.Errorf("PendingLogins[%d].Created = %v, want about now", i, p.Created)
		}
	}
	if st, _ := s.Status(ctx); st.Pending != 2 {
		t.Errorf("Status.Pending = %d, want 2", st.Pending)
	}

	if _, err := s.ApproveRegistration(ctx, c1); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.PendingLogins(ctx); len(got) != 1 || got[0].Code != c2 {
		t.Errorf("PendingLogins after approving %s = %+v, want only %s", c1, got, c2)
	}
}

func TestPendingLoginsDropsExpired(t *testing.T) {
	ctx := context.Background()
	s := newTestServer(t, "100.86.0.0/16")
	code := startLogin(t, newTestNode(t, s.url, "old"))
	s.mu.Lock()
	s.pending[code].created = time.Now().Add(-pendingTTL - time.Minute)
	s.mu.Unlock()
	if got, _ := s.PendingLogins(ctx); len(got) != 0 {
		t.Errorf("PendingLogins = %+v, want the expired login left out", got)
	}
	if st, _ := s.Status(ctx); st.Pending != 0 {
		t.Errorf("Status.Pending = %d after listing, want 0", st.Pending)
	}
}

func TestDenyRegistration(t *testing.T) {
	ctx := context.Background()
	s := newTestServer(t, "100.86.0.0/16")
	n := newTestNode(t, s.url, "intruder")
	code := startLogin(t, n)
	// The device waits for approval, as tailscale up does.
	waiting := make(chan error, 1)
	go func() {
		_, err := s.awaitApproval(ctx, n.mk.Public(), s.authURL(code))
		waiting <- err
	}()
	time.Sleep(50 * time.Millisecond) // let it wait

	tests := []struct {
		name    string
		code    string
		wantErr error
	}{
		{"unknown code", "nope", store.ErrNotFound},
		{"waiting login", code, nil},
		{"denied twice", code, store.ErrNotFound},
	}
	for _, tt := range tests {
		err := s.DenyRegistration(ctx, tt.code)
		if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
			t.Errorf("%s: DenyRegistration(%q) = %v, want %v", tt.name, tt.code, err, tt.wantErr)
		}
	}

	select {
	case err := <-waiting:
		if _, ok := errors.AsType[registerError](err); !ok || !strings.Contains(err.Error(), "denied") {
			t.Errorf("the waiting device got %v, want a denied-login error", err)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("the waiting device was not told of the denial")
	}
	if got, _ := s.PendingLogins(ctx); len(got) != 0 {
		t.Errorf("PendingLogins after deny = %+v, want none", got)
	}
	if _, err := s.ApproveRegistration(ctx, code); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("approving a denied login = %v, want ErrNotFound", err)
	}
	if nodes, _ := s.Nodes(ctx); len(nodes) != 0 {
		t.Errorf("nodes after deny = %+v, want none", nodes)
	}
	// The client's poll with the old AuthURL learns that the login is over.
	res, err := s.register(ctx, n.mk.Public(), &tailcfg.RegisterRequest{NodeKey: n.nk.Public(), Followup: s.authURL(code)})
	if _, ok := errors.AsType[registerError](err); !ok || !strings.Contains(err.Error(), "expired") {
		t.Errorf("followup after deny = %+v, %v; want an expired-login error for the client", res, err)
	}
	// Denial is not a ban: logging in again waits for approval anew.
	if again := startLogin(t, n); again == code {
		t.Errorf("logging in after deny reused the denied code %q", code)
	}
}

// An owner clicking approve twice, or approve on one page and deny on
// another, must not crash the server: exactly one of them wins.
func TestDenyRacesApprove(t *testing.T) {
	ctx := context.Background()
	s := newTestServer(t, "100.86.0.0/16")
	for i := range 20 {
		code := startLogin(t, newTestNode(t, s.url, fmt.Sprintf("racer%d", i)))
		done := make(chan error, 2)
		go func() { _, err := s.ApproveRegistration(ctx, code); done <- err }()
		if i%2 == 0 {
			go func() { done <- s.DenyRegistration(ctx, code) }()
		} else {
			go func() { _, err := s.ApproveRegistration(ctx, code); done <- err }()
		}
		var ok int
		for range 2 {
			if err := <-done; err == nil {
				ok++
			} else if !errors.Is(err, store.ErrNotFound) {
				t.Errorf("login %s: %v", code, err)
			}
		}
		if ok != 1 {
			t.Errorf("login %s: %d of two approve/deny calls succeeded, want exactly one", code, ok)
		}
	}
}
