package console

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"

	"github.com/parkpage/parkpage/internal/api"
	"github.com/parkpage/parkpage/internal/config"
	"github.com/parkpage/parkpage/internal/provision"
)

// Keys under which the wiring provides provisioning (Env.Provide).
const (
	// PhonesKey: *provision.Registry.
	PhonesKey = "provision.Registry"
	// ProvisionKey: *provision.Handler (serves /provision/ to phones).
	ProvisionKey = "provision.Handler"
	// ConfigKey: func() *config.Config, the config in force.
	ConfigKey = "config.Config"
)

func init() {
	RegisterPage(Page{Path: "/phones", Nav: NavPhones, Title: "Phones", Template: "phones.html", Data: phonesPageData})
	RegisterRoute("POST /phones", func(env *Env) http.Handler { return http.HandlerFunc(env.savePhone) })
	RegisterRoute("POST /phones/delete", func(env *Env) http.Handler { return http.HandlerFunc(env.deletePhone) })
	RegisterRoute("GET /phones/file", func(env *Env) http.Handler { return http.HandlerFunc(env.phoneFile) })
	RegisterRoute("GET /api/v1/provision", func(env *Env) http.Handler { return http.HandlerFunc(env.phoneFile) })
	RegisterRoute("GET /api/v1/phones", func(env *Env) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			reg := phonesOf(env)
			if reg == nil {
				WriteError(w, http.StatusServiceUnavailable, "", "no phone registry")
				return
			}
			WriteJSON(w, http.StatusOK, map[string]any{"phones": reg.Phones(), "provisioning": provisioningInfo(r, reg)})
		})
	})
	RegisterRoute("PUT /api/v1/phones/{mac}", func(env *Env) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var p provision.Phone
			if err := DecodeJSON(w, r, &p); err != nil {
				var fe *api.FieldError
				if errors.As(err, &fe) {
					WriteError(w, http.StatusBadRequest, fe.Field, fe.Msg)
					return
				}
				WriteError(w, http.StatusBadRequest, "", err.Error())
				return
			}
			p.MAC = r.PathValue("mac")
			saved, errs := env.putPhone(r, p)
			if len(errs) > 0 {
				for f, m := range errs {
					WriteError(w, http.StatusBadRequest, f, m)
					return
				}
			}
			WriteJSON(w, http.StatusOK, saved)
		})
	})
	RegisterRoute("DELETE /api/v1/phones/{mac}", func(env *Env) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			reg := phonesOf(env)
			mac, err := provision.ParseMAC(r.PathValue("mac"))
			if reg == nil || err != nil {
				WriteError(w, http.StatusNotFound, "mac", "no such phone")
				return
			}
			ok, err := reg.Delete(mac)
			switch {
			case err != nil:
				WriteError(w, http.StatusInternalServerError, "", err.Error())
			case !ok:
				WriteError(w, http.StatusNotFound, "mac", "no such phone")
			default:
				WriteJSON(w, http.StatusOK, map[string]string{"deleted": mac})
			}
		})
	})
	// Phones fetch their files with the provisioning password, not a
	// console login (provision.Handler checks it).
	registerRoute(Route{Pattern: "/provision/", Public: true, Handler: func(env *Env) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h, _ := env.Value(ProvisionKey).(*provision.Handler)
			if h == nil {
				http.NotFound(w, r)
				return
			}
			h.ServeHTTP(w, r)
		})
	}})
}

func phonesOf(env *Env) *provision.Registry {
	reg, _ := env.Value(PhonesKey).(*provision.Registry)
	return reg
}

func configOf(env *Env) *config.Config {
	if f, ok := env.Value(ConfigKey).(func() *config.Config); ok {
		return f()
	}
	return nil
}

// requestHost is the host the browser reached the console on: phones on
// the same LAN reach parkpage there too.
func requestHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.Host)
	if err != nil {
		return r.Host
	}
	return host
}

// ProvisioningInfo tells the installer where phones fetch their files.
type ProvisioningInfo struct {
	YealinkURL string `json:"yealink_url"`
	PolyURL    string `json:"poly_url"`
	User       string `json:"user"`
	Password   string `json:"password"`
}

func provisioningInfo(r *http.Request, reg *provision.Registry) ProvisioningInfo {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	base := scheme + "://" + r.Host + "/provision/"
	return ProvisioningInfo{YealinkURL: base + "yealink/", PolyURL: base + "poly/", User: provision.HTTPUser, Password: reg.Password()}
}

// phoneRow is one phone on the Phones page.
type phoneRow struct {
	provision.Phone
	MACText   string
	ModelName string
	Fetched   string // "12 min ago from 10.0.0.31", "never"
	Problem   string // why its file cannot be generated
}

