// Command parkpage is the paging gateway with call park built in: one
// binary for the appliance. `parkpage -h` lists its commands.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/term"

	"github.com/parkpage/parkpage/internal/app"
	"github.com/parkpage/parkpage/internal/config"
	"github.com/parkpage/parkpage/internal/console"
)

// version is stamped by the Makefile with -ldflags -X.
var version = "dev"

type command struct {
	name, args, help string
	run              func(args []string, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"run", "[-config FILE] [-state-dir DIR] [-log-format text|json] [-http ADDR] [-save-config FILE] [-set-mixer] [-relay-sentinel FILE]", "run the appliance (the default command)", cmdRun},
		{"check-config", "FILE", "check a config file; print every problem and exit 1 if it is invalid", cmdCheckConfig},
		{"print-default-config", "", "print the embedded default config", cmdPrintDefault},
		{"render", "--text TEXT | --slot N [--zone NAME] [--codec pcmu|pcma|g722|opus] [--voice V] [--chime C] [--caller NAME] [-config FILE] -o OUT.wav", "render an announcement exactly as a zone hears it", cmdRender},
		{"page", "--zone NAME (--text TEXT | --slot N) [--priority test|park|live|emergency] [--wait] [--api URL] [--token T]", "ask the running appliance to page a zone", cmdPage},
		{"drain", "[--cancel] [--no-wait] [--timeout DURATION] [--api URL] [--token T]", "before stopping for good: refuse new parks, ring every parked call back, wait until the lot is empty", cmdDrain},
		{"relays-off", "[-config FILE]", "drive every configured relay to its safe (off) state", cmdRelaysOff},
		{"hash-password", "", "read a password on stdin and print its bcrypt hash for http.password_hash", cmdHashPassword},
		{"demo", "[-dir DIR] [-pickup-after DURATION] [-sound auto|off|hw:CARD,DEV]", "park a simulated call, announce it and pick it up, all on loopback (no phones needed)", cmdDemo},
		{"provision", "--model yealink-t54w|yealink-t57w|poly-vvx450 --user 2001 [--sidecar] [--zone NAME] [--mac MAC] [--server ADDR] [-config FILE]", "print a phone's configuration: park account, park, BLF and page keys, multicast groups", cmdProvision},
		{"version", "", "print the version", cmdVersion},
		{"update", "-to URL -image FILE.img [-token T | -password-file FILE] [-wait DURATION]", "push a new appliance image to a running box (A/B: it keeps the new version once healthy, else returns to the old one)", cmdUpdate},
		{"appliance", "[-state-dir DIR] [-baked-config FILE] [-perm DIR] [-run-dir DIR] [-setup-listen ADDR] [-setup-backend ADDR] [-mdns NAME|off] [-gokrazy-socket PATH]", "the flashed image's entry point: import boot-partition files, pick the config, offer credential setup, run", cmdAppliance},
	}
}

func main() {
	os.Exit(dispatch(os.Args[1:], os.Stdout, os.Stderr))
}

func dispatch(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") && args[0] != "-h" && args[0] != "-help" && args[0] != "--help" {
		return cmdRun(args, stdout, stderr)
	}
	if args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		return 0
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "parkpage: unknown command %q\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "parkpage: a paging gateway with call park built in.\n\nUsage:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  parkpage %s %s\n      %s\n", c.name, c.args, c.help)
	}
	fmt.Fprintln(w, "\nRun `parkpage COMMAND -h` for a command's flags.")
}

func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("parkpage "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	for _, c := range commands() {
		if c.name == name {
			fs.Usage = func() {
				fmt.Fprintf(fs.Output(), "Usage: parkpage %s %s\n  %s\n", c.name, c.args, c.help)
				fs.PrintDefaults()
			}
		}
	}
	return fs
}

// parse parses flags; it returns -1 to continue, else an exit code.
func parse(fs *flag.FlagSet, args []string) int {
	fs.SetOutput(fs.Output())
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	return -1
}

func cmdRun(args []string, stdout, stderr io.Writer) int {
	return runService(args, stdout, stderr, serviceExtras{})
}

