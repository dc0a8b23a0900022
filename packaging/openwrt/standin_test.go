package openwrt

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"homenet/appliance"
)

// The script tests run the package's shell scripts with sh against
// stand-ins for what OpenWrt provides: uci, homenet itself, pidof, the
// network and firewall init scripts, /etc/rc.common and procd.sh. homenet
// is this test binary, re-executed with standinEnv set; every stand-in
// appends its calls to the file named by $STANDIN_LOG.

const standinEnv = "HOMENET_OPENWRT_STANDIN"

func TestMain(m *testing.M) {
	switch os.Getenv(standinEnv) {
	case "":
		os.Exit(m.Run())
	case "homenet":
		os.Exit(homenetStandin(os.Args[1:]))
	}
	// Never run the tests from a stand-in: they would start stand-ins.
	fmt.Fprintf(os.Stderr, "no stand-in %q\n", os.Getenv(standinEnv))
	os.Exit(2)
}

// logCall appends a stand-in's call to $STANDIN_LOG.
func logCall(words ...string) {
	f, err := os.OpenFile(os.Getenv("STANDIN_LOG"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, "stand-in:", err)
		os.Exit(3)
	}
	defer f.Close()
	fmt.Fprintln(f, strings.Join(words, " "))
}

// homenetStandin answers "homenet ports --config FILE" as the real command
// does (protocol, port, name, role), from FILE under $IPKG_INSTROOT, with
// appliance.Ports, which the real command prints.
func homenetStandin(args []string) int {
	logCall(append([]string{"homenet"}, args...)...)
	if len(args) != 3 || args[0] != "ports" || args[1] != "--config" {
		fmt.Fprintf(os.Stderr, "homenet stand-in: unexpected arguments %q\n", args)
		return 2
	}
	cfg, err := appliance.LoadConfig(args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for _, p := range appliance.Ports(&cfg) {
		fmt.Printf("%s  %s  %s  %s\n", p.Proto, p.Port, p.Name, p.Role)
	}
	return 0
}

// uciStore is the uci stand-in's state as the tests read it: sections in
// order, and the configs changed since their last commit.
type uciStore struct {
	Sections []*uciSec
	Dirty    map[string]bool
}

type uciSec struct {
	Config, Name, Type string
	Opts               []*uciOpt
}

type uciOpt struct {
	Name   string
	Values []string
	List   bool
}

func (s *uciSec) opt(name string) *uciOpt {
	for _, o := range s.Opts {
		if o.Name == name {
			return o
		}
	}
	return nil
}

// Get returns an option's value (a list's values joined by spaces, as uci
// get prints them) and whether it is set.
func (s *uciSec) Get(name string) (string, bool) {
	o := s.opt(name)
	if o == nil {
		return "", false
	}
	return strings.Join(o.Values, " "), true
}

func (st *uciStore) section(config, name string) *uciSec {
	for _, s := range st.Sections {
		if s.Config == config && s.Name == name {
			return s
		}
	}
	return nil
}

// parseUCIStore reads the stand-in's text store (see uciScript).
func parseUCIStore(b []byte) (*uciStore, error) {
	st := &uciStore{Dirty: map[string]bool{}}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if line == "" {
			continue
		}
		f := strings.SplitN(line, " ", 3)
		if f[0] == "D" && len(f) == 2 {
			st.Dirty[f[1]] = true
			continue
		}
		if len(f) != 3 {
			return nil, fmt.Errorf("uci store: bad line %q", line)
		}
		parts := strings.SplitN(f[1], ".", 3)
		switch {
		case f[0] == "S" && len(parts) == 2:
			st.Sections = append(st.Sections, &uciSec{Config: parts[0], Name: parts[1], Type: f[2]})
		case (f[0] == "O" || f[0] == "L") && len(parts) == 3:
			s := st.section(parts[0], parts[1])
			if s == nil {
				return nil, fmt.Errorf("uci store: option of a missing section: %q", line)
			}
			o := s.opt(parts[2])
			if o == nil {
				o = &uciOpt{Name: parts[2], List: f[0] == "L"}
				s.Opts = append(s.Opts, o)
			}
			o.Values = append(o.Values, f[2])
		default:
			return nil, fmt.Errorf("uci store: bad line %q", line)
		}
	}
	return st, nil
}

// text is the store in the stand-in's format.
func (st *uciStore) text() string {
	var b strings.Builder
	for _, s := range st.Sections {
		fmt.Fprintf(&b, "S %s.%s %s\n", s.Config, s.Name, s.Type)
		for _, o := range s.Opts {
			kind := "O"
			if o.List {
				kind = "L"
			}
			for _, v := range o.Values {
				fmt.Fprintf(&b, "%s %s.%s.%s %s\n", kind, s.Config, s.Name, o.Name, v)
			}
		}
	}
	for c := range st.Dirty {
		fmt.Fprintf(&b, "D %s\n", c)
	}
	return b.String()
}