// phonesView is the Phones page's data.
type phonesView struct {
	Phones   []phoneRow
	Info     ProvisioningInfo
	Models   []provision.ModelInfo
	Users    []string
	Zones    []string
	Form     provision.Phone // the add form's values
	MACInput string
	Errors   map[string]string
	Saved    string
	// Preview is the generator's output for the query's phone.
	Gen         provision.Phone
	Preview     []previewLine
	PreviewFile string
	PreviewErr  string
	Notes       []string
	Unconfirmed int
	Ready       bool // a registry and a config are there
}

// previewLine is one line of a generated file, marked when it is (or
// belongs to) an UNCONFIRMED setting.
type previewLine struct {
	Text    string
	Unsure  bool
	Comment bool
}

func phonesPageData(r *http.Request, env *Env) (any, error) {
	v := &phonesView{Errors: map[string]string{}}
	env.fillPhones(r, v)
	v.Saved = r.URL.Query().Get("saved")
	q := r.URL.Query()
	if q.Get("model") != "" || q.Get("user") != "" {
		v.Gen = provision.Phone{Model: provision.Model(q.Get("model")), User: q.Get("user"), Sidecar: q.Get("sidecar") == "1", Zones: q["zone"]}
		env.preview(r, v, v.Gen)
	} else if mac := q.Get("mac"); mac != "" {
		if m, err := provision.ParseMAC(mac); err == nil {
			if p, ok := phonesOf(env).Phone(m); ok {
				v.Gen = p
				env.preview(r, v, p)
			}
		}
	}
	return v, nil
}

func (env *Env) fillPhones(r *http.Request, v *phonesView) {
	reg, cfg := phonesOf(env), configOf(env)
	v.Models = provision.Models
	v.Ready = reg != nil && cfg != nil
	if !v.Ready {
		return
	}
	v.Info = provisioningInfo(r, reg)
	defer func() {
		// The generator's starting point: the first user on a T54W.
		if v.Gen.Model == "" {
			v.Gen.Model = provision.YealinkT54W
			if len(v.Users) > 0 {
				v.Gen.User = v.Users[0]
			}
		}
	}()
	for u := range cfg.SIP.Users {
		v.Users = append(v.Users, u)
	}
	slices.Sort(v.Users)
	for z := range cfg.Zones {
		v.Zones = append(v.Zones, z)
	}
	slices.Sort(v.Zones)
	h, _ := env.Value(ProvisionKey).(*provision.Handler)
	srv, _ := provision.SIPServer(cfg, requestHost(r))
	for _, p := range reg.Phones() {
		row := phoneRow{Phone: p, MACText: provision.FormatMAC(p.MAC), Fetched: "never"}
		if mi, err := provision.Lookup(string(p.Model)); err == nil {
			row.ModelName = mi.Name
			if p.Sidecar {
				row.ModelName += " + " + mi.Sidecar
			}
		}
		if h != nil {
			if f, ok := h.LastFetch(p.MAC); ok {
				row.Fetched = Ago(timeSince(f.Time)) + " from " + f.Source
			}
		}
		if _, err := provision.Generate(cfg, p, srv); err != nil {
			row.Problem = err.Error()
		}
		v.Phones = append(v.Phones, row)
	}
}

func (env *Env) preview(r *http.Request, v *phonesView, p provision.Phone) {
	cfg := configOf(env)
	if cfg == nil {
		return
	}
	srv, err := provision.SIPServer(cfg, requestHost(r))
	var f *provision.File
	if err == nil {
		f, err = provision.Generate(cfg, p, srv)
	}
	if err != nil {
		v.PreviewErr = err.Error()
		return
	}
	v.PreviewFile, v.Notes, v.Unconfirmed = f.Name, f.Notes, len(f.Unconfirmed)
	v.Preview = markUnconfirmed(string(f.Body))
}

// markUnconfirmed splits a generated file into lines and marks those an
// UNCONFIRMED comment is about: the next Yealink key (or, for the slot
// keys, every .value line of the block), or a Poly element to its "/>".
func markUnconfirmed(body string) []previewLine {
	var out []previewLine
	mode := "" // "", "next", "values", "element"
	for _, l := range strings.Split(strings.TrimRight(body, "\n"), "\n") {
		t := strings.TrimSpace(l)
		pl := previewLine{Text: l, Comment: strings.HasPrefix(t, "#") || strings.HasPrefix(t, "<!--")}
		switch {
		case pl.Comment && strings.Contains(t, "UNCONFIRMED:"):
			pl.Unsure = true
			switch {
			case strings.HasPrefix(t, "<!--"):
				mode = "element"
			case strings.Contains(t, "value"):
				mode = "values"
			default:
				mode = "next"
			}
		case pl.Comment || t == "":
			if mode != "element" {
				mode = ""
			}
		case mode == "element":
			pl.Unsure = true
			if t == "/>" {
				mode = ""
			}
		case mode == "next":
			pl.Unsure, mode = true, ""
		case mode == "values":
			pl.Unsure = strings.Contains(t, ".value = ")
		}
		out = append(out, pl)
	}
	return out
}

