package appliance

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/parkpage/parkpage/internal/config"
)

const validSite = `http:
  listen: 127.0.0.1:8080
zones:
  all:
    outputs:
      - type: lineout
        device: hw:0,0
`

// invalidSite has an unknown key on line 4, column 5.
const invalidSite = `zones:
  all:
    outputs:
    - typo: lineout
`

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func exists(path string) bool { _, err := os.Stat(path); return err == nil }

func TestImport(t *testing.T) {
	tests := []struct {
		name         string
		files        map[string]string
		wantImported []string
		wantProblem  string   // substring of a problem
		wantKept     []string // still on the boot partition
		wantGone     []string
		wantPerm     []string // in the state dir
	}{
		{name: "nothing"},
		{name: "valid config moved", files: map[string]string{BootConfig: validSite},
			wantImported: []string{BootConfig}, wantGone: []string{BootConfig}, wantPerm: []string{PermConfig}},
		{name: "invalid config stays and is reported with line and column", files: map[string]string{BootConfig: invalidSite},
			wantProblem: "boot partition parkpage.yaml:4:", wantKept: []string{BootConfig, BootProblems}},
		{name: "password hashed, plain file removed", files: map[string]string{BootPassword: "correct horse\n"},
			wantImported: []string{BootPassword}, wantGone: []string{BootPassword}, wantPerm: []string{PermHash}},
		{name: "short password refused and still removed", files: map[string]string{BootPassword: "short\n"},
			wantProblem: "at least 8 characters", wantGone: []string{BootPassword, PermHash}, wantKept: []string{BootProblems}},
		{name: "bad hash refused", files: map[string]string{BootPasswordHash: "not-a-hash\n"},
			wantProblem: "not a bcrypt hash", wantKept: []string{BootPasswordHash}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			boot, state := t.TempDir(), filepath.Join(t.TempDir(), "parkpage")
			for name, body := range tc.files {
				write(t, filepath.Join(boot, name), body)
			}
			imported, problems := Import(boot, state)
			if strings.Join(imported, ",") != strings.Join(tc.wantImported, ",") {
				t.Errorf("imported %v, want %v", imported, tc.wantImported)
			}
			all := strings.Join(problems, "\n")
			if tc.wantProblem == "" && len(problems) > 0 || tc.wantProblem != "" && !strings.Contains(all, tc.wantProblem) {
				t.Errorf("problems %q, want %q", all, tc.wantProblem)
			}
			for _, f := range tc.wantKept {
				if !exists(filepath.Join(boot, f)) {
					t.Errorf("%s gone from the boot partition, want kept", f)
				}
			}
			for _, f := range tc.wantGone {
				if exists(filepath.Join(boot, f)) || f == PermHash && exists(filepath.Join(state, f)) {
					t.Errorf("%s still there", f)
				}
			}
			for _, f := range tc.wantPerm {
				if !exists(filepath.Join(state, f)) {
					t.Errorf("%s not in the state dir", f)
				}
			}
			if tc.wantProblem != "" {
				b, _ := os.ReadFile(filepath.Join(boot, BootProblems))
				if !strings.Contains(string(b), tc.wantProblem) {
					t.Errorf("%s = %q, want %q in it", BootProblems, b, tc.wantProblem)
				}
			}
		})
	}
}

func TestImportedPasswordVerifies(t *testing.T) {
	boot, state := t.TempDir(), t.TempDir()
	write(t, filepath.Join(boot, BootPassword), "correct horse\r\n")
	Import(boot, state)
	h, err := os.ReadFile(filepath.Join(state, PermHash))
	if err != nil {
		t.Fatal(err)
	}
	if err := bcrypt.CompareHashAndPassword([]byte(strings.TrimSpace(string(h))), []byte("correct horse")); err != nil {
		t.Errorf("stored hash does not verify the dropped password: %v", err)
	}
}

