// Command gpiosim is a test-only gokrazy service of the image test (never
// in a production image: mkimage adds it with -test-gpiosim). It gives the
// VM a GPIO chip the way a late USB GPIO adapter would appear, and watches
// the relay line from outside parkpage:
//
//   - once parkpage runs, it creates a simulated GPIO chip through configfs
//     (the kernel's gpio-sim) whose lines carry the relay names of
//     imagetest's site config (RELAY0...);
//   - it logs every change of each line's output value, with the guest's
//     monotonic time, to the serial console;
//   - it emulates a controller that keeps a released line's level (the
//     Raspberry Pi's does; gpio-sim otherwise falls back to the pull): a
//     line driven high gets a pull-up, one driven low a pull-down, so a
//     killed parkpage leaves the relay on until the restarted one drives
//     it off;
//   - it serves, on its own port (forwarded by QEMU), GET /state (the
//     lines and their change history) and POST /kill, which kill -9s
//     parkpage while a relay is on and answers once every line is off
//     again, with the time that took.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("gpiosim: ")
	listen := flag.String("listen", ":8099", "address of the test endpoints")
	lines := flag.String("lines", "RELAY0,RELAY1,RELAY2,RELAY3", "names of the simulated lines, comma separated")
	after := flag.String("after", "parkpage", "create the chip only once a process with this name runs (empty: at once)")
	console := flag.String("console", "/dev/console", "where change lines are written (as well as stderr)")
	flag.Parse()

	out := []*os.File{os.Stderr}
	if f, err := os.OpenFile(*console, os.O_WRONLY, 0); err == nil {
		out = append(out, f)
	}
	s := &sim{out: out, names: strings.Split(*lines, ","), start: time.Now()}
	if *after != "" {
		for findPID(*after) == 0 {
			time.Sleep(50 * time.Millisecond)
		}
		s.logf("%s runs: creating the simulated chip", *after)
	}
	if err := s.create(); err != nil {
		s.logf("create chip: %v", err)
		os.Exit(1)
	}
	go s.watch()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /state", s.state)
	mux.HandleFunc("POST /kill", s.kill)
	// The guest's /proc and /sys for failure reports (no shell on the
	// image): e.g. /proc?path=/proc/asound/card0/codec%230.
	mux.HandleFunc("GET /proc", func(w http.ResponseWriter, r *http.Request) {
		p := filepath.Clean(r.URL.Query().Get("path"))
		if !strings.HasPrefix(p, "/proc/") && !strings.HasPrefix(p, "/sys/") {
			http.Error(w, "only /proc and /sys", http.StatusBadRequest)
			return
		}
		b, err := os.ReadFile(p)
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		w.Write(b)
	})
	s.logf("serving on %s", *listen)
	log.Fatal(http.ListenAndServe(*listen, mux))
}

// sim is one simulated chip and the watcher of its lines.
type sim struct {
	out   []*os.File
	names []string
	start time.Time
	dir   string // sysfs directory of the bank: .../gpio-sim.0/gpiochipN

	mu      sync.Mutex
	values  []int
	changes []change
	wake    chan struct{} // closed and replaced on every change
}

// change is one observed change of a line's value.
type change struct {
	Line  string  `json:"line"`
	Value int     `json:"value"`
	At    float64 `json:"at"` // seconds since gpiosim started (guest monotonic)
}

func (s *sim) now() float64 { return time.Since(s.start).Seconds() }

func (s *sim) logf(format string, a ...any) {
	msg := fmt.Sprintf("gpiosim: [%10.6f] %s\n", s.now(), fmt.Sprintf(format, a...))
	for _, f := range s.out {
		f.WriteString(msg)
	}
}

const configfs = "/sys/kernel/config"

