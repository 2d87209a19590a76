package provision

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/parkpage/parkpage/internal/config"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func seedOffice(t *testing.T) *config.Config {
	t.Helper()
	cfg, _, err := config.Load("testdata/seed-office.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// phones of provisioning.md §3: the receptionist's desk phones with their
// sidecars, and phones in the warehouse that play its pages.
var seedPhones = map[string]Phone{
	"yealink-t54w-exp50-reception": {Model: YealinkT54W, User: "2001", Sidecar: true, MAC: "805ec0123456"},
	"yealink-t57w-warehouse":       {Model: YealinkT57W, User: "2001", Zones: []string{"all", "warehouse"}, MAC: "805ec0abcdef"},
	"poly-vvx450-em50-reception":   {Model: PolyVVX450, User: "2001", Sidecar: true, MAC: "0004f2123456"},
	"poly-vvx450-warehouse":        {Model: PolyVVX450, User: "2001", Zones: []string{"warehouse", "all"}, MAC: "0004f2abcdef"},
}

func generate(t *testing.T, cfg *config.Config, name string) *File {
	t.Helper()
	srv, err := SIPServer(cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	f, err := Generate(cfg, seedPhones[name], srv)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return f
}

// TestGolden compares each generated file with testdata/golden (go test
// -update rewrites them; read the diff).
func TestGolden(t *testing.T) {
	cfg := seedOffice(t)
	for name := range seedPhones {
		t.Run(name, func(t *testing.T) {
			f := generate(t, cfg, name)
			path := filepath.Join("testdata", "golden", name+".cfg")
			if *update {
				os.MkdirAll(filepath.Dir(path), 0o755)
				if err := os.WriteFile(path, f.Body, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(f.Body, want) {
				t.Errorf("%s differs from %s:\n%s", name, path, f.Body)
			}
		})
	}
}

// docBlocks returns the fenced code blocks of provisioning.md.
func docBlocks(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile("testdata/provisioning.md")
	if err != nil {
		t.Fatal(err)
	}
	var blocks []string
	var cur []string
	in := false
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "```") {
			if in {
				blocks = append(blocks, strings.Join(cur, "\n"))
			}
			in, cur = !in, nil
			continue
		}
		if in {
			cur = append(cur, line)
		}
	}
	return blocks
}

// settings splits a block or a generated file into "key=value" items:
// Yealink "key = value" lines and Poly key="value" attributes.
var polyAttr = regexp.MustCompile(`([A-Za-z][A-Za-z0-9_.]*)="([^"]*)"`)

func settings(s string) []string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "<!--") {
			continue
		}
		if ms := polyAttr.FindAllStringSubmatch(line, -1); ms != nil {
			for _, m := range ms {
				out = append(out, m[1]+"="+m[2])
			}
			continue
		}
		if k, v, ok := strings.Cut(line, " = "); ok {
			out = append(out, strings.TrimSpace(k)+"="+strings.TrimSpace(v))
		}
	}
	return out
}

