package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"text/tabwriter"

	"homenet/appliance"
)

// versionInfo is what version prints.
type versionInfo struct {
	Version   string `json:"version"`
	Commit    string `json:"commit,omitempty"`
	Modified  bool   `json:"modified,omitempty"` // built from a tree with uncommitted changes
	Go        string `json:"go"`
	Platform  string `json:"platform"`
	Tailscale string `json:"tailscale"`
}

// buildVersion returns the versions of this binary: appliance.Version when
// set at link time (-ldflags "-X homenet/appliance.Version=v1.2.3"), else
// the module version "go build" stamps from the git tag.
func buildVersion() versionInfo {
	v := versionInfo{
		Version:   appliance.Version,
		Go:        runtime.Version(),
		Platform:  runtime.GOOS + "/" + runtime.GOARCH,
		Tailscale: "unknown",
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	if mv := bi.Main.Version; v.Version == "dev" && mv != "" && mv != "(devel)" {
		v.Version = mv
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Commit = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	for _, dep := range bi.Deps {
		if dep.Path == "tailscale.com" {
			v.Tailscale = dep.Version
			if dep.Replace != nil {
				v.Tailscale = dep.Replace.Version + " (replaced)"
			}
		}
	}
	return v
}

// version prints the versions of homenet, Go and tailscale.com.
func version(ctx context.Context, inv *invocation) error {
	v := buildVersion()
	if inv.opts.json {
		return printJSON(inv.stdout, v)
	}
	homenet := v.Version
	if v.Commit != "" {
		homenet += " (commit " + v.Commit[:min(12, len(v.Commit))]
		if v.Modified {
			homenet += ", modified"
		}
		homenet += ")"
	}
	tw := tabwriter.NewWriter(inv.stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "homenet\t%s\n", homenet)
	fmt.Fprintf(tw, "go\t%s %s\n", v.Go, v.Platform)
	fmt.Fprintf(tw, "tailscale.com\t%s\n", v.Tailscale)
	return tw.Flush()
}