// Stand-ins written as shell scripts into the fake root.
const (
	// uciScript stands in for uci: it is a shell script, not this test
	// binary, because the scripts call uci dozens of times.
	uciScript = `#!/bin/sh
# uci stand-in: get, set, add_list, delete, commit and show on a text
# store ($STANDIN_UCI), one entry a line: "S config.section type",
# "O config.section.option value", "L config.section.option value" (a
# list item) and "D config" (changed since its last commit).
echo "uci $*" >>"$STANDIN_LOG"
q=
[ "$1" = -q ] && { q=1; shift; }
db=$STANDIN_UCI
fail() { [ -n "$q" ] || echo "uci: $1" >&2; exit 1; }
cmd=$1
arg=$2
key=${arg%%=*}
val=${arg#*=}
conf=${key%%.*}
case $key in
*.*.*) sec=${key%.*} opt=1 ;;
*.*) sec=$key opt='' ;;
*) sec='' opt='' ;;
esac
entries() { awk -v t="$1" -v k="$2" '$1 ~ "^[" t "]$" && $2 == k { sub(/^[^ ]+ [^ ]+ /, ""); print }' "$db"; }
drop() { awk -v k="$1" -v p="$1." '!($2 == k || index($2, p) == 1)' "$db" >"$db.new" && mv "$db.new" "$db"; }
dirty() { grep -qx "D $conf" "$db" || echo "D $conf" >>"$db"; }
has_sec() { [ -n "$(entries S "$sec")" ]; }
case $cmd in
get)
	[ -n "$sec" ] && has_sec || fail "Entry not found"
	if [ -z "$opt" ]; then
		entries S "$sec"
	else
		v=$(entries OL "$key")
		[ -n "$v" ] || fail "Entry not found"
		echo "$v" | paste -sd' ' -
	fi
	;;
show)
	awk -v c="$arg" '$1 == "S" && (c == "" || index($2, c ".") == 1) { print $2 "=" $3 }' "$db"
	;;
set | add_list)
	[ -n "$sec" ] && [ "$key" != "$arg" ] || fail "Invalid argument"
	if [ -z "$opt" ]; then
		[ "$cmd" = set ] || fail "Invalid argument"
		has_sec && awk -v k="$key" '!($1 == "S" && $2 == k)' "$db" >"$db.new" && mv "$db.new" "$db"
		echo "S $key $val" >>"$db"
	else
		has_sec || fail "Invalid argument"
		if [ "$cmd" = set ]; then
			drop "$key"
			echo "O $key $val" >>"$db"
		else
			echo "L $key $val" >>"$db"
		fi
	fi
	dirty
	;;
delete)
	[ -n "$sec" ] && has_sec || fail "Entry not found"
	drop "$key"
	dirty
	;;
commit)
	grep -v "^D ${arg:-.*}\$" "$db" >"$db.new"
	mv "$db.new" "$db"
	;;
*) fail "unknown command $cmd" ;;
esac
exit 0
`

	// recordScript records its own path (without the root) and arguments.
	recordScript = `#!/bin/sh
echo "${0#"$IPKG_INSTROOT"} $*" >>"$STANDIN_LOG"
`
	// rcCommon stands in for base-files' /etc/rc.common: the parts a procd
	// init script uses, reading the same files under $IPKG_INSTROOT.
	rcCommon = `#!/bin/sh
. "$IPKG_INSTROOT/lib/functions.sh"
initscript=$1
action=${2:-help}
shift 2
name=$(basename "$initscript")
start_service() { return 0; }
stop_service() { return 0; }
service_triggers() { return 0; }
enable() {
	ln -sf "../init.d/$name" "$IPKG_INSTROOT/etc/rc.d/S$START$name"
	ln -sf "../init.d/$name" "$IPKG_INSTROOT/etc/rc.d/K$STOP$name"
}
disable() { rm -f "$IPKG_INSTROOT/etc/rc.d/S"??"$name" "$IPKG_INSTROOT/etc/rc.d/K"??"$name"; }
enabled() { [ -x "$IPKG_INSTROOT/etc/rc.d/S$START$name" ]; }
. "$initscript"
[ -n "$USE_PROCD" ] || { echo "not a procd script" >&2; exit 2; }
. "$IPKG_INSTROOT/lib/functions/procd.sh"
start() { procd_open_service "$name" "$initscript"; start_service "$@"; procd_close_service set; }
stop() { stop_service "$@"; procd_kill "$name" "$1"; }
restart() { stop; start; }
reload() { if type reload_service >/dev/null 2>&1; then reload_service "$@"; else start; fi; }
running() { return 0; }
help() { echo "Syntax: $initscript [command]"; echo "$EXTRA_HELP"; }
list_contains ALL_COMMANDS "$action" || action=help
"$action" "$@"
`
	// functionsSh stands in for /lib/functions.sh: list_contains only.
	functionsSh = `ALL_COMMANDS="start stop reload restart enable disable enabled running ${EXTRA_COMMANDS}"
list_contains() {
	eval "_l=\$$1"
	case " $_l " in *" $2 "*) return 0 ;; esac
	return 1
}
`
	// procdSh stands in for /lib/functions/procd.sh: every function the
	// init script and rc.common call records its arguments.
	procdSh = `for f in procd_open_service procd_close_service procd_open_instance procd_close_instance procd_set_param procd_kill; do
	eval "$f() { echo \"$f \$*\" >>\"\$STANDIN_LOG\"; }"
done
`
)

