// Package appliance is what the flashed image needs beyond the service
// itself: at every start it imports the files an installer dropped on the
// FAT boot partition (a site config, an admin password or password hash)
// into the persistent state directory, picks the config to run (the last
// good one, the baked-in one, or the embedded default) and, while no admin
// credential exists, serves a LAN page that only sets that credential,
// guarded by a one-time code shown on the console.
package appliance

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/bcrypt"

	"github.com/parkpage/parkpage/internal/config"
)

// Files an installer may drop on the boot partition, and where they go.
const (
	BootConfig       = "parkpage.yaml"           // site config
	BootPassword     = "admin-password.txt"      // plain admin password (hashed, then deleted)
	BootPasswordHash = "admin-password-hash.txt" // bcrypt hash from `parkpage hash-password`
	BootProblems     = "parkpage-problems.txt"   // written back when a dropped file is refused

	PermConfig = "parkpage.yaml" // last good site config, under the state dir
	PermHash   = "admin.bcrypt"  // admin credential, under the state dir
	PermPBX    = "pbx.uri"       // the PBX named on the setup page (sip.pbx), under the state dir
)

// Import moves the installer's files from the mounted boot partition dir
// into stateDir. A valid config or credential is written to stateDir and
// removed from dir; an invalid one stays where it is (so the installer
// can fix it) and its problems, with file:line:col, are returned and also
// written to dir/parkpage-problems.txt. It never fails the boot: the
// returned problems are for the console and the setup page.
func Import(dir, stateDir string) (imported, problems []string) {
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, []string{fmt.Sprintf("state directory %s: %v", stateDir, err)}
	}
	if data, err := os.ReadFile(filepath.Join(dir, BootConfig)); err == nil {
		if _, _, perr := config.Parse("boot partition "+BootConfig, data); perr != nil {
			problems = append(problems, problemLines(perr)...)
		} else if err := writeFileSync(filepath.Join(stateDir, PermConfig), data, 0o600); err != nil {
			problems = append(problems, fmt.Sprintf("saving %s: %v", BootConfig, err))
		} else {
			imported = append(imported, BootConfig)
			os.Remove(filepath.Join(dir, BootConfig))
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		problems = append(problems, fmt.Sprintf("boot partition %s: %v", BootConfig, err))
	}
	for _, name := range []string{BootPassword, BootPasswordHash} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		var hash []byte
		if err == nil {
			hash, err = credentialFrom(name, data)
		}
		if err == nil {
			err = writeFileSync(filepath.Join(stateDir, PermHash), append(hash, '\n'), 0o600)
		}
		if err != nil {
			problems = append(problems, fmt.Sprintf("boot partition %s: %v", name, err))
			if name == BootPassword {
				// Never leave a plain password lying on the FAT partition.
				os.Remove(filepath.Join(dir, name))
			}
			continue
		}
		imported = append(imported, name)
		os.Remove(filepath.Join(dir, name))
	}
	report := filepath.Join(dir, BootProblems)
	if len(problems) > 0 {
		os.WriteFile(report, []byte("parkpage refused these files (the box keeps running on its last good config):\n"+strings.Join(problems, "\n")+"\n"), 0o644)
	} else {
		os.Remove(report)
	}
	syscall.Sync()
	return imported, problems
}

func problemLines(err error) []string {
	var ce *config.Error
	if errors.As(err, &ce) {
		var out []string
		for _, p := range ce.Problems {
			out = append(out, p.String())
		}
		return out
	}
	return []string{err.Error()}
}

// credentialFrom turns a dropped password or hash file into a bcrypt hash.
func credentialFrom(name string, data []byte) ([]byte, error) {
	line := strings.TrimRight(firstLine(string(data)), "\r\n")
	if name == BootPasswordHash {
		line = strings.TrimSpace(line)
		if _, err := bcrypt.Cost([]byte(line)); err != nil {
			return nil, fmt.Errorf("not a bcrypt hash (make one with `parkpage hash-password`): %v", err)
		}
		return []byte(line), nil
	}
	if len(line) < 8 {
		return nil, errors.New("use a password of at least 8 characters")
	}
	return bcrypt.GenerateFromPassword([]byte(line), bcrypt.DefaultCost)
}

func firstLine(s string) string {
	sc := bufio.NewScanner(strings.NewReader(s))
	if sc.Scan() {
		return sc.Text()
	}
	return ""
}

// writeFileSync writes a file atomically and durably (temp, fsync, rename):
// a power cut during first boot leaves the old file or the new one.
func writeFileSync(path string, data []byte, perm os.FileMode) error {
	return config.WriteFile(path, data, perm)
}

