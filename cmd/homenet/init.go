package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	"homenet/appliance"

	"golang.org/x/term"
)

const initLong = `Set homenet up on this host: detect the platform (OpenWrt, Synology DSM 7,
QNAP QTS, or a Linux running systemd such as Raspberry Pi OS), the LAN and
the WAN address; write the config; make forwarding survive reboots, keep
NetworkManager off the tunnel and put it in firewalld's trusted zone (or
open OpenWrt's firewall); install and start the service; and print what a
phone needs to join: the server URL (also as a QR code) and a one-time key
valid for an hour.

It warns when phones away from home cannot reach the server (a private or
carrier-grade NAT WAN address, no IPv6) and says what to do. Run again with
the same flags, it changes nothing. It asks before using what it detected
when stdin is a terminal; --non-interactive (or no terminal) takes the
detected values. An existing config is kept; flags that differ from it
replace it, keeping a backup.

On a host with a public address and no LAN (a VPS), it sets up control and
the relay only and prints how a home gateway joins it. With --join URL
--auth-key KEY, it sets this host up as a home gateway that joins a
control server elsewhere (homenet on a VPS, or headscale), running only
the gateway agent. See docs/init.md and docs/install.md.`

const uninstallLong = `Undo "homenet init": stop and disable the service and remove the unit or
init script, the sysctl and NetworkManager files, the firewalld trust and
the OpenWrt firewall sections it added. The config and the state dir (the
database of nodes and keys) are kept unless --purge is given. Files homenet
init did not write are left alone.`

// initFlags are the flags of init and uninstall, beyond --config and
// --json.
type initFlags struct {
	nonInteractive bool
	lan            string
	serverURL      string
	stateDir       string
	noService      bool
	force          bool
	stun           string
	root           string
	purge          bool
	ddns           appliance.DDNSConfig
	httpsPort      string
	acmeDirectory  string
	acmeEmail      string
	join           string
	authKey        string
}

// initCommand returns the init command. Its flags live with it, since the
// shared options do not have them.
func initCommand() *command {
	f := new(initFlags)
	return &command{
		name: "init", short: "set homenet up on this host and print how to add a phone", long: initLong,
		flags: func(fs *flag.FlagSet, o *options) {
			fs.StringVar(&o.config, "config", "", "write the config to `FILE` (default: the platform's, such as /etc/homenet/homenet.toml)")
			fs.BoolVar(&f.nonInteractive, "non-interactive", false, "ask nothing; take detected values for what the flags do not say")
			fs.StringVar(&f.lan, "lan", "", "serve these LAN `PREFIXES`, comma-separated, or \"none\" for no subnet router (default: detected)")
			fs.StringVar(&f.serverURL, "server-url", "", "the `URL` phones use, such as http://203.0.113.7:8080 (default: the WAN address if public, else this host's LAN address)")
			fs.StringVar(&f.stateDir, "state-dir", "", "keep state in `DIR` (default: the platform's, such as /var/lib/homenet)")
			fs.BoolVar(&f.noService, "no-service", false, "do not install or start the service; print how to run homenet instead")
			fs.BoolVar(&f.force, "force", false, "ignore an existing config: detect everything anew and replace it (keeping a backup)")
			fs.StringVar(&f.stun, "stun", "", "ask the STUN server at `HOST[:PORT]` for this host's public address (off by default: init sends nothing off the host otherwise)")
			fs.StringVar(&f.root, "root", "", "treat `DIR` as / and only write files there, talking to no daemon: for tests and image builds")
			fs.StringVar(&f.ddns.Provider, "ddns", "", "keep a DNS name pointing at this host through `PROVIDER`: alidns, dnspod, cloudflare or rfc2136 (for a home without a public IPv4; see docs/config.md)")
			fs.StringVar(&f.ddns.Name, "ddns-name", "", "the DNS `NAME` to keep current, such as home.example.net; the server URL becomes https://NAME:PORT")
			fs.StringVar(&f.ddns.Zone, "ddns-zone", "", "the `ZONE` at the provider that holds the name (default: the name without its first label)")
			fs.StringVar(&f.ddns.CredentialsFile, "ddns-credentials", "", "the provider's credentials `FILE`: KEY=VALUE lines, mode 600 (keys in docs/config.md)")
			fs.StringVar(&f.httpsPort, "https-port", "", "with --ddns, serve https://NAME on `PORT` (default "+appliance.DefaultHTTPSPort+": ISPs block 80, 443 and 8080)")
			fs.StringVar(&f.acmeDirectory, "acme-directory", "", "get certificates from the ACME directory at `URL` (default: Let's Encrypt)")
			fs.StringVar(&f.acmeEmail, "acme-email", "", "give the ACME CA this contact `ADDRESS`")
			fs.StringVar(&f.join, "join", "", "run only the gateway agent, joined to the control server at `URL` (homenet on a VPS, or headscale); see docs/install.md")
			fs.StringVar(&f.authKey, "auth-key", "", "with --join, register with this pre-auth `KEY` (on a homenet server: homenet keys create --gateway)")
			fs.BoolVar(&o.json, "json", false, "print a JSON summary instead of text")
		},
		run: func(ctx context.Context, inv *invocation) error { return runInit(ctx, inv, f) },
	}
}

