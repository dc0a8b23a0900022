package packaging

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// MainPackage is what a release build compiles.
const MainPackage = "homenet/cmd/homenet"

// LDFlags returns the linker flags of a release binary: stripped (no
// symbol table, no DWARF), no build ID, and the version set.
func LDFlags(v Version) string {
	return "-s -w -buildid= -X homenet/appliance.Version=" + v.Semver
}

// BuildArgs returns the "go build" arguments (after "go") that build pkg
// for release to out.
func BuildArgs(v Version, out, pkg string) []string {
	return []string{"build", "-trimpath", "-tags", Tags(), "-ldflags", LDFlags(v), "-o", out, pkg}
}

// GoBuild builds homenet for t into out, from the module in dir. Go's
// output goes to stderr.
func GoBuild(ctx context.Context, dir string, t Target, v Version, out string) error {
	cmd := exec.CommandContext(ctx, "go", BuildArgs(v, out, MainPackage)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), t.Env()...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build for %s: %v\n%s", t, err, stderr.String())
	}
	return nil
}