// putPhone validates and saves a phone; errs maps form fields to problems.
func (env *Env) putPhone(r *http.Request, p provision.Phone) (provision.Phone, map[string]string) {
	errs := map[string]string{}
	reg, cfg := phonesOf(env), configOf(env)
	if reg == nil || cfg == nil {
		errs[""] = "provisioning is not available"
		return p, errs
	}
	mac, err := provision.ParseMAC(p.MAC)
	if err != nil {
		errs["mac"] = "Not a MAC address: write 12 hex digits, e.g. 80:5e:c0:12:34:56 (on the phone's label)."
	}
	p.MAC = mac
	if _, err := provision.Lookup(string(p.Model)); err != nil {
		errs["model"] = "Choose a model."
	}
	if cfg.SIP.Users[p.User] == nil {
		errs["user"] = fmt.Sprintf("%q is not a SIP user of parkpage: add it under SIP users first.", p.User)
	}
	for _, z := range p.Zones {
		if cfg.Zones[z] == nil {
			errs["zones"] = fmt.Sprintf("No zone %q.", z)
		}
	}
	if len(p.Name) > 80 {
		errs["name"] = "At most 80 characters."
	}
	if len(errs) > 0 {
		return p, errs
	}
	srv, _ := provision.SIPServer(cfg, requestHost(r))
	if _, err := provision.Generate(cfg, p, srv); err != nil {
		field := ""
		if errors.Is(err, provision.ErrTooMany) {
			field = "sidecar"
		}
		errs[field] = err.Error()
		return p, errs
	}
	saved, err := reg.Put(p)
	if err != nil {
		errs[""] = err.Error()
	}
	return saved, errs
}

func (env *Env) savePhone(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	p := provision.Phone{MAC: strings.TrimSpace(r.PostForm.Get("mac")), Name: strings.TrimSpace(r.PostForm.Get("name")),
		Model: provision.Model(r.PostForm.Get("model")), User: r.PostForm.Get("user"), Sidecar: r.PostForm.Get("sidecar") == "1",
		Zones: r.PostForm["zones"]}
	saved, errs := env.putPhone(r, p)
	if len(errs) == 0 {
		http.Redirect(w, r, "/phones?saved="+saved.MAC+"#phones", http.StatusSeeOther)
		return
	}
	v := &phonesView{Errors: errs, Form: p, MACInput: p.MAC}
	env.fillPhones(r, v)
	env.Console.RenderPage(w, r, http.StatusUnprocessableEntity, "/phones", v)
}

func (env *Env) deletePhone(w http.ResponseWriter, r *http.Request) {
	if reg := phonesOf(env); reg != nil {
		if mac, err := provision.ParseMAC(r.PostFormValue("mac")); err == nil {
			reg.Delete(mac)
		}
	}
	http.Redirect(w, r, "/phones#phones", http.StatusSeeOther)
}

// phoneFile downloads a generated file: a saved phone's (?mac=) or any
// (?model=&user=&sidecar=1&zone=...).
func (env *Env) phoneFile(w http.ResponseWriter, r *http.Request) {
	cfg, reg := configOf(env), phonesOf(env)
	if cfg == nil || reg == nil {
		WriteError(w, http.StatusServiceUnavailable, "", "provisioning is not available")
		return
	}
	q := r.URL.Query()
	var p provision.Phone
	if q.Get("model") == "" && q.Get("mac") != "" {
		mac, err := provision.ParseMAC(q.Get("mac"))
		var ok bool
		if err == nil {
			p, ok = reg.Phone(mac)
		}
		if !ok {
			WriteError(w, http.StatusNotFound, "mac", "no such phone")
			return
		}
	} else {
		p = provision.Phone{Model: provision.Model(q.Get("model")), User: q.Get("user"), Sidecar: q.Get("sidecar") == "1" || q.Get("sidecar") == "true", Zones: q["zone"]}
		if m := q.Get("mac"); m != "" {
			mac, err := provision.ParseMAC(m)
			if err != nil {
				WriteError(w, http.StatusBadRequest, "mac", err.Error())
				return
			}
			p.MAC = mac
		}
	}
	srv, err := provision.SIPServer(cfg, requestHost(r))
	var f *provision.File
	if err == nil {
		f, err = provision.Generate(cfg, p, srv)
	}
	if err != nil {
		WriteError(w, http.StatusBadRequest, "", err.Error())
		return
	}
	w.Header().Set("Content-Type", f.ContentType)
	w.Header().Set("Cache-Control", "no-store")
	if r.URL.Path == "/phones/file" {
		w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", strings.NewReplacer("<", "", ">", "").Replace(f.Name)))
	}
	w.Write(f.Body)
}