// serviceExtras is what the appliance adds to `parkpage run`.
type serviceExtras struct {
	// Routes are extra admin API routes (the update API).
	Routes map[string]http.Handler
	// Notices are shown on every console page: the boot partition's
	// refused files, with file:line:col, so an installer who dropped a
	// broken parkpage.yaml on a configured box sees why it was not used.
	Notices []string
}

// runService is `parkpage run` with the appliance's extras.
func runService(args []string, stdout, stderr io.Writer, extra serviceExtras) int {
	fs := newFlags("run", stderr)
	cfgPath := fs.String("config", "", "config file (default: the embedded default config)")
	stateDir := fs.String("state-dir", "", "state directory (overrides state_dir)")
	logFormat := fs.String("log-format", "", "log format: text or json (overrides log.format)")
	httpAddr := fs.String("http", "", "admin API address (overrides http.listen)")
	saveTo := fs.String("save-config", "", "where console saves go when -config is a generated file (the appliance's)")
	relaySentinel := fs.String("relay-sentinel", "", "write the relays' lines and this pid here for a crash watcher (the image's parkpage-guard drives them off when parkpage dies)")
	setMixer := fs.Bool("set-mixer", false, "before each line-out page, unmute the sound card's playback path at 0 dB (the appliance does: nothing else unmutes its cards)")
	if fs.Output() == stderr && len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
		fs.SetOutput(stdout)
	}
	if rc := parse(fs, args); rc >= 0 {
		return rc
	}
	if *logFormat != "" && *logFormat != "text" && *logFormat != "json" {
		fmt.Fprintf(stderr, "parkpage: -log-format %q: want text or json\n", *logFormat)
		return 2
	}
	raiseFileLimit()
	a, err := app.New(app.Options{ConfigPath: *cfgPath, SaveConfigTo: *saveTo, StateDir: *stateDir, LogFormat: *logFormat,
		HTTPListen: *httpAddr, Version: version, LogOutput: stderr, Routes: extra.Routes})
	if err != nil {
		fmt.Fprintf(stderr, "parkpage: config problems, not starting:\n%v\n", err)
		return 1
	}
	// Start-up progress, so a slow start shows where the time goes (after
	// wire: a start-up failure stays one clear line).
	began := time.Now()
	if err := wire(a, wireOptions{SetMixer: *setMixer, RelaySentinel: *relaySentinel}); err != nil {
		fmt.Fprintf(stderr, "parkpage: %v\n", err)
		return 1
	}
	if notices := slices.Clone(extra.Notices); len(notices) > 0 {
		a.ConsoleEnv().Provide(console.NoticesKey, func() []string { return notices })
	}
	a.Logger().Info("parkpage starting", "version", version, "config", a.Config().Source, "built_in", time.Since(began).Round(time.Millisecond))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				a.Reload() // errors are logged; the running config is kept
			}
		}
	}()

	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var runErr error
	select {
	case runErr = <-done:
	case <-ctx.Done():
		select {
		case runErr = <-done:
		case <-time.After(shutdownBudget):
			fmt.Fprintf(stderr, "parkpage: shutdown took longer than %v; exiting anyway\n", shutdownBudget)
			return 1
		}
	}
	if runErr != nil {
		fmt.Fprintf(stderr, "parkpage: %v\n", runErr)
		return 1
	}
	return 0
}

// shutdownBudget is how long a stop may take: pages end, relays go off,
// the parked calls' journal and the BLF subscriptions are flushed to disk
// (a busy disk has held a flush for seconds). Whatever is not done by then
// is safe anyway: the journal is on disk at every transition.
const shutdownBudget = 5 * time.Second

// wantFiles is the open-file limit parkpage asks for: two sockets per
// call leg at 1,000 parked calls and their retrievals, plus the pacer's
// io_uring table of registered sockets (which the kernel caps at the
// limit). Go raises the soft limit to the hard one by itself; gokrazy
// leaves the kernel's 4096 hard limit, which root may raise.
const wantFiles = 65536