// uninstallCommand returns the uninstall command.
func uninstallCommand() *command {
	f := new(initFlags)
	return &command{
		name: "uninstall", short: "remove what init added (the config and state only with --purge)", long: uninstallLong,
		flags: func(fs *flag.FlagSet, o *options) {
			fs.StringVar(&o.config, "config", "", "the config `FILE` init wrote (default: the platform's)")
			fs.BoolVar(&f.purge, "purge", false, "also delete the config and the state dir: every node, key and the relay's certificate")
			fs.BoolVar(&f.nonInteractive, "non-interactive", false, "do not ask before --purge deletes the state")
			fs.StringVar(&f.root, "root", "", "treat `DIR` as / and only change files there, talking to no daemon")
			fs.BoolVar(&o.json, "json", false, "print a JSON summary instead of text")
		},
		run: func(ctx context.Context, inv *invocation) error { return runUninstall(ctx, inv, f) },
	}
}

// Where init reads answers; tests replace them.
var (
	initStdin       io.Reader = os.Stdin
	stdinIsTerminal           = func() bool { return isTerminal(os.Stdin) }
)

// isTerminal reports whether f is a terminal.
func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

// live returns the root and, for the running system (no --root), the
// D-Bus and command runner that drive it. It refuses to touch the running
// system without root.
func (f *initFlags) live(cmd string) (root string, bus func() (appliance.Bus, error), run appliance.Runner, err error) {
	if f.root != "" {
		root, err := filepath.Abs(f.root)
		return root, nil, nil, err
	}
	if os.Geteuid() != 0 {
		return "", nil, nil, fmt.Errorf("homenet %s changes the system and must run as root; try: sudo homenet %s", cmd, cmd)
	}
	return "/", appliance.DialSystemBus, appliance.ExecRunner{}, nil
}

// asker returns a function that asks questions on stderr and reads answers
// from stdin, or nil when init must not ask.
func (f *initFlags) asker(inv *invocation) func(q, def string) (string, error) {
	if f.nonInteractive || !stdinIsTerminal() {
		return nil
	}
	in := bufio.NewReader(initStdin)
	return func(q, def string) (string, error) {
		fmt.Fprintf(inv.stderr, "%s [%s]: ", q, def)
		line, err := in.ReadString('\n')
		if err != nil && (line == "" || !errors.Is(err, io.EOF)) {
			return "", fmt.Errorf("reading the answer: %w", err)
		}
		return strings.TrimSpace(line), nil
	}
}

