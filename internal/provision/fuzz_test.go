package provision

import (
	"strings"
	"testing"
)

func isMAC(s string) bool {
	if len(s) != 12 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// FuzzParseMAC: whatever the input, a MAC comes back as 12 lower-case hex
// digits that parse to themselves, also when formatted with colons.
func FuzzParseMAC(f *testing.F) {
	for _, s := range []string{"805ec0123456", "80:5E:C0:12:34:56", "80-5e-c0-12-34-56", "000000000000", "80:5e-c0:12:34:56", "zz", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMAC(s)
		if err != nil {
			return
		}
		if !isMAC(m) {
			t.Fatalf("ParseMAC(%q) = %q", s, m)
		}
		if m2, err := ParseMAC(FormatMAC(m)); err != nil || m2 != m {
			t.Fatalf("round trip %q: %q %v", m, m2, err)
		}
	})
}

// FuzzParseRequest: a file name from a phone's URL yields a clean MAC or
// nothing, never a path.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{"805ec0123456.cfg", "y000000000096.cfg", "0004f2abcdef-parkpage.cfg", "0004f2abcdef-app.log",
		"../phones.json", "000000000000.cfg", "805EC0123456.cfg", "y0000000000ab.cfg"} {
		f.Add("yealink", s)
		f.Add("poly", s)
	}
	f.Fuzz(func(t *testing.T, vendor, file string) {
		mac, kind := ParseRequest(vendor, file)
		switch kind {
		case KindPhone, KindPolyMaster:
			if !isMAC(mac) || !strings.Contains(strings.ToLower(file), mac) {
				t.Fatalf("%s %q: mac %q", vendor, file, mac)
			}
		case KindCommon:
			if vendor != VendorYealink || mac != "" {
				t.Fatalf("%s %q: common with mac %q", vendor, file, mac)
			}
		case KindNone:
			if mac != "" {
				t.Fatalf("%s %q: none with mac %q", vendor, file, mac)
			}
		}
	})
}
