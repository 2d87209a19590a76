// Command mkimage builds the parkpage appliance images with gokrazy's gok:
// it writes a gokrazy instance (config.json and a builddir/ whose go.mod
// files pin every module, so gok never asks the module proxy for @latest),
// runs `gok overwrite --full`, formats the /perm partition and optionally
// drops files on the FAT boot partition.
//
// Usage (the Makefile's `make image` runs it):
//
//	mkimage -target amd64|pi|arm64 -repo DIR -gok PATH -o OUT.img [-config site.yaml] [-boot-file NAME=PATH]...
package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	disk "github.com/parkpage/parkpage/internal/diskimage"
)

// Pinned module versions: the module proxy refuses @latest for some of
// these, and pinning makes a rebuild produce the same kernel and userland.
const (
	gokrazyVersion   = "v0.0.0-20260418085648-c38c3134b8a7" // github.com/gokrazy/gokrazy (init, dhcp, ntp, ...)
	kernelAMD64      = "v0.0.0-20260705070735-de680abf072b" // github.com/gokrazy/kernel.amd64
	kernelARM64      = "v0.0.0-20260705071517-37841c4d6ff1" // github.com/gokrazy/kernel.arm64 (generic, QEMU virt)
	kernelRPi        = "v0.0.0-20251127164438-9778ec0261de" // github.com/gokrazy/kernel.rpi (Pi 3/4/5)
	firmwareRPi      = "v0.0.0-20260522070551-527ce0ed43cf" // github.com/gokrazy/firmware
	eepromRPi        = "v0.0.0-20260518070910-95f7328a8228" // github.com/gokrazy/rpi-eeprom
	parkpagePkg      = "github.com/parkpage/parkpage/cmd/parkpage"
	guardPkg         = "github.com/parkpage/parkpage/cmd/parkpage-guard"
	localKernelPkg   = "github.com/parkpage/parkpage/image/kernel/amd64"
	gpiosimPkg       = "github.com/parkpage/parkpage/image/imagetest/gpiosim" // test images only
	imageModule      = "github.com/parkpage/parkpage/image"
	parkpageModule   = "github.com/parkpage/parkpage"
	defaultImageSize = 1280 << 20 // boot 100 MB + 2×500 MB root + ~170 MB /perm
)

// target describes one image flavour.
type target struct {
	goarch, cc, pkgConfigPath string
	kernel, kernelVersion     string
	firmware, firmwareVersion string
	eeprom, eepromVersion     string
	serial                    string
	kernelArgs                []string
	bootloaderLines           []string // appended to the Pi's config.txt
	kernelDir                 string   // local kernel package (replace), instead of kernelVersion
}

var targets = map[string]target{
	// no_timer_check: on a starved VM host (TCG on a busy machine) the
	// kernel's IO-APIC timer check fails and panics at boot; real PCs do
	// not need the check either.
	"amd64": {goarch: "amd64", cc: "gcc", kernel: "github.com/gokrazy/kernel.amd64", kernelVersion: kernelAMD64,
		serial: "ttyS0,115200", kernelArgs: []string{"no_timer_check"}},
	"arm64": {goarch: "arm64", cc: "aarch64-linux-gnu-gcc", pkgConfigPath: "/usr/lib/aarch64-linux-gnu/pkgconfig",
		kernel: "github.com/gokrazy/kernel.arm64", kernelVersion: kernelARM64, serial: "ttyAMA0,115200"},
	"pi": {goarch: "arm64", cc: "aarch64-linux-gnu-gcc", pkgConfigPath: "/usr/lib/aarch64-linux-gnu/pkgconfig",
		kernel: "github.com/gokrazy/kernel.rpi", kernelVersion: kernelRPi,
		firmware: "github.com/gokrazy/firmware", firmwareVersion: firmwareRPi,
		eeprom: "github.com/gokrazy/rpi-eeprom", eepromVersion: eepromRPi,
		// The firmware's audio (bcm2835: a Pi 4's 3.5 mm jack and HDMI)
		// is off in the device tree unless config.txt turns it on, as
		// Raspberry Pi OS does; USB audio adapters need nothing.
		bootloaderLines: []string{"dtparam=audio=on"}},
}

type bootFiles []string

func (b *bootFiles) String() string     { return strings.Join(*b, ",") }
func (b *bootFiles) Set(s string) error { *b = append(*b, s); return nil }

