package provider

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadCredentials(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.env", "# alidns\n\nexport ALICLOUD_ACCESS_KEY = \"LTAIkey\"\nALICLOUD_SECRET_KEY='s3cret=='\n", 0o600)
	open := write("open.env", "ALICLOUD_ACCESS_KEY=k\n", 0o644)
	typo := write("typo.env", "ALICLOUD_ACESS_KEY=k\n", 0o600)
	junk := write("junk.env", "just a line\n", 0o400)
	env := map[string]string{"TENCENTCLOUD_SECRET_ID": "id", "TENCENTCLOUD_SECRET_KEY": "key", "OTHER": "x"}

	tests := []struct {
		name, provider, path string
		want                 map[string]string
		wantErr              []string
	}{
		{name: "file with comments, export and quotes", provider: "alidns", path: good,
			want: map[string]string{"ALICLOUD_ACCESS_KEY": "LTAIkey", "ALICLOUD_SECRET_KEY": "s3cret=="}},
		{name: "environment, known keys only", provider: "dnspod",
			want: map[string]string{"TENCENTCLOUD_SECRET_ID": "id", "TENCENTCLOUD_SECRET_KEY": "key"}},
		{name: "readable by others", provider: "alidns", path: open, wantErr: []string{open, "0644", "chmod 600"}},
		{name: "unknown key", provider: "alidns", path: typo, wantErr: []string{"line 1", "ALICLOUD_ACESS_KEY is not a alidns key"}},
		{name: "not KEY=VALUE", provider: "alidns", path: junk, wantErr: []string{"line 1", "want KEY=VALUE"}},
		{name: "missing file", provider: "alidns", path: filepath.Join(dir, "nope"), wantErr: []string{"nope", "no such file"}},
		{name: "unknown provider", provider: "godaddy", wantErr: []string{`unknown DNS provider "godaddy"`, "alidns, dnspod, cloudflare, rfc2136"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := LoadCredentials(tt.provider, tt.path, func(k string) string { return env[k] })
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("no error; want one saying %q", tt.wantErr)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not say %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Errorf("got %d keys, want %d", len(got), len(tt.want))
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
			if s := got.String(); strings.Contains(s, "s3cret") || strings.Contains(s, "LTAIkey") {
				t.Errorf("Credentials.String() leaks a value: %s", s)
			}
		})
	}
}

func TestNewNamesMissingKey(t *testing.T) {
	_, err := New("cloudflare", Credentials{})
	if err == nil || !strings.Contains(err.Error(), "CLOUDFLARE_DNS_API_TOKEN is missing") {
		t.Fatalf("New(cloudflare, {}) = %v; want an error naming the missing key", err)
	}
}