// create mounts configfs if need be and makes the chip live.
func (s *sim) create() error {
	if _, err := os.Stat(filepath.Join(configfs, "gpio-sim")); err != nil {
		if err := syscall.Mount("configfs", configfs, "configfs", 0, ""); err != nil && !errors.Is(err, syscall.EBUSY) {
			return fmt.Errorf("mount configfs on %s: %w", configfs, err)
		}
	}
	dev := filepath.Join(configfs, "gpio-sim", "parkpage")
	bank := filepath.Join(dev, "gpio-bank0")
	if err := os.MkdirAll(bank, 0o755); err != nil {
		return fmt.Errorf("%w (is the kernel built with CONFIG_GPIO_SIM?)", err)
	}
	write := func(path, v string) error {
		if err := os.WriteFile(path, []byte(v), 0o644); err != nil {
			return fmt.Errorf("write %q to %s: %w", v, path, err)
		}
		return nil
	}
	if err := write(filepath.Join(bank, "num_lines"), strconv.Itoa(len(s.names))); err != nil {
		return err
	}
	if err := write(filepath.Join(bank, "label"), "parkpage-sim"); err != nil {
		return err
	}
	for i, n := range s.names {
		ld := filepath.Join(bank, fmt.Sprintf("line%d", i))
		if err := os.MkdirAll(ld, 0o755); err != nil {
			return err
		}
		if err := write(filepath.Join(ld, "name"), n); err != nil {
			return err
		}
	}
	if err := write(filepath.Join(dev, "live"), "1"); err != nil {
		return err
	}
	devName, err := readTrim(filepath.Join(dev, "dev_name"))
	if err != nil {
		return err
	}
	chip, err := readTrim(filepath.Join(bank, "chip_name"))
	if err != nil {
		return err
	}
	s.dir = filepath.Join("/sys/devices/platform", devName, chip)
	s.values = make([]int, len(s.names))
	s.wake = make(chan struct{})
	for i := range s.names {
		v, err := s.read(i)
		if err != nil {
			return err
		}
		s.values[i] = v
	}
	s.logf("chip %s (/dev/%s) live with lines %s, values %v", devName, chip, strings.Join(s.names, ","), s.values)
	return nil
}

func readTrim(path string) (string, error) {
	b, err := os.ReadFile(path)
	return strings.TrimSpace(string(b)), err
}

func (s *sim) read(i int) (int, error) {
	v, err := readTrim(filepath.Join(s.dir, fmt.Sprintf("sim_gpio%d", i), "value"))
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(v)
}