func main() {
	log.SetFlags(0)
	log.SetPrefix("mkimage: ")
	targetName := flag.String("target", "amd64", "image flavour: amd64 (generic PC/VM), pi (Raspberry Pi 4/5), arm64 (generic arm64, QEMU virt)")
	repo := flag.String("repo", ".", "parkpage source tree")
	gok := flag.String("gok", "bin/gok", "gok binary")
	out := flag.String("o", "", "image file to write")
	work := flag.String("work", "bin/gokrazy", "gokrazy parent directory (instances live below)")
	siteConfig := flag.String("config", "", "site config baked into the image as /etc/parkpage/parkpage.yaml")
	version := flag.String("version", "dev", "version stamped into parkpage")
	size := flag.Int64("size", defaultImageSize, "image size in bytes")
	var boot bootFiles
	flag.Var(&boot, "boot-file", "NAME=PATH: copy PATH onto the FAT boot partition as NAME (repeatable)")
	flag.StringVar(&opts.kernelDir, "kernel-dir", "", "amd64: use the kernel package in this directory (image/kernel/amd64: sound, gpio-sim) instead of gokrazy's")
	flag.DurationVar(&opts.guardDeadline, "update-deadline", 5*time.Minute, "time an update's trial boot has to become healthy before the box returns to the previous version")
	flag.BoolVar(&opts.testGPIOSim, "test-gpiosim", false, "test images only: add image/imagetest/gpiosim (a simulated GPIO chip for the relays, and a kill -9 endpoint on port 8099)")
	var extra bootFiles
	flag.Var(&extra, "parkpage-flag", "extra command-line flag for parkpage (repeatable; tests use it to build a deliberately broken update)")
	flag.Parse()
	opts.extraFlags = extra
	t, ok := targets[*targetName]
	if !ok || *out == "" {
		flag.Usage()
		os.Exit(2)
	}
	start := time.Now()
	if err := build(*targetName, t, *repo, *gok, *work, *out, *siteConfig, *version, *size, boot); err != nil {
		log.Fatal(err)
	}
	st, err := os.Stat(*out)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("%s: %s image %d MiB, built in %s", *out, *targetName, st.Size()>>20, time.Since(start).Round(time.Second))
}

// opts are mkimage's less common settings.
var opts struct {
	kernelDir     string
	guardDeadline time.Duration
	extraFlags    []string
	testGPIOSim   bool
}

func build(name string, t target, repo, gok, work, out, siteConfig, version string, size int64, boot bootFiles) error {
	abs := func(p string) string {
		a, err := filepath.Abs(p)
		if err != nil {
			log.Fatal(err)
		}
		return a
	}
	repo, gok, work, out = abs(repo), abs(gok), abs(work), abs(out)
	if opts.kernelDir != "" {
		if t.goarch != "amd64" {
			return fmt.Errorf("-kernel-dir: only for amd64 images")
		}
		t.kernel, t.kernelVersion, t.kernelDir = localKernelPkg, "", abs(opts.kernelDir)
	}
	instance := "parkpage-" + name
	dir := filepath.Join(work, instance)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	cfg, err := instanceConfig(dir, t, repo, siteConfig, version)
	if err != nil {
		return err
	}
	if err := writeBuildDirs(dir, t, repo); err != nil {
		return err
	}
	b, err := json.MarshalIndent(cfg, "", "    ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), append(b, '\n'), 0o600); err != nil {
		return err
	}
	tmp := out + ".tmp"
	cmd := exec.Command(gok, "--parent_dir", work, "-i", instance, "overwrite", "--full", tmp,
		fmt.Sprintf("--target_storage_bytes=%d", size))
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("gok overwrite: %w", err)
	}
	parts, err := disk.Read(tmp)
	if err != nil {
		return err
	}
	if len(parts) < 4 {
		return fmt.Errorf("%s: %d partitions, want boot, root A, root B, perm", tmp, len(parts))
	}
	perm := parts[3]
	// gok leaves /perm unformatted when writing to a file; gokrazy then
	// runs without persistent storage. Format it here (ext4, label perm).
	if err := run("mkfs.ext4", "-q", "-F", "-L", "perm", "-E", fmt.Sprintf("offset=%d", perm.Start),
		tmp, fmt.Sprint(perm.Size/1024)); err != nil {
		return err
	}
	if err := growBoot(tmp, parts[0].Start, parts[0].Size); err != nil {
		return fmt.Errorf("boot partition: %w", err)
	}
	for _, bf := range boot {
		name, path, ok := strings.Cut(bf, "=")
		if !ok {
			return fmt.Errorf("-boot-file %q: want NAME=PATH", bf)
		}
		if err := run("mcopy", "-o", "-i", fmt.Sprintf("%s@@%d", tmp, parts[0].Start), path, "::"+name); err != nil {
			return err
		}
	}
	return os.Rename(tmp, out)
}