func TestChoose(t *testing.T) {
	t.Run("embedded default, no credential", func(t *testing.T) {
		p := Choose(t.TempDir(), "", t.TempDir())
		if p.ConfigPath != "" || p.HasCredential || p.Source != "embedded default" {
			t.Errorf("%+v", p)
		}
	})
	t.Run("last good beats baked; invalid baked reported", func(t *testing.T) {
		state, etc := t.TempDir(), t.TempDir()
		write(t, filepath.Join(state, PermConfig), validSite)
		write(t, filepath.Join(etc, "baked.yaml"), invalidSite)
		p := Choose(state, filepath.Join(etc, "baked.yaml"), t.TempDir())
		if p.ConfigPath != filepath.Join(state, PermConfig) {
			t.Errorf("chose %q", p.ConfigPath)
		}
	})
	t.Run("invalid last good falls back to baked", func(t *testing.T) {
		state, etc := t.TempDir(), t.TempDir()
		write(t, filepath.Join(state, PermConfig), invalidSite)
		write(t, filepath.Join(etc, "baked.yaml"), validSite)
		p := Choose(state, filepath.Join(etc, "baked.yaml"), t.TempDir())
		if p.ConfigPath != filepath.Join(etc, "baked.yaml") || len(p.Problems) == 0 || !strings.Contains(p.Problems[0], ":4:") {
			t.Errorf("%+v", p)
		}
	})
	for _, base := range []string{"", validSite} {
		t.Run("credential merged into the config, admin API on the LAN", func(t *testing.T) {
			state, run := t.TempDir(), t.TempDir()
			if base != "" {
				write(t, filepath.Join(state, PermConfig), base)
			}
			h, _ := bcrypt.GenerateFromPassword([]byte("correct horse"), bcrypt.MinCost)
			write(t, filepath.Join(state, PermHash), string(h)+"\n")
			p := Choose(state, "", run)
			if !p.HasCredential || p.ConfigPath != filepath.Join(run, PermConfig) {
				t.Fatalf("%+v", p)
			}
			c, _, err := config.Load(p.ConfigPath)
			if err != nil {
				t.Fatal(err)
			}
			if c.HTTP.PasswordHash != string(h) || c.HTTP.Listen != "0.0.0.0:8080" {
				t.Errorf("http = %+v", c.HTTP)
			}
			if base != "" && len(c.Zones["all"].Outputs) != 1 {
				t.Errorf("site zones lost in the merge: %+v", c.Zones)
			}
		})
	}
}

func TestBootPartition(t *testing.T) {
	mi := filepath.Join(t.TempDir(), "mountinfo")
	write(t, mi, `22 1 8:2 / / ro,relatime - squashfs /dev/root ro
30 22 8:4 / /perm rw,relatime - ext4 /dev/sda4 rw
`)
	if dev, err := BootPartition(mi, "/perm"); err != nil || dev != "/dev/sda1" {
		t.Errorf("got %q, %v", dev, err)
	}
	for in, want := range map[string]string{"/dev/mmcblk0p4": "/dev/mmcblk0p1", "/dev/nvme0n1p4": "/dev/nvme0n1p1", "/dev/vda4": "/dev/vda1"} {
		if got, err := siblingPartition(in, 1); err != nil || got != want {
			t.Errorf("%s: %q, %v", in, got, err)
		}
	}
	if _, err := BootPartition(mi, "/nope"); err == nil {
		t.Error("no error for an unmounted path")
	}
}

// An installer drops a broken parkpage.yaml on a box that already runs a
// site config: the file is refused with file:line:col, stays on the
// boot partition next to its problems, and the box keeps the last good
// config; with nothing dropped at all the same config runs again.
func TestInvalidDropKeepsLastGood(t *testing.T) {
	boot, state := t.TempDir(), filepath.Join(t.TempDir(), "parkpage")
	write(t, filepath.Join(boot, BootConfig), validSite)
	if imported, problems := Import(boot, state); len(imported) != 1 || len(problems) != 0 {
		t.Fatalf("first drop: %v %v", imported, problems)
	}
	good, _ := os.ReadFile(filepath.Join(state, PermConfig))
	write(t, filepath.Join(boot, BootConfig), invalidSite)
	imported, problems := Import(boot, state)
	if len(imported) != 0 || len(problems) == 0 || !strings.Contains(problems[0], "boot partition parkpage.yaml:4:") {
		t.Fatalf("broken drop: imported %v, problems %q", imported, problems)
	}
	if now, _ := os.ReadFile(filepath.Join(state, PermConfig)); string(now) != string(good) {
		t.Errorf("last good config overwritten by the broken drop:\n%s", now)
	}
	for _, dropped := range []bool{true, false} {
		if !dropped {
			os.Remove(filepath.Join(boot, BootConfig))
			Import(boot, state)
		}
		p := Choose(state, "", t.TempDir())
		if p.ConfigPath != filepath.Join(state, PermConfig) || len(p.Problems) != 0 {
			t.Errorf("dropped=%v: %+v, want the last good config", dropped, p)
		}
	}
	if exists(filepath.Join(boot, BootProblems)) {
		t.Error("parkpage-problems.txt still on the boot partition after the broken file was removed")
	}
}