// openwrtRoot is a fake router root for the script tests.
type openwrtRoot struct {
	t    *testing.T
	dir  string
	bin  string // the stand-ins' directory, first on PATH
	log  string
	uci  string
	init string // the init script
}

// stockUCI is a fresh OpenWrt's network and firewall, as far as the
// scripts look: interfaces and zones lan and wan, forwarding lan → wan.
func stockUCI() *uciStore {
	sec := func(config, name, typ string, kv ...string) *uciSec {
		s := &uciSec{Config: config, Name: name, Type: typ}
		for i := 0; i+1 < len(kv); i += 2 {
			s.Opts = append(s.Opts, &uciOpt{Name: kv[i], Values: []string{kv[i+1]}})
		}
		return s
	}
	return &uciStore{Dirty: map[string]bool{}, Sections: []*uciSec{
		sec("network", "lan", "interface", "device", "br-lan", "proto", "static"),
		sec("network", "wan", "interface", "device", "eth1", "proto", "dhcp"),
		sec("firewall", "cfg01e63d", "defaults", "input", "REJECT", "output", "ACCEPT", "forward", "REJECT"),
		sec("firewall", "cfg02dc81", "zone", "name", "lan", "network", "lan", "input", "ACCEPT", "output", "ACCEPT", "forward", "ACCEPT"),
		sec("firewall", "cfg03dc81", "zone", "name", "wan", "network", "wan", "input", "REJECT", "output", "ACCEPT", "forward", "REJECT", "masq", "1", "mtu_fix", "1"),
		sec("firewall", "cfg04ad58", "forwarding", "src", "lan", "dest", "wan"),
	}}
}

// newOpenWrtRoot makes a fake root with the stand-ins, the stock UCI
// config, config as /etc/homenet/homenet.toml, and the package's init
// script pointing at the homenet stand-in and that config.
func newOpenWrtRoot(t *testing.T, config string) *openwrtRoot {
	t.Helper()
	dir := t.TempDir()
	r := &openwrtRoot{t: t, dir: dir, bin: filepath.Join(dir, "standin"), log: filepath.Join(dir, "calls.log"), uci: filepath.Join(dir, "uci.json")}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	r.init = filepath.Join(dir, InitPath)
	script := appliance.ProcdScript(appliance.ProcdParams{Binary: filepath.Join(r.bin, "homenet"), Config: filepath.Join(dir, ConfigPath), Owner: Owner})
	standin := func(name string) string {
		return fmt.Sprintf("#!/bin/sh\n%s=%s exec '%s' \"$@\"\n", standinEnv, name, exe)
	}
	for p, body := range map[string]string{
		"standin/uci":                 uciScript,
		"standin/homenet":             standin("homenet"),
		"standin/pidof":               recordScript, // exits 0: netifd runs
		"etc/init.d/network":          recordScript,
		"etc/init.d/firewall":         recordScript,
		InitPath:                      string(script),
		ConfigPath:                    config,
		"etc/rc.common":               rcCommon,
		"lib/functions.sh":            functionsSh,
		"lib/functions/procd.sh":      procdSh,
		"etc/uci-defaults/90_homenet": string(file("uci-defaults")),
		"etc/rc.d/.keep":              "",
	} {
		hp := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(hp), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(hp, []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(r.uci, []byte(stockUCI().text()), 0o644); err != nil {
		t.Fatal(err)
	}
	return r
}

// sh runs a script with sh in the fake root and returns the calls the
// stand-ins recorded.
func (r *openwrtRoot) sh(args ...string) []string {
	r.t.Helper()
	os.WriteFile(r.log, nil, 0o644)
	cmd := exec.Command("sh", args...)
	cmd.Env = append(os.Environ(), "PATH="+r.bin+":"+os.Getenv("PATH"), "IPKG_INSTROOT="+r.dir,
		"STANDIN_LOG="+r.log, "STANDIN_UCI="+r.uci)
	cmd.Dir = r.dir
	if out, err := cmd.CombinedOutput(); err != nil {
		r.t.Fatalf("sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	b, _ := os.ReadFile(r.log)
	var calls []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if l != "" {
			calls = append(calls, strings.ReplaceAll(l, r.dir, "ROOT"))
		}
	}
	return calls
}

// rc runs the init script as OpenWrt does: /bin/sh /etc/rc.common SCRIPT ACTION.
func (r *openwrtRoot) rc(action string) []string {
	r.t.Helper()
	return r.sh(filepath.Join(r.dir, "etc/rc.common"), r.init, action)
}

// store reads the fake uci's state.
func (r *openwrtRoot) store() *uciStore {
	r.t.Helper()
	b, err := os.ReadFile(r.uci)
	if err != nil {
		r.t.Fatal(err)
	}
	st, err := parseUCIStore(b)
	if err != nil {
		r.t.Fatal(err)
	}
	return st
}
