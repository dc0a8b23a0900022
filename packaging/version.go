package packaging

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
)

// Version is a release version: a semantic version and a build number that
// grows with every commit (the commit count), so that every package format
// sees upgrades as upgrades.
type Version struct {
	Semver string // "1.2.3"; "0.0.<build>" between releases
	Build  int
}

var semverRE = regexp.MustCompile(`^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$`)

// ParseVersion parses "1.2.3" or "1.2.3-45" (semver and build number).
func ParseVersion(s string) (Version, error) {
	s = strings.TrimPrefix(s, "v")
	sem, build, hasBuild := strings.Cut(s, "-")
	if !semverRE.MatchString(sem) {
		return Version{}, fmt.Errorf("version %q: want MAJOR.MINOR.PATCH[-BUILD]", s)
	}
	v := Version{Semver: sem}
	if hasBuild {
		n, err := strconv.Atoi(build)
		if err != nil || n < 0 {
			return Version{}, fmt.Errorf("version %q: build %q is not a number", s, build)
		}
		v.Build = n
	}
	return v, nil
}

// GitVersion derives the version from the git checkout in dir: the tag
// vMAJOR.MINOR.PATCH on HEAD if there is one, else 0.0.<commit count>; the
// build number is the commit count either way.
func GitVersion(ctx context.Context, dir string) (Version, error) {
	git := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = dir
		out, err := cmd.Output()
		return strings.TrimSpace(string(out)), err
	}
	count, err := git("rev-list", "--count", "HEAD")
	if err != nil {
		return Version{}, fmt.Errorf("git rev-list: %w", err)
	}
	n, err := strconv.Atoi(count)
	if err != nil {
		return Version{}, fmt.Errorf("git rev-list printed %q", count)
	}
	v := Version{Semver: fmt.Sprintf("0.0.%d", n), Build: n}
	if tags, err := git("tag", "--points-at", "HEAD", "--list", "v[0-9]*"); err == nil {
		for _, t := range strings.Fields(tags) {
			if semverRE.MatchString(strings.TrimPrefix(t, "v")) {
				v.Semver = strings.TrimPrefix(t, "v")
				break
			}
		}
	}
	return v, nil
}

// String is "1.2.3-45".
func (v Version) String() string { return fmt.Sprintf("%s-%d", v.Semver, v.Build) }

// Opkg is the OpenWrt package version, PKG_VERSION-rPKG_RELEASE style:
// "1.2.3-r45".
func (v Version) Opkg() string { return fmt.Sprintf("%s-r%d", v.Semver, v.Build) }

// Synology is the DSM package version, "<version>-<build>" as DSM wants it.
func (v Version) Synology() string { return fmt.Sprintf("%s-%d", v.Semver, v.Build) }

// QNAP is the QPKG version: QDK allows at most 10 characters.
func (v Version) QNAP() (string, error) {
	if len(v.Semver) > 10 {
		return "", fmt.Errorf("version %s is longer than the 10 characters a QPKG allows", v.Semver)
	}
	return v.Semver, nil
}
