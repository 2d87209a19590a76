// Package provision writes the phone configuration that puts parkpage on a
// Yealink T54W/T57W (with EXP50) or a Poly VVX 450 (with EM50): a second
// account registered to parkpage, a park key, one BLF key per park slot,
// page keys and the multicast groups of the phone's zones. It also keeps
// the installer's list of phones (MAC address -> park account, model,
// zones) in the state directory and serves their files to phones that
// fetch them over HTTP. The key names and values come from
// docs/provisioning.md (a copy is testdata/provisioning.md); keys that
// document marks as inferred are marked UNCONFIRMED in the output.
//
// It reads the config; it imports nothing that runs calls or pages.
package provision

import (
	"fmt"
	"slices"
	"strings"
)

// Model is a phone model as the CLI and the API name it.
type Model string

// Supported models.
const (
	YealinkT54W Model = "yealink-t54w"
	YealinkT57W Model = "yealink-t57w"
	PolyVVX450  Model = "poly-vvx450"
)

// Vendors, as they appear in provisioning URLs (/provision/<vendor>/).
const (
	VendorYealink = "yealink"
	VendorPoly    = "poly"
)

// ModelInfo describes a model's keys.
type ModelInfo struct {
	Model  Model
	Vendor string // yealink or poly
	Name   string // "Yealink T54W"
	// LineKeys is the number of programmable line keys on the phone.
	LineKeys int
	// Sidecar names the expansion module; SidecarKeys is its keys (all
	// pages) for one module.
	Sidecar     string
	SidecarKeys int
	// CommonFile is the model's common config a Yealink requests before
	// its <MAC>.cfg (y0000000000xx.cfg); "" for Poly.
	CommonFile string
	// Unconfirmed says which of these figures are inferred.
	Unconfirmed string
}

// Models lists the supported models.
var Models = []ModelInfo{
	{Model: YealinkT54W, Vendor: VendorYealink, Name: "Yealink T54W", LineKeys: 27, Sidecar: "EXP50", SidecarKeys: 60,
		CommonFile: "y000000000096.cfg", Unconfirmed: "27 line keys, 60 EXP50 keys (20 x 3 pages) and the common file name are inferred"},
	{Model: YealinkT57W, Vendor: VendorYealink, Name: "Yealink T57W", LineKeys: 29, Sidecar: "EXP50", SidecarKeys: 60,
		CommonFile: "y000000000097.cfg", Unconfirmed: "29 line keys, 60 EXP50 keys (20 x 3 pages) and the common file name are inferred"},
	{Model: PolyVVX450, Vendor: VendorPoly, Name: "Poly VVX 450", LineKeys: 12, Sidecar: "EM50", SidecarKeys: 66,
		Unconfirmed: "66 EM50 keys (22 x 3 pages) are inferred"},
}

// Lookup returns the model named m.
func Lookup(m string) (ModelInfo, error) {
	for _, mi := range Models {
		if string(mi.Model) == strings.ToLower(strings.TrimSpace(m)) {
			return mi, nil
		}
	}
	var names []string
	for _, mi := range Models {
		names = append(names, string(mi.Model))
	}
	return ModelInfo{}, fmt.Errorf("model %q: want one of %s", m, strings.Join(names, ", "))
}

// ModelNames lists the models' names.
func ModelNames() []string {
	var out []string
	for _, mi := range Models {
		out = append(out, string(mi.Model))
	}
	return slices.Clip(out)
}
