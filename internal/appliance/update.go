package appliance

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Updates use gokrazy's A/B root partitions through gokrazy's own update
// handlers (reached on its Unix socket, with its password), behind the
// admin API's credential:
//
//	PUT  /api/v1/update/root   the new root squashfs, written to the inactive root partition
//	PUT  /api/v1/update/boot   the new FAT boot partition (kernel, cmdline; the root stays the active one)
//	PUT  /api/v1/update/mbr    the new image's first 446 bytes (BIOS boot loader)
//	POST /api/v1/update/apply  one trial boot of the new root (gokrazy's try_boot_inactive flag), then reboot
//	GET  /api/v1/update        whether this boot is a trial boot
//
// A trial boot runs the new root once; any later boot returns to the old
// one unless the guard (cmd/parkpage-guard) commits the new root after
// parkpage answered /healthz, and reboots into the old root when it does
// not within its deadline. Bodies may be gzip-compressed (Content-Encoding).

// TrialBootFlag is on the kernel command line of a trial boot (gokrazy).
const TrialBootFlag = "gokrazy.try_boot_inactive=1"

// Gokrazy talks to gokrazy's HTTP API on its Unix socket.
type Gokrazy struct {
	Socket        string   // default /run/gokrazy-http.sock
	PasswordFiles []string // default /perm/gokr-pw.txt, /etc/gokr-pw.txt (gokrazy's order)
}

func (g *Gokrazy) client() *http.Client {
	sock := g.Socket
	if sock == "" {
		sock = "/run/gokrazy-http.sock"
	}
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
}

func (g *Gokrazy) password() string {
	files := g.PasswordFiles
	if files == nil {
		files = []string{"/perm/gokr-pw.txt", "/etc/gokr-pw.txt"}
	}
	for _, f := range files {
		if b, err := os.ReadFile(f); err == nil {
			return strings.TrimSpace(string(b))
		}
	}
	return ""
}

