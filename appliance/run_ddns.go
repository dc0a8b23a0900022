package appliance

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"homenet/ddns"
	"homenet/ddns/provider"
)

// newDDNS returns the provider and the updater for cfg's [ddns] section,
// or nils when it has none. Errors name the key at fault.
func newDDNS(cfg Config, logger *slog.Logger) (provider.Provider, *ddns.Updater, error) {
	d := cfg.DDNS
	if d.Provider == "" {
		return nil, nil, nil
	}
	creds, err := provider.LoadCredentials(d.Provider, d.CredentialsFile, os.Getenv)
	if err != nil {
		if d.CredentialsFile == "" {
			return nil, nil, fmt.Errorf("ddns.credentials_file is empty, so the credentials come from the environment: %w", err)
		}
		return nil, nil, fmt.Errorf("ddns.credentials_file: %w", err)
	}
	p, err := provider.New(d.Provider, creds)
	if err != nil {
		where := "ddns.credentials_file " + d.CredentialsFile
		if d.CredentialsFile == "" {
			where = "the environment (ddns.credentials_file is empty)"
		}
		return nil, nil, fmt.Errorf("ddns.provider %s: %w (from %s)", d.Provider, err, where)
	}
	ttl := d.TTL
	if ttl == 0 {
		ttl = defaultTTL(d.Provider)
	}
	u := ddns.New(ddns.Config{
		Provider:     p,
		ProviderName: d.Provider,
		Zone:         cfg.DDNSZone(),
		Name:         normName(d.Name),
		IPv4:         d.IPv4,
		IPv6:         d.IPv6,
		TTL:          time.Duration(ttl) * time.Second,
		Logger:       logger,
	})
	return p, u, nil
}

// defaultTTL is the least TTL the provider's free plans accept.
func defaultTTL(provider string) int {
	switch provider {
	case "alidns", "dnspod":
		return 600
	}
	return 60
}