func raiseFileLimit() {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) != nil || l.Cur >= wantFiles {
		return
	}
	want := syscall.Rlimit{Cur: wantFiles, Max: max(l.Max, wantFiles)}
	if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want) != nil {
		// Not root and no CAP_SYS_RESOURCE: the hard limit it is.
		l.Cur = l.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}

func cmdVersion(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("version", stderr)
	if rc := parse(fs, args); rc >= 0 {
		return rc
	}
	fmt.Fprintln(stdout, "parkpage", version)
	return 0
}

func cmdCheckConfig(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("check-config", stderr)
	if rc := parse(fs, args); rc >= 0 {
		return rc
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	_, warns, err := config.Load(fs.Arg(0))
	for _, w := range warns {
		fmt.Fprintln(stdout, w.String())
	}
	if err != nil {
		fmt.Fprintln(stdout, err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: ok\n", fs.Arg(0))
	return 0
}

func cmdPrintDefault(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("print-default-config", stderr)
	if rc := parse(fs, args); rc >= 0 {
		return rc
	}
	stdout.Write(config.Default)
	return 0
}

func cmdHashPassword(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("hash-password", stderr)
	if rc := parse(fs, args); rc >= 0 {
		return rc
	}
	var pw []byte
	if term.IsTerminal(int(os.Stdin.Fd())) {
		fmt.Fprint(stderr, "Password: ")
		b, err := term.ReadPassword(int(os.Stdin.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			fmt.Fprintf(stderr, "parkpage: %v\n", err)
			return 1
		}
		pw = b
	} else {
		b, err := io.ReadAll(io.LimitReader(os.Stdin, 1024))
		if err != nil {
			fmt.Fprintf(stderr, "parkpage: %v\n", err)
			return 1
		}
		pw = bytes.TrimRight(b, "\r\n")
	}
	if len(pw) < 8 {
		fmt.Fprintln(stderr, "parkpage: use a password of at least 8 characters")
		return 1
	}
	h, err := bcrypt.GenerateFromPassword(pw, bcrypt.DefaultCost)
	if err != nil {
		fmt.Fprintf(stderr, "parkpage: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s\n", h)
	return 0
}

func cmdPage(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("page", stderr)
	var zones multiFlag
	fs.Var(&zones, "zone", "zone to page (repeatable)")
	text := fs.String("text", "", "text to speak")
	slot := fs.String("slot", "", "speak this slot's announcement instead of text")
	prio := fs.String("priority", "test", "priority: test, park, live or emergency")
	apiURL := fs.String("api", envOr("PARKPAGE_API", "http://127.0.0.1:8080"), "admin API base URL (env PARKPAGE_API)")
	token := fs.String("token", os.Getenv("PARKPAGE_TOKEN"), "bearer token (env PARKPAGE_TOKEN)")
	wait := fs.Bool("wait", false, "return after the page has played")
	if rc := parse(fs, args); rc >= 0 {
		return rc
	}
	body, _ := json.Marshal(map[string]any{"zones": []string(zones), "text": *text, "slot": *slot, "priority": *prio, "wait": *wait})
	req, err := http.NewRequest("POST", strings.TrimRight(*apiURL, "/")+"/api/v1/announcements", bytes.NewReader(body))
	if err != nil {
		fmt.Fprintf(stderr, "parkpage: %v\n", err)
		return 2
	}
	req.Header.Set("Content-Type", "application/json")
	if *token != "" {
		req.Header.Set("Authorization", "Bearer "+*token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "parkpage: is the appliance running? %v\n", err)
		return 1
	}
	defer res.Body.Close()
	var out map[string]string
	json.NewDecoder(res.Body).Decode(&out)
	if res.StatusCode >= 300 {
		msg := out["error"]
		if f := out["field"]; f != "" {
			msg = f + ": " + msg
		}
		fmt.Fprintf(stderr, "parkpage: %s: %s\n", res.Status, msg)
		return 1
	}
	fmt.Fprintf(stdout, "page %s\n", out["page"])
	return 0
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