// TestAgainstProvisioningDoc checks the generated files line by line
// against the examples of provisioning.md: every setting of a block must
// be in the file generated for the same phone, with the same value.
func TestAgainstProvisioningDoc(t *testing.T) {
	cfg := seedOffice(t)
	blocks := docBlocks(t)
	tests := []struct {
		first  string // the block's first setting
		phone  string
		except []string // settings the doc shows with a placeholder or generic value
	}{
		// §1.1 (the password is the seed user's).
		{"account.2.enable=1", "yealink-t54w-exp50-reception", []string{"account.2.password=<secret>"}},
		// §1.3, the EXP50 key.
		{"expansion_module.1.key.1.type=16", "yealink-t54w-exp50-reception", nil},
		// §3, the receptionist's T54W + EXP50.
		{"expansion_module.1.key.1.type=16", "yealink-t54w-exp50-reception", nil},
		// §1.5 for a phone listening to "All" first; parkpage lets every
		// listened group barge (§3: priority = number of groups).
		{"multicast.listen_address.1.ip_address=239.10.0.4:10004", "yealink-t57w-warehouse", []string{"multicast.receive_priority.priority=31"}},
		// §2.1.
		{"reg.2.address=2001", "poly-vvx450-em50-reception", []string{"reg.2.auth.password=<secret>"}},
		// §2.2.
		{"attendant.reg=2", "poly-vvx450-em50-reception", nil},
		// §2.5 for the warehouse ceiling phone.
		{"ptt.address=224.0.1.116", "poly-vvx450-warehouse", nil},
	}
	used := map[int]bool{}
	for _, tc := range tests {
		t.Run(tc.first+"/"+tc.phone, func(t *testing.T) {
			got := map[string]bool{}
			for _, s := range settings(string(generate(t, cfg, tc.phone).Body)) {
				got[s] = true
			}
			found := false
			for i, b := range blocks {
				want := settings(b)
				if len(want) == 0 || want[0] != tc.first || used[i] {
					continue
				}
				used[i], found = true, true
				for _, w := range want {
					if strings.Contains(w, "<secret>") {
						w = strings.ReplaceAll(w, "<secret>", "s3cret-park")
					}
					if !got[w] && !contains(tc.except, w) {
						t.Errorf("provisioning.md block %d: %s is not in the %s file", i, w, tc.phone)
					}
				}
				break
			}
			if !found {
				t.Fatalf("no block of provisioning.md starts with %s", tc.first)
			}
		})
	}

	// Settings given in the prose of §1.3, §2.3 and §3.
	prose := map[string][]string{
		"yealink-t54w-exp50-reception": {"transfer.dsskey_deal_type=2", "linekey.10.value=804", "linekey.10.label=Pg All",
			"expansion_module.1.key.4.value=704", "expansion_module.1.key.4.label=Sales", "expansion_module.1.key.5.label=Generic"},
		"yealink-t57w-warehouse": {"multicast.listen_address.1.ip_address=239.10.0.4:10004", "multicast.listen_address.1.label=All",
			"multicast.listen_address.2.ip_address=239.10.0.1:10001", "multicast.listen_address.2.label=Warehouse",
			"multicast.receive_priority.priority=2"},
		"poly-vvx450-em50-reception": {"attendant.reg=2", "attendant.resourceList.5.address=705@192.0.2.10", "attendant.resourceList.5.type=automata",
			"lineKey.13.category=BLF", "lineKey.13.index=1", "lineKey.17.category=BLF", "lineKey.17.index=5", "lineKey.reassignment.enabled=1",
			"feature.enhancedFeatureKeys.enabled=1", "feature.EFKLineKey.enabled=1", "efk.efklist.1.status=1", "efk.efklist.1.label=Park",
			"efk.efklist.1.action.string=700$Trefer$"},
		"poly-vvx450-warehouse": {"ptt.pageMode.group.1.label=Warehouse", "ptt.pageMode.group.1.subscribed=1",
			"ptt.pageMode.group.4.label=All", "ptt.pageMode.group.4.subscribed=1",
			"ptt.pageMode.group.2.subscribed=0", "ptt.pageMode.group.3.subscribed=0"},
	}
	for phone, want := range prose {
		got := settings(string(generate(t, cfg, phone).Body))
		for _, w := range want {
			if !contains(got, w) {
				t.Errorf("%s: %s (provisioning.md prose) is missing", phone, w)
			}
		}
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestUnconfirmedMarked checks that every setting provisioning.md marks as
// inferred (I) is written after an UNCONFIRMED comment.
func TestUnconfirmedMarked(t *testing.T) {
	cfg := seedOffice(t)
	inferred := map[string][]string{
		"yealink-t54w-exp50-reception": {"transfer.dsskey_deal_type"},
		"yealink-t57w-warehouse":       {"transfer.dsskey_deal_type", "multicast.listen_address.1.channel", "multicast.listen_address.2.channel"},
		"poly-vvx450-warehouse": {"ptt.pageMode.defaultGroup", "ptt.pageMode.priorityGroup", "ptt.pageMode.emergencyGroup",
			"ptt.pageMode.displayName", "ptt.pageMode.codec", "ptt.pageMode.payloadSize", "efk.efklist.2.action.string"},
	}
	for phone, keys := range inferred {
		f := generate(t, cfg, phone)
		lines := strings.Split(string(f.Body), "\n")
		for _, k := range keys {
			if !contains(f.Unconfirmed, k) {
				t.Errorf("%s: %s not listed as unconfirmed (%v)", phone, k, f.Unconfirmed)
			}
			// The nearest comment above the key must say UNCONFIRMED.
			for i, l := range lines {
				l = strings.TrimSpace(l)
				if !strings.HasPrefix(l, k+" =") && !strings.HasPrefix(l, k+"=") {
					continue
				}
				j := i - 1
				for j >= 0 && !strings.Contains(lines[j], "##") && !strings.Contains(lines[j], "<!--") {
					j--
				}
				if j < 0 || !strings.Contains(lines[j], "UNCONFIRMED") {
					t.Errorf("%s: %s is not under an UNCONFIRMED comment", phone, k)
				}
			}
		}
		// And a confirmed key is not.
		for _, k := range []string{"account.2.enable", "reg.2.address"} {
			if contains(f.Unconfirmed, k) {
				t.Errorf("%s: %s marked unconfirmed", phone, k)
			}
		}
	}
}

func TestErrors(t *testing.T) {
	cfg := seedOffice(t)
	srv, _ := SIPServer(cfg, "")
	for _, tc := range []struct {
		name string
		p    Phone
		want error
		text string
	}{
		{"unknown user", Phone{Model: YealinkT54W, User: "9999"}, ErrNoUser, "9999"},
		{"unknown model", Phone{Model: "cisco-8841", User: "2001"}, nil, "cisco-8841"},
		{"unknown zone", Phone{Model: YealinkT54W, User: "2001", Zones: []string{"attic"}}, nil, "attic"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Generate(cfg, tc.p, srv)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("err = %v, want %v naming %q", err, tc.want, tc.text)
			}
		})
	}
	// Ten slots and four page keys do not fit a VVX 450 without its EM50.
	cfg.Park.Lots[0].Slots = config.Range{First: 701, Last: 710}
	_, err := Generate(cfg, Phone{Model: PolyVVX450, User: "2001"}, srv)
	if !errors.Is(err, ErrTooMany) || !strings.Contains(err.Error(), "EM50") {
		t.Fatalf("err = %v, want ErrTooMany suggesting the EM50", err)
	}
	if _, err := Generate(cfg, Phone{Model: PolyVVX450, User: "2001", Sidecar: true}, srv); err != nil {
		t.Fatalf("with EM50: %v", err)
	}
	// A T54W fits them on its line keys (6 to 20).
	f, err := Generate(cfg, Phone{Model: YealinkT54W, User: "2001"}, srv)
	if err != nil {
		t.Fatal(err)
	}
	if got := settings(string(f.Body)); !contains(got, "linekey.20.value=710") || !contains(got, "linekey.20.extension=%NULL%") {
		t.Fatalf("slot 710 not on line key 20:\n%s", f.Body)
	}
}

func TestSIPServer(t *testing.T) {
	cfg := seedOffice(t)
	cfg.SIP.Domain = ""
	if _, err := SIPServer(cfg, ""); !errors.Is(err, ErrNoServer) {
		t.Fatalf("no host: %v", err)
	}
	cfg.SIP.Listen = []config.Listener{{Transport: "tcp", Address: "0.0.0.0:5070"}}
	s, err := SIPServer(cfg, "10.1.2.3")
	if err != nil || s != (Server{"10.1.2.3", 5070, "tcp"}) {
		t.Fatalf("got %+v %v", s, err)
	}
}