// Plan is the config the appliance runs on.
type Plan struct {
	// ConfigPath is the file to run (empty: the embedded default).
	ConfigPath string
	// Source says where the config came from, for the log.
	Source string
	// HasCredential is true when the running config has an admin credential.
	HasCredential bool
	// Problems are the reasons a candidate config was passed over.
	Problems []string
}

// Choose picks the config to run: the last good site config in stateDir,
// else the baked-in one (may be empty), else the embedded default. When
// stateDir holds an admin credential and the chosen config has none, it
// writes runDir/parkpage.yaml: the chosen config with http.password_hash
// set and the admin API moved from loopback to every interface (port
// kept), so the installer's credential opens the admin page on the LAN.
func Choose(stateDir, baked, runDir string) Plan {
	var p Plan
	var data []byte
	for _, c := range []struct{ path, what string }{
		{filepath.Join(stateDir, PermConfig), "site config from the boot partition"},
		{baked, "site config baked into the image"},
	} {
		if c.path == "" {
			continue
		}
		b, err := os.ReadFile(c.path)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err == nil {
			_, _, err = config.Parse(c.path, b)
		}
		if err != nil {
			p.Problems = append(p.Problems, problemLines(err)...)
			continue
		}
		p.ConfigPath, p.Source, data = c.path, c.what+" ("+c.path+")", b
		break
	}
	if data == nil {
		p.Source, data = "embedded default", config.Default
	}
	cfg, _, err := config.Parse("effective", data)
	if err != nil {
		p.Problems = append(p.Problems, problemLines(err)...)
		return Plan{Source: "embedded default", Problems: p.Problems}
	}
	p.HasCredential = cfg.HTTP.HasCredential()
	// What the setup page saved fills in what the chosen config leaves
	// open: the admin credential and the PBX (sip.pbx).
	var hash, pbx string
	if !p.HasCredential {
		if b, err := os.ReadFile(filepath.Join(stateDir, PermHash)); err == nil {
			hash = strings.TrimSpace(string(b))
		}
	}
	if cfg.SIP.PBX == "" {
		if b, err := os.ReadFile(filepath.Join(stateDir, PermPBX)); err == nil {
			pbx = strings.TrimSpace(string(b))
		}
	}
	if hash == "" && pbx == "" {
		return p
	}
	merged, err := withSetup(data, hash, pbx, cfg.HTTP.Listen)
	if err == nil {
		if _, _, err = config.Parse("effective", merged); err == nil {
			if err = os.MkdirAll(runDir, 0o700); err == nil {
				err = writeFileSync(filepath.Join(runDir, PermConfig), merged, 0o600)
			}
		}
	}
	if err != nil {
		p.Problems = append(p.Problems, fmt.Sprintf("adding the setup page's settings to the config: %v", err))
		return p
	}
	p.ConfigPath = filepath.Join(runDir, PermConfig)
	if hash != "" {
		p.Source += " with the admin credential from " + filepath.Join(stateDir, PermHash)
		p.HasCredential = true
	}
	if pbx != "" {
		p.Source += " with sip.pbx " + pbx + " from " + filepath.Join(stateDir, PermPBX)
	}
	return p
}

// withSetup sets, in a YAML document, http.password_hash (when hash is
// not empty; the admin API then moves from loopback only to all
// interfaces) and sip.pbx (when pbx is not empty).
func withSetup(data []byte, hash, pbx, listen string) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	if len(doc.Content) == 0 {
		doc.Content = []*yaml.Node{{Kind: yaml.MappingNode}}
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, errors.New("config is not a mapping")
	}
	section := func(name string) *yaml.Node {
		n := mapGet(root, name)
		if n == nil {
			n = &yaml.Node{Kind: yaml.MappingNode}
			root.Content = append(root.Content, scalar(name), n)
		}
		return n
	}
	if hash != "" {
		httpNode := section("http")
		mapSet(httpNode, "password_hash", hash)
		host, port, err := net.SplitHostPort(listen)
		if err == nil {
			if ip := net.ParseIP(host); host == "localhost" || ip != nil && ip.IsLoopback() {
				mapSet(httpNode, "listen", net.JoinHostPort("0.0.0.0", port))
			}
		}
	}
	if pbx != "" {
		mapSet(section("sip"), "pbx", pbx)
	}
	return yaml.Marshal(&doc)
}

func scalar(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Value: s} }

func mapGet(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func mapSet(m *yaml.Node, key, value string) {
	if v := mapGet(m, key); v != nil {
		*v = *scalar(value)
		return
	}
	m.Content = append(m.Content, scalar(key), scalar(value))
}