// watch polls the lines' values (sysfs gives no change notification for
// an output) and logs every change.
func (s *sim) watch() {
	for {
		for i, name := range s.names {
			v, err := s.read(i)
			if err != nil {
				s.logf("read %s: %v", name, err)
				continue
			}
			s.mu.Lock()
			old := s.values[i]
			if v != old {
				s.values[i] = v
				c := change{Line: name, Value: v, At: s.now()}
				s.changes = append(s.changes, c)
				close(s.wake)
				s.wake = make(chan struct{})
			}
			s.mu.Unlock()
			if v != old {
				s.logf("line %s value %d", name, v)
				// Keep the level when the line is released, as a Pi does.
				pull := "pull-down"
				if v == 1 {
					pull = "pull-up"
				}
				os.WriteFile(filepath.Join(s.dir, fmt.Sprintf("sim_gpio%d", i), "pull"), []byte(pull), 0o644)
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// stateDoc is GET /state.
type stateDoc struct {
	Now     float64        `json:"now"`
	Values  map[string]int `json:"values"`
	Changes []change       `json:"changes"`
}

func (s *sim) snapshot() stateDoc {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := stateDoc{Now: s.now(), Values: map[string]int{}, Changes: append([]change{}, s.changes...)}
	for i, n := range s.names {
		d.Values[n] = s.values[i]
	}
	return d
}

func (s *sim) state(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(s.snapshot())
}

// killResult is POST /kill's answer.
type killResult struct {
	PID      int     `json:"pid"`
	KilledAt float64 `json:"killed_at"`
	OffAt    float64 `json:"off_at"`
	OffAfter float64 `json:"off_after_seconds"` // kill to every line off
	NewPID   int     `json:"new_pid"`           // the restarted parkpage
	// StartedAt is when the supervisor started the new parkpage (its
	// start time in /proc, 10 ms resolution); OffAfterStart is that to
	// every line off (negative: off before the restart).
	StartedAt     float64 `json:"started_at"`
	OffAfterStart float64 `json:"off_after_start_seconds"`
}

// kill is POST /kill: kill -9 parkpage while a line is on, then wait for
// every line to be off (the restarted parkpage drives them off).
func (s *sim) kill(w http.ResponseWriter, r *http.Request) {
	fail := func(code int, format string, a ...any) {
		http.Error(w, fmt.Sprintf(format, a...), code)
	}
	pid := findPID("parkpage")
	if pid == 0 {
		fail(http.StatusConflict, "parkpage is not running")
		return
	}
	if s.snapshot().allOff() {
		fail(http.StatusConflict, "no line is on: kill during a page")
		return
	}
	res := killResult{PID: pid}
	s.mu.Lock()
	wake := s.wake
	s.mu.Unlock()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		fail(http.StatusInternalServerError, "kill %d: %v", pid, err)
		return
	}
	res.KilledAt = s.now()
	s.logf("killed parkpage (pid %d) with SIGKILL", pid)
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Minute)
	defer cancel()
	for {
		if d := s.snapshot(); d.allOff() {
			res.OffAt = d.Changes[len(d.Changes)-1].At
			break
		}
		select {
		case <-wake:
			s.mu.Lock()
			wake = s.wake
			s.mu.Unlock()
		case <-ctx.Done():
			fail(http.StatusGatewayTimeout, "lines still on %.1f s after the kill", s.now()-res.KilledAt)
			return
		}
	}
	res.OffAfter = res.OffAt - res.KilledAt
	// The restarted parkpage (gokrazy starts it 1 s after the death): the
	// lines may be off before it runs (parkpage-guard's relay watch).
	for res.NewPID = findPID("parkpage"); res.NewPID == 0 || res.NewPID == pid; res.NewPID = findPID("parkpage") {
		select {
		case <-ctx.Done():
			fail(http.StatusGatewayTimeout, "lines off %.3f s after the kill, but no new parkpage runs", res.OffAfter)
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
	if res.NewPID != 0 {
		if at, err := s.startedAt(res.NewPID); err == nil {
			res.StartedAt = at
			res.OffAfterStart = res.OffAt - at
		} else {
			s.logf("start time of pid %d: %v", res.NewPID, err)
		}
	}
	s.logf("every line off %.3f s after the kill, %.3f s after parkpage restarted (pid %d, started %.3f s after the kill)",
		res.OffAfter, res.OffAfterStart, res.NewPID, res.StartedAt-res.KilledAt)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(res)
}

// startedAt is when process pid started, on gpiosim's clock: its start
// time in /proc/PID/stat (clock ticks since boot, USER_HZ 100) against
// /proc/uptime now (both the boot-time clock, which in a VM that never
// suspends runs with the monotonic one behind s.now).
func (s *sim) startedAt(pid int) (float64, error) {
	stat, err := readTrim(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name (which may hold spaces) start at
	// field 3 (state); starttime is field 22.
	i := strings.LastIndexByte(stat, ')')
	f := strings.Fields(stat[i+1:])
	if i < 0 || len(f) < 20 {
		return 0, fmt.Errorf("unexpected /proc/%d/stat: %q", pid, stat)
	}
	ticks, err := strconv.ParseFloat(f[19], 64)
	if err != nil {
		return 0, err
	}
	up, err := readTrim("/proc/uptime")
	if err != nil {
		return 0, err
	}
	upNow, err := strconv.ParseFloat(strings.Fields(up)[0], 64)
	if err != nil {
		return 0, err
	}
	return s.now() - (upNow - ticks/100), nil
}

func (d stateDoc) allOff() bool {
	for _, v := range d.Values {
		if v != 0 {
			return false
		}
	}
	return true
}

// findPID returns the pid of a process whose command name is name, or 0.
func findPID(name string) int {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		comm, err := readTrim(filepath.Join("/proc", e.Name(), "comm"))
		if err == nil && comm == name {
			return pid
		}
	}
	return 0
}
