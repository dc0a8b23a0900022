// Package pkgtest has helpers for the package formats' tests.
package pkgtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// FakeBinary writes a small stand-in for the homenet binary and returns its
// path: package layout tests need a file, not a 20 MB build.
func FakeBinary(t testing.TB) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "homenet")
	if err := os.WriteFile(p, []byte("#!/bin/sh\necho homenet stand-in \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

var (
	shellcheckOnce sync.Once
	shellcheckPath string
)

// CheckShell checks the syntax of a shell script with "sh -n" and, when
// shellcheck is installed (.ci/run installs it), lints it as POSIX sh.
// name is for messages.
func CheckShell(t *testing.T, name string, script []byte) {
	t.Helper()
	if !strings.HasPrefix(string(script), "#!/bin/sh") {
		t.Errorf("%s: does not start with #!/bin/sh", name)
	}
	p := filepath.Join(t.TempDir(), filepath.Base(name))
	if err := os.WriteFile(p, script, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("sh", "-n", p).CombinedOutput(); err != nil {
		t.Errorf("sh -n %s: %v\n%s", name, err, out)
	}
	shellcheckOnce.Do(func() { shellcheckPath, _ = exec.LookPath("shellcheck") })
	if shellcheckPath == "" {
		t.Logf("shellcheck not installed: only sh -n checked %s", name)
		return
	}
	if out, err := exec.Command(shellcheckPath, "-s", "sh", "-S", "style", p).CombinedOutput(); err != nil {
		t.Errorf("shellcheck %s: %v\n%s", name, err, out)
	}
}

// Fields parses "Key: value" lines (opkg control) or key="value" lines
// (Synology INFO, qpkg.cfg) into a map. Continuation lines (starting with
// a space) are appended to the previous value.
func Fields(t *testing.T, text string, sep string) map[string]string {
	t.Helper()
	m := map[string]string{}
	last := ""
	for _, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		if strings.HasPrefix(line, " ") && last != "" {
			m[last] += "\n" + strings.TrimPrefix(line, " ")
			continue
		}
		k, v, ok := strings.Cut(line, sep)
		if !ok {
			t.Errorf("line %q has no %q", line, sep)
			continue
		}
		v = strings.TrimSpace(v)
		if sep == "=" {
			if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
				t.Errorf("line %q: value is not double-quoted", line)
			} else {
				v = v[1 : len(v)-1]
			}
		}
		if _, dup := m[k]; dup {
			t.Errorf("field %q appears twice", k)
		}
		m[k] = v
		last = k
	}
	return m
}