func runInit(ctx context.Context, inv *invocation, f *initFlags) error {
	opts := appliance.InitOptions{
		ConfigPath: inv.opts.config,
		ServerURL:  f.serverURL,
		StateDir:   f.stateDir,
		NoService:  f.noService,
		Force:      f.force,
		STUNServer: f.stun,

		DDNS:          f.ddns,
		HTTPSPort:     f.httpsPort,
		ACMEDirectory: f.acmeDirectory,
		ACMEEmail:     f.acmeEmail,
		Join:          f.join,
		AuthKey:       f.authKey,
	}
	if f.httpsPort != "" {
		if n, err := strconv.Atoi(f.httpsPort); err != nil || n < 1 || n > 65535 {
			return usageErrorf("invalid --https-port %q: want a port number", f.httpsPort)
		}
	}
	switch {
	case f.lan == "none":
		opts.NoGateway = true
	case f.lan != "":
		lan, err := appliance.ParsePrefixList(f.lan)
		if err != nil {
			return usageErrorf("invalid --lan: %v", err)
		}
		opts.LAN = lan
	}
	if f.serverURL != "" {
		if err := appliance.CheckServerURL(f.serverURL); err != nil {
			return usageErrorf("invalid --server-url: %v", err)
		}
	}
	if f.join != "" {
		if err := appliance.CheckServerURL(f.join); err != nil {
			return usageErrorf("invalid --join: %v", err)
		}
		if f.serverURL != "" || f.ddns.Provider != "" || f.lan == "none" {
			return usageErrorf("--join runs only the gateway agent: --server-url, --ddns and --lan none belong on the server it joins")
		}
	} else if f.authKey != "" {
		return usageErrorf("--auth-key is only used with --join URL")
	}
	if f.authKey != "" {
		if err := appliance.CheckAuthKey(f.authKey); err != nil {
			return usageErrorf("invalid --auth-key: %v", err)
		}
	}
	for name, p := range map[string]string{"--state-dir": f.stateDir, "--config": inv.opts.config} {
		if p != "" && !filepath.IsAbs(p) {
			return usageErrorf("%s %q: want an absolute path", name, p)
		}
	}
	var err error
	opts.Root, opts.Bus, opts.Run, err = f.live("init")
	if err != nil {
		return err
	}
	if opts.Root == "/" {
		if exe, err := os.Executable(); err == nil {
			if exe, err := filepath.EvalSymlinks(exe); err == nil {
				opts.Binary = exe
			}
		}
	}
	if opts.Ask = f.asker(inv); opts.Ask != nil {
		opts.Log = func(s string) { fmt.Fprintln(inv.stderr, s) }
	}

	res, err := appliance.Init(ctx, opts)
	if inv.opts.json {
		if err != nil {
			if res.Changed {
				printJSON(inv.stdout, struct {
					*appliance.InitResult
					Error string `json:"error"`
				}{res, err.Error()})
			}
			return err
		}
		return printJSON(inv.stdout, res)
	}
	if err != nil {
		if res.Changed {
			fmt.Fprintln(inv.stdout, "Done before the error:")
			printSteps(inv.stdout, res.Steps, appliance.Step.Changed)
		}
		return err
	}
	return printInit(inv, res)
}

// printInit writes the outcome of init for people.
func printInit(inv *invocation, res *appliance.InitResult) error {
	w := inv.stdout
	tw := tabwriter.NewWriter(w, 0, 8, 1, ' ', 0)
	fmt.Fprintf(tw, "Platform:\t%s (%s)\n", res.Platform.Name, res.Platform.Kind)
	fmt.Fprintf(tw, "Config:\t%s\n", res.ConfigPath)
	url := res.ServerURL
	if res.ServerURLWhy != "" {
		url += " (" + res.ServerURLWhy + ")"
	}
	if res.Join != nil {
		fmt.Fprintf(tw, "Joins:\t%s (this host runs the gateway agent only)\n", res.Join.ControlURL)
	} else {
		fmt.Fprintf(tw, "Server URL:\t%s\n", url)
	}
	if res.Gateway {
		fmt.Fprintf(tw, "Gateway:\tserving %s\n", orDetected(strings.Join(res.Routes, ", ")))
	} else {
		fmt.Fprintf(tw, "Gateway:\toff\n")
	}
	fmt.Fprintf(tw, "State:\t%s\n", res.StateDir)
	tw.Flush()
	if r := res.Reachability; r.Case != "" {
		fmt.Fprintf(w, "\nReachability: %s\n  %s\n", r.Case, r.Advice)
	}

	fmt.Fprintln(w)
	if res.Changed {
		fmt.Fprintln(w, "Done:")
	} else {
		fmt.Fprintln(w, "Nothing changed: homenet was set up already.")
	}
	printSteps(w, res.Steps, func(s appliance.Step) bool { return res.Changed || s.Result != appliance.ResultUnchanged })

	if len(res.Warnings) > 0 {
		fmt.Fprintln(w, "\nWarnings:")
		for _, wn := range res.Warnings {
			fmt.Fprintf(w, "  ! %s\n", wn.Message)
			if wn.Fix != "" {
				fmt.Fprintf(w, "    %s\n", wn.Fix)
			}
		}
	}
	if len(res.Next) > 0 {
		fmt.Fprintln(w, "\nStill to do:")
		for _, n := range res.Next {
			fmt.Fprintf(w, "  %s\n", n)
		}
	}
	if res.Join != nil {
		printJoin(w, res.Join)
		return nil
	}
	if len(res.AtHome) > 0 {
		fmt.Fprintln(w, "\nAdd a home gateway (a router, NAS or Pi at home that serves its LAN):")
		for _, n := range res.AtHome {
			fmt.Fprintf(w, "  %s\n", n)
		}
	}
	return printOnboarding(inv, res)
}

