package provision

import (
	"errors"
	"fmt"
	"strings"
)

// ErrBadMAC is a string that is not a MAC address.
var ErrBadMAC = errors.New("not a MAC address")

// ParseMAC reads a MAC address written as phones and installers write
// it: 805ec0123456, 80:5E:C0:12:34:56 or 80-5e-c0-12-34-56. It returns
// the 12 lower-case hex digits phones use in file names.
func ParseMAC(s string) (string, error) {
	if len(s) == 17 {
		sep := s[2]
		if sep != ':' && sep != '-' {
			return "", fmt.Errorf("%q: %w", s, ErrBadMAC)
		}
		for i := 2; i < 17; i += 3 {
			if s[i] != sep {
				return "", fmt.Errorf("%q: %w", s, ErrBadMAC)
			}
		}
		s = strings.ReplaceAll(s, string(sep), "")
	}
	if len(s) != 12 {
		return "", fmt.Errorf("%q: %w", s, ErrBadMAC)
	}
	b := []byte(strings.ToLower(s))
	for _, c := range b {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return "", fmt.Errorf("%q: %w", s, ErrBadMAC)
		}
	}
	if string(b) == "000000000000" {
		// Poly's "any phone" master file name, never a phone.
		return "", fmt.Errorf("%q: %w (all zeros)", s, ErrBadMAC)
	}
	return string(b), nil
}

// FormatMAC writes a MAC as 80:5e:c0:12:34:56.
func FormatMAC(mac string) string {
	if len(mac) != 12 {
		return mac
	}
	var parts []string
	for i := 0; i < 12; i += 2 {
		parts = append(parts, mac[i:i+2])
	}
	return strings.Join(parts, ":")
}

// Kind is what a phone asked for.
type Kind int

// Request kinds.
const (
	KindNone       Kind = iota // nothing parkpage serves (404)
	KindPhone                  // the phone's own file: Yealink <MAC>.cfg, Poly <MAC>-parkpage.cfg
	KindPolyMaster             // Poly <MAC>.cfg
	KindCommon                 // Yealink y0000000000xx.cfg
)

// ParseRequest reads the file name a phone requests under
// /provision/<vendor>/ and returns the MAC in it and what it is.
// Yealink asks for y0000000000xx.cfg (its model's common file) then
// <MAC>.cfg; Poly asks for <MAC>.cfg (the master file) then the files it
// lists. Anything else (logs, overrides, firmware, contacts, other
// vendors' names) is KindNone.
func ParseRequest(vendor, file string) (mac string, kind Kind) {
	switch vendor {
	case VendorYealink:
		if len(file) == 17 && strings.HasPrefix(file, "y0000000000") && strings.HasSuffix(file, ".cfg") && isDigits(file[11:13]) {
			return "", KindCommon
		}
		if base, ok := strings.CutSuffix(file, ".cfg"); ok {
			if m, err := ParseMAC(base); err == nil {
				return m, KindPhone
			}
		}
	case VendorPoly:
		if base, ok := strings.CutSuffix(file, "-parkpage.cfg"); ok {
			if m, err := ParseMAC(base); err == nil {
				return m, KindPhone
			}
			return "", KindNone
		}
		if base, ok := strings.CutSuffix(file, ".cfg"); ok {
			if m, err := ParseMAC(base); err == nil {
				return m, KindPolyMaster
			}
		}
	}
	return "", KindNone
}

func isDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}