func run(name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return nil
}

// gokConfig is the subset of gokrazy's config.json this image sets.
type gokConfig struct {
	Hostname        string
	Update          map[string]any            `json:",omitempty"`
	Environment     []string                  `json:",omitempty"`
	Packages        []string                  `json:",omitempty"`
	PackageConfig   map[string]map[string]any `json:",omitempty"`
	SerialConsole   string                    `json:",omitempty"`
	KernelPackage   *string                   `json:",omitempty"`
	FirmwarePackage *string                   `json:",omitempty"`
	EEPROMPackage   *string                   `json:",omitempty"`
	KernelExtraArgs []string                  `json:",omitempty"`
	// BootloaderExtraLines are appended to the Pi's config.txt.
	BootloaderExtraLines []string `json:",omitempty"`
}

func instanceConfig(dir string, t target, repo, siteConfig, version string) (*gokConfig, error) {
	pw, err := updatePassword(dir)
	if err != nil {
		return nil, err
	}
	env := []string{"CGO_ENABLED=1", "CC=" + t.cc, "CGO_LDFLAGS=-lm"}
	if t.pkgConfigPath != "" {
		env = append(env, "PKG_CONFIG_PATH="+t.pkgConfigPath)
	}
	// `parkpage appliance` imports the installer's files from the boot
	// partition, picks the config (last good, baked, embedded default),
	// offers credential setup while none exists, then runs the service.
	flags := append([]string{"appliance", "-state-dir", "/perm/parkpage"}, opts.extraFlags...)
	pc := map[string]any{
		"GoBuildEnvironment": env,
		"GoBuildTags":        []string{"netgo", "osusergo", "nolibopusfile", "static_flite"},
		"GoBuildFlags":       []string{"-ldflags=-X main.version=" + version + " -extldflags -static"},
	}
	if siteConfig != "" {
		site, err := os.ReadFile(siteConfig)
		if err != nil {
			return nil, err
		}
		pc["ExtraFileContents"] = map[string]string{"/etc/parkpage/parkpage.yaml": string(site)}
	}
	pc["CommandLineFlags"] = flags
	str := func(s string) *string { return &s }
	packages := []string{parkpagePkg, guardPkg}
	if opts.testGPIOSim {
		packages = append(packages, gpiosimPkg)
	}
	cfg := &gokConfig{
		Hostname:    "parkpage",
		Update:      map[string]any{"HTTPPassword": pw},
		Environment: []string{"GOOS=linux", "GOARCH=" + t.goarch},
		Packages:    packages,
		PackageConfig: map[string]map[string]any{
			parkpagePkg: pc,
			// The update guard: commits a trial boot once parkpage is
			// healthy, else reboots into the previous root.
			guardPkg: {
				"GoBuildTags":      []string{"netgo", "osusergo"},
				"CommandLineFlags": []string{"-deadline", opts.guardDeadline.String()},
			},
		},
		SerialConsole:        t.serial,
		KernelExtraArgs:      t.kernelArgs,
		BootloaderExtraLines: t.bootloaderLines,
		KernelPackage:        str(t.kernel),
		FirmwarePackage:      str(t.firmware),
		EEPROMPackage:        str(t.eeprom),
	}
	return cfg, nil
}

// updatePassword returns the instance's gokrazy update password, made
// once at random and kept in the instance directory (never a default).
func updatePassword(dir string) (string, error) {
	p := filepath.Join(dir, "http-password.txt")
	if b, err := os.ReadFile(p); err == nil && len(bytes.TrimSpace(b)) > 0 {
		return string(bytes.TrimSpace(b)), nil
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	var r [16]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", err
	}
	pw := hex.EncodeToString(r[:])
	return pw, os.WriteFile(p, []byte(pw+"\n"), 0o600)
}