// printJoin says whether the gateway agent joined its control server.
func printJoin(w io.Writer, j *appliance.JoinResult) {
	st := j.Status
	if j.Error != "" {
		fmt.Fprintf(w, "\nNot joined yet: %s.\n  Once homenet runs, the agent joins (and keeps trying); check with: homenet status\n", j.Error)
		return
	}
	fmt.Fprintf(w, "\nJoined %s as %s.\n", j.ControlURL, joinOrDash(st.Addresses))
	fmt.Fprintf(w, "  Advertised routes: %s\n  Approved routes:   %s\n", joinOrDash(st.Advertised), approvedRoutes(st))
	fmt.Fprintf(w, "  Phones logged in to %s now reach this LAN.\n", j.ControlURL)
}

// printSteps lists the steps for which show returns true, one per line.
func printSteps(w io.Writer, steps []appliance.Step, show func(appliance.Step) bool) {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	for _, s := range steps {
		if !show(s) {
			continue
		}
		what := s.Target
		if s.Detail != "" {
			what = strings.TrimPrefix(what+": "+s.Detail, ": ")
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", s.Result, s.What, what)
	}
	tw.Flush()
}

// printOnboarding tells how to add a phone.
func printOnboarding(inv *invocation, res *appliance.InitResult) error {
	w := inv.stdout
	ob := res.Onboarding
	fmt.Fprintf(w, "\nAdd a phone:\n")
	fmt.Fprintf(w, "  In the Tailscale app, choose a custom coordination server (in the menu of\n")
	fmt.Fprintf(w, "  its login screen) and enter this URL, or scan the code to copy it:\n\n")
	fmt.Fprintf(w, "    %s\n\n", ob.ServerURL)
	f, isFile := w.(*os.File)
	qr, err := appliance.QRCode(ob.ServerURL, isFile && isTerminal(f))
	if err != nil {
		return err
	}
	for _, line := range strings.SplitAfter(qr, "\n") {
		if line != "" {
			fmt.Fprint(w, "    "+line)
		}
	}
	fmt.Fprintf(w, "\n  Then log in: the app opens a page on which you approve the phone with the\n")
	fmt.Fprintf(w, "  admin password (sudo cat %s).\n", ob.PasswordFile)
	switch {
	case ob.Key != "":
		fmt.Fprintf(w, "\n  One-time key, valid until %s, for clients that take one\n", ob.KeyExpiry.Local().Format("15:04"))
		fmt.Fprintf(w, "  (tailscale up --login-server %s --auth-key KEY):\n\n", ob.ServerURL)
		fmt.Fprintf(w, "    %s\n", ob.Key)
	case ob.KeyCommand != "":
		if ob.KeyError == "" {
			fmt.Fprintf(w, "\n  Once homenet runs, create a one-time key for clients that take one with:\n")
		} else {
			fmt.Fprintf(w, "\n  No one-time key: %s. Create one later with:\n", ob.KeyError)
		}
		fmt.Fprintf(w, "    %s\n", ob.KeyCommand)
	}
	return nil
}

func runUninstall(ctx context.Context, inv *invocation, f *initFlags) error {
	if inv.opts.config != "" && !filepath.IsAbs(inv.opts.config) {
		return usageErrorf("--config %q: want an absolute path", inv.opts.config)
	}
	opts := appliance.UninstallOptions{ConfigPath: inv.opts.config, Purge: f.purge}
	var err error
	opts.Root, opts.Bus, opts.Run, err = f.live("uninstall")
	if err != nil {
		return err
	}
	if ask := f.asker(inv); ask != nil && f.purge {
		opts.Confirm = func(q string) (bool, error) {
			ans, err := ask(q+" (y/n)", "n")
			return strings.HasPrefix(strings.ToLower(ans), "y"), err
		}
	}
	res, err := appliance.Uninstall(ctx, opts)
	if inv.opts.json {
		if err != nil {
			return err
		}
		return printJSON(inv.stdout, res)
	}
	w := inv.stdout
	notable := func(s appliance.Step) bool {
		return s.Changed() || s.Result == appliance.ResultKept || s.Result == appliance.ResultSkipped || s.Result == appliance.ResultFailed
	}
	if res.Changed {
		fmt.Fprintln(w, "Done:")
		printSteps(w, res.Steps, notable)
	} else if err == nil {
		fmt.Fprintln(w, "Nothing to remove.")
		printSteps(w, res.Steps, notable)
	}
	if err != nil {
		return err
	}
	if len(res.Kept) > 0 {
		fmt.Fprintf(w, "\nKept (delete with --purge): %s\n", strings.Join(res.Kept, ", "))
	}
	if len(res.Next) > 0 {
		fmt.Fprintln(w, "\nStill to do:")
		for _, n := range res.Next {
			fmt.Fprintf(w, "  %s\n", n)
		}
	}
	return nil
}

// orDetected returns s, or a note that the routes are detected at start.
func orDetected(s string) string {
	if s == "" {
		return "the LAN detected at each start"
	}
	return s
}