// Do sends one request to gokrazy and returns its answer's body.
func (g *Gokrazy) Do(ctx context.Context, method, path string, body io.Reader) (string, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://gokrazy"+path, body)
	if err != nil {
		return "", err
	}
	if pw := g.password(); pw != "" {
		req.SetBasicAuth("gokrazy", pw)
	}
	res, err := g.client().Do(req)
	if err != nil {
		return "", fmt.Errorf("gokrazy %s %s: %w", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	if res.StatusCode != http.StatusOK {
		return "", fmt.Errorf("gokrazy %s %s: %s: %s", method, path, res.Status, strings.TrimSpace(string(b)))
	}
	return strings.TrimSpace(string(b)), nil
}

// IsTrialBoot reports whether the kernel command line (/proc/cmdline) is
// that of a trial boot of a new root partition.
func IsTrialBoot(cmdlinePath string) bool {
	b, err := os.ReadFile(cmdlinePath)
	return err == nil && strings.Contains(string(b), TrialBootFlag)
}

// Updater serves the update API (see the package's update routes).
type Updater struct {
	Gokrazy *Gokrazy
	Cmdline string // default /proc/cmdline
	Log     *slog.Logger
	// Reboot reboots the box after apply (default: gokrazy's /reboot).
	Reboot func()
	// WithBoot runs fn with the FAT boot partition mounted read-write on
	// dir (WithBootPartition on the box).
	WithBoot func(fn func(dir string) error) error

	mu       sync.Mutex
	busy     bool
	uploaded map[string]string // part -> sha256 of what gokrazy wrote
}

// update parts: where gokrazy writes them and their size limits.
var updateParts = map[string]struct {
	path string
	max  int64
}{
	"root": {"/update/root", 1 << 30},
	// bootonly: write the boot partition, keep root= on the active root
	// (the trial boot's try flag then starts the inactive one once).
	"boot": {"/update/bootonly", 512 << 20},
	"mbr":  {"/update/mbr", 446},
}

// Routes returns the update API's routes for the admin API server.
func (u *Updater) Routes() map[string]http.Handler {
	return map[string]http.Handler{
		"GET /api/v1/update":         http.HandlerFunc(u.status),
		"PUT /api/v1/update/{part}":  http.HandlerFunc(u.put),
		"POST /api/v1/update/apply":  http.HandlerFunc(u.apply),
		"POST /api/v1/update/reboot": http.HandlerFunc(u.reboot),
	}
}

func (u *Updater) cmdline() string {
	if u.Cmdline == "" {
		return "/proc/cmdline"
	}
	return u.Cmdline
}

// UpdateStatus is GET /api/v1/update.
type UpdateStatus struct {
	TrialBoot bool     `json:"trial_boot"`
	Uploaded  []string `json:"uploaded"`
}

func (u *Updater) status(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	st := UpdateStatus{TrialBoot: IsTrialBoot(u.cmdline()), Uploaded: []string{}}
	for p := range u.uploaded {
		st.Uploaded = append(st.Uploaded, p)
	}
	u.mu.Unlock()
	writeJSONStatus(w, http.StatusOK, st)
}

// refuseTrial answers 409 during a trial boot: gokrazy's idea of the
// inactive partition is then the running one, so an update must wait for
// the next boot (after the guard committed or fell back).
func (u *Updater) refuseTrial(w http.ResponseWriter) bool {
	if IsTrialBoot(u.cmdline()) {
		writeJSONStatus(w, http.StatusConflict, map[string]string{"error": "this boot is the trial boot of an update: reboot the box (POST /api/v1/update/reboot) before the next update"})
		return true
	}
	return false
}

// PutResult is the answer to PUT /api/v1/update/{part}.
type PutResult struct {
	Part   string `json:"part"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
}

func (u *Updater) put(w http.ResponseWriter, r *http.Request) {
	part := r.PathValue("part")
	spec, ok := updateParts[part]
	if !ok {
		writeJSONStatus(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("unknown update part %q (root, boot, mbr)", part)})
		return
	}
	if u.refuseTrial(w) {
		return
	}
	u.mu.Lock()
	if u.busy {
		u.mu.Unlock()
		writeJSONStatus(w, http.StatusConflict, map[string]string{"error": "another update upload is running"})
		return
	}
	u.busy = true
	u.mu.Unlock()
	defer func() { u.mu.Lock(); u.busy = false; u.mu.Unlock() }()

	var body io.Reader = r.Body
	if strings.EqualFold(r.Header.Get("Content-Encoding"), "gzip") {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			writeJSONStatus(w, http.StatusBadRequest, map[string]string{"error": "gzip: " + err.Error()})
			return
		}
		body = zr
	}
	// Count and hash what goes to gokrazy; refuse more than the part's
	// size (checked after: gokrazy has written up to max+1 bytes into the
	// inactive partition or a boot partition the apply step never uses).
	h := sha256.New()
	cr := &countReader{r: io.LimitReader(body, spec.max+1)}
	got, err := u.Gokrazy.Do(r.Context(), http.MethodPut, spec.path, io.TeeReader(cr, h))
	if err == nil && cr.n > spec.max {
		err = fmt.Errorf("%s: more than %d bytes", part, spec.max)
	}
	if err == nil && part == "mbr" && cr.n != spec.max {
		err = fmt.Errorf("mbr: %d bytes, want %d", cr.n, spec.max)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if err == nil && got != sum {
		err = fmt.Errorf("%s: gokrazy wrote sha256 %s, sent %s", part, got, sum)
	}
	if err != nil {
		u.mu.Lock()
		delete(u.uploaded, part)
		u.mu.Unlock()
		u.Log.Error("update upload", "part", part, "err", err)
		writeJSONStatus(w, http.StatusBadGateway, map[string]string{"error": err.Error()})
		return
	}
	u.mu.Lock()
	if u.uploaded == nil {
		u.uploaded = map[string]string{}
	}
	u.uploaded[part] = sum
	u.mu.Unlock()
	u.Log.Info("update part written", "part", part, "bytes", cr.n, "sha256", sum)
	writeJSONStatus(w, http.StatusOK, PutResult{Part: part, Bytes: cr.n, SHA256: sum})
}

func (u *Updater) apply(w http.ResponseWriter, r *http.Request) {
	if u.refuseTrial(w) {
		return
	}
	u.mu.Lock()
	_, root := u.uploaded["root"]
	u.mu.Unlock()
	if !root {
		writeJSONStatus(w, http.StatusConflict, map[string]string{"error": "no new root uploaded (PUT /api/v1/update/root first)"})
		return
	}
	// gokrazy's own /update/testboot appends its flag at a newline that
	// gok's cmdline.txt does not have (a no-op): set the flag here.
	err := errors.New("no boot partition")
	if u.WithBoot != nil {
		err = u.WithBoot(EnableTrialBoot)
	}
	if err != nil {
		u.Log.Error("update: trial boot flag", "err", err)
		writeJSONStatus(w, http.StatusInternalServerError, map[string]string{"error": "setting the trial boot: " + err.Error()})
		return
	}
	u.Log.Info("update applied: rebooting into the new version for a trial boot")
	writeJSONStatus(w, http.StatusAccepted, map[string]string{"status": "rebooting into the new version (trial boot)"})
	u.rebootSoon()
}

func (u *Updater) reboot(w http.ResponseWriter, r *http.Request) {
	u.Log.Info("reboot requested")
	writeJSONStatus(w, http.StatusAccepted, map[string]string{"status": "rebooting"})
	u.rebootSoon()
}

// rebootSoon reboots after the answer went out.
func (u *Updater) rebootSoon() {
	go func() {
		time.Sleep(500 * time.Millisecond)
		if u.Reboot != nil {
			u.Reboot()
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := u.Gokrazy.Do(ctx, http.MethodPost, "/reboot?wait_per_signal=20s", nil); err != nil {
			u.Log.Error("reboot", "err", err)
		}
	}()
}

// BootCmdlines are the files on the boot partition that carry the kernel
// command line: cmdline.txt (BIOS boot, kexec, Pi) and systemd-boot's
// entry (UEFI).
var BootCmdlines = []string{"cmdline.txt", "loader/entries/gokrazy.conf"}

// EnableTrialBoot adds gokrazy's trial boot flag to the kernel command
// lines on the boot partition mounted on dir, in place: gok pads them
// with spaces for this, so each file keeps its size and clusters (the
// BIOS loader finds cmdline.txt by its LBA). gokrazy's init then starts
// the inactive root once and turns the flag into one that nothing reads,
// so the next boot returns to the old root unless the new one commits.
func EnableTrialBoot(dir string) error {
	for _, name := range BootCmdlines {
		p := filepath.Join(dir, name)
		b, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) && name != "cmdline.txt" {
			continue
		}
		if err != nil {
			return err
		}
		if bytes.Contains(b, []byte(TrialBootFlag)) {
			continue
		}
		body := bytes.TrimRight(b, " \r\n")
		nb := append(append(append([]byte(nil), body...), ' '), TrialBootFlag...)
		if len(nb) > len(b) {
			return fmt.Errorf("%s: no room for %s (%d bytes of padding)", name, TrialBootFlag, len(b)-len(body))
		}
		pad := bytes.Repeat([]byte{' '}, len(b)-len(nb))
		if bytes.HasSuffix(b, []byte("\n")) && len(pad) > 0 {
			pad[len(pad)-1] = '\n'
		}
		nb = append(nb, pad...)
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		if _, err := f.WriteAt(nb, 0); err != nil {
			f.Close()
			return err
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	return nil
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func writeJSONStatus(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// Guard decides a trial boot: it commits the new root once parkpage's
// health endpoint answered ok Healthy times in a row, else reboots into
// the old root when Deadline passes. On a normal boot it does nothing.
type Guard struct {
	Gokrazy  *Gokrazy
	Cmdline  string        // default /proc/cmdline
	Health   string        // parkpage's /healthz URL
	Deadline time.Duration // from the guard's start
	Interval time.Duration // between health checks (default 2 s)
	Healthy  int           // ok answers in a row needed (default 3)
	Console  io.Writer
	// Watchdog is the hardware watchdog device (/dev/watchdog on the box)
	// the guard pings on a trial boot from Run's start until Run's ctx
	// ends, even after Run returned (see keepWatchdog); "" for none.
	Watchdog         string
	WatchdogInterval time.Duration // between pings (default 1 s, as gokrazy)
}

// ErrFellBack is returned by Guard.Run after it asked for the reboot into
// the previous version.
var ErrFellBack = errors.New("update did not become healthy: rebooting into the previous version")

// Run checks a trial boot; it returns nil on a normal boot or after the
// commit.
func (g *Guard) Run(ctx context.Context) error {
	cmdline := g.Cmdline
	if cmdline == "" {
		cmdline = "/proc/cmdline"
	}
	if !IsTrialBoot(cmdline) {
		fmt.Fprintln(g.Console, "parkpage-guard: normal boot, nothing to check")
		return nil
	}
	interval, need := g.Interval, g.Healthy
	if interval <= 0 {
		interval = 2 * time.Second
	}
	if need <= 0 {
		need = 3
	}
	if g.Watchdog != "" {
		every := g.WatchdogInterval
		if every <= 0 {
			every = time.Second
		}
		go keepWatchdog(ctx, g.Watchdog, every, g.Console)
	}
	fmt.Fprintf(g.Console, "parkpage-guard: trial boot of an update: waiting up to %v for %s\n", g.Deadline, g.Health)
	deadline := time.NewTimer(g.Deadline)
	defer deadline.Stop()
	hc := &http.Client{Timeout: 5 * time.Second}
	ok := 0
	for {
		if healthOK(ctx, hc, g.Health) {
			ok++
		} else {
			ok = 0
		}
		if ok >= need {
			// On the trial boot gokrazy takes the running (new) root for
			// the inactive one: its switch makes the new root permanent.
			if _, err := g.Gokrazy.Do(ctx, http.MethodPost, "/update/switch", nil); err != nil {
				fmt.Fprintf(g.Console, "parkpage-guard: commit failed: %v\n", err)
				return err
			}
			fmt.Fprintln(g.Console, "parkpage-guard: update healthy; committed: this version boots from now on")
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			fmt.Fprintf(g.Console, "parkpage-guard: update did not become healthy within %v; rebooting into the previous version\n", g.Deadline)
			rctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			// A short grace per signal: the broken service may not stop.
			if _, err := g.Gokrazy.Do(rctx, http.MethodPost, "/reboot?wait_per_signal=10s", nil); err != nil {
				fmt.Fprintf(g.Console, "parkpage-guard: reboot: %v\n", err)
				return err
			}
			return ErrFellBack
		case <-time.After(interval):
		}
	}
}

func healthOK(ctx context.Context, hc *http.Client, url string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	res, err := hc.Do(req)
	if err != nil {
		return false
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, 64))
	return res.StatusCode == http.StatusOK && strings.TrimSpace(string(b)) == "ok"
}
