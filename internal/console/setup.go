package console

import (
	"net/http"
	"sort"

	"github.com/parkpage/parkpage/internal/api"
)

// The installer's pages: Setup (every section of the config as forms,
// saved through the same validation as check-config) and Test outputs
// (page each zone or output and see whether it went out; hear an
// announcement as a zone's codec delivers it). Their JSON routes live in
// the API (internal/api/setup.go): /api/v1/config..., POST
// /api/v1/zones/{zone}/test, GET /api/v1/hear.
//
// The setup forms are built in the browser (setup.js) from one schema of
// the config's keys and GET /api/v1/config: each field carries its key
// path, so an edit is sent as "set this key" (the server edits the YAML
// tree and keeps the file's comments) and every problem check-config
// reports lands next to the field of its key.

func init() {
	funcs["typeName"] = outputTypeName
	RegisterPage(Page{Path: "/setup", Nav: NavSetup, Title: "Setup", Template: "setup.html",
		Scripts: []string{"setup.js"}, Data: setupData})
	RegisterPage(Page{Path: "/test", Nav: NavTest, Title: "Test outputs", Template: "outputs.html",
		Scripts: []string{"outputs.js"}, Data: outputsData})
}

// setupView is the Setup page's server-side part: where the config lives.
type setupView struct {
	Available bool
	Doc       api.ConfigDoc
}

func setupData(r *http.Request, env *Env) (any, error) {
	sb, ok := env.Backend.(api.SetupBackend)
	if !ok {
		return setupView{}, nil
	}
	doc, err := sb.ConfigDoc()
	if err != nil {
		return nil, err
	}
	return setupView{Available: true, Doc: doc}, nil
}

// outputsView is the Test outputs page: the running zones and the slots
// whose announcements can be heard.
type outputsView struct {
	Zones []api.Zone
	Slots []api.Slot
}

func outputsData(r *http.Request, env *Env) (any, error) {
	v := outputsView{Zones: env.Backend.Zones(), Slots: env.Backend.Slots()}
	sort.SliceStable(v.Slots, func(i, j int) bool { return v.Slots[i].Slot < v.Slots[j].Slot })
	return v, nil
}

// outputTypeName is an output type as an installer calls it.
func outputTypeName(t string) string {
	switch t {
	case "polycom":
		return "Polycom group paging"
	case "rtp":
		return "RTP multicast"
	case "sip":
		return "SIP amplifier"
	case "lineout":
		return "Line out"
	}
	return t
}