// writeBuildDirs pins every module gok builds or copies from: one go.mod
// per module under builddir/, which gok uses as is (it only runs `go get`
// for packages that do not resolve).
func writeBuildDirs(dir string, t target, repo string) error {
	type mod struct{ path, version string }
	mods := []mod{{"github.com/gokrazy/gokrazy", gokrazyVersion}}
	if t.kernelDir == "" {
		mods = append(mods, mod{t.kernel, t.kernelVersion})
	} else {
		// The local kernel package (image/kernel/amd64), a module of its
		// own, found through a replace.
		bd := filepath.Join(dir, "builddir", t.kernel)
		if err := os.MkdirAll(bd, 0o755); err != nil {
			return err
		}
		gomod := fmt.Sprintf("module gokrazy/build/kernel\n\ngo 1.22\n\nrequire %s v0.0.0-00010101000000-000000000000\n\nreplace %s => %s\n",
			t.kernel, t.kernel, t.kernelDir)
		if err := os.WriteFile(filepath.Join(bd, "go.mod"), []byte(gomod), 0o644); err != nil {
			return err
		}
		tools := "//go:build tools\n\npackage tools\n\nimport _ \"" + t.kernel + "\"\n"
		if err := os.WriteFile(filepath.Join(bd, "tools.go"), []byte(tools), 0o644); err != nil {
			return err
		}
	}
	if t.firmware != "" {
		mods = append(mods, mod{t.firmware, t.firmwareVersion})
	}
	if t.eeprom != "" {
		mods = append(mods, mod{t.eeprom, t.eepromVersion})
	}
	for _, m := range mods {
		bd := filepath.Join(dir, "builddir", m.path)
		want := "require " + m.path + " " + m.version
		if b, err := os.ReadFile(filepath.Join(bd, "go.mod")); err == nil && bytes.Contains(b, []byte(want)) {
			continue
		}
		if err := os.RemoveAll(bd); err != nil {
			return err
		}
		if err := os.MkdirAll(bd, 0o755); err != nil {
			return err
		}
		if err := goCmd(bd, "mod", "init", "gokrazy/build/"+filepath.Base(m.path)); err != nil {
			return err
		}
		if err := goCmd(bd, "get", m.path+"@"+m.version); err != nil {
			return err
		}
	}
	// parkpage itself: built from the working tree, with its own go.sum.
	bd := filepath.Join(dir, "builddir", parkpageModule)
	if err := os.MkdirAll(bd, 0o755); err != nil {
		return err
	}
	gomod := fmt.Sprintf("module gokrazy/build/parkpage\n\ngo 1.26.8\n\nrequire %s v0.0.0-00010101000000-000000000000\n\nreplace %s => %s\n",
		parkpageModule, parkpageModule, repo)
	if err := os.WriteFile(filepath.Join(bd, "go.mod"), []byte(gomod), 0o644); err != nil {
		return err
	}
	sum, err := os.ReadFile(filepath.Join(repo, "go.sum"))
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(bd, "go.sum"), sum, 0o644); err != nil {
		return err
	}
	// A tools-tagged import lets `go mod tidy` add parkpage's own
	// requirements (from its go.mod) without asking the proxy for anything.
	tools := "//go:build tools\n\npackage tools\n\nimport _ \"" + parkpagePkg + "\"\n"
	if err := os.WriteFile(filepath.Join(bd, "tools.go"), []byte(tools), 0o644); err != nil {
		return err
	}
	if err := goCmd(bd, "mod", "tidy"); err != nil {
		return err
	}
	if opts.testGPIOSim {
		return writeGPIOSimBuildDir(dir, repo)
	}
	return nil
}

// writeGPIOSimBuildDir pins the test-only gpiosim package: it lives in the
// image module (image/go.mod), found through replaces like parkpage.
func writeGPIOSimBuildDir(dir, repo string) error {
	bd := filepath.Join(dir, "builddir", gpiosimPkg)
	if err := os.MkdirAll(bd, 0o755); err != nil {
		return err
	}
	gomod := fmt.Sprintf("module gokrazy/build/gpiosim\n\ngo 1.26.8\n\nrequire %s v0.0.0-00010101000000-000000000000\n\nreplace %s => %s\n\nreplace %s => %s\n",
		imageModule, imageModule, filepath.Join(repo, "image"), parkpageModule, repo)
	if err := os.WriteFile(filepath.Join(bd, "go.mod"), []byte(gomod), 0o644); err != nil {
		return err
	}
	sum, err := os.ReadFile(filepath.Join(repo, "image", "go.sum"))
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(bd, "go.sum"), sum, 0o644); err != nil {
		return err
	}
	tools := "//go:build tools\n\npackage tools\n\nimport _ \"" + gpiosimPkg + "\"\n"
	if err := os.WriteFile(filepath.Join(bd, "tools.go"), []byte(tools), 0o644); err != nil {
		return err
	}
	return goCmd(bd, "mod", "tidy")
}

func goCmd(dir string, args ...string) error {
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %s (in %s): %w\n%s", strings.Join(args, " "), dir, err, stderr.String())
	}
	return nil
}
