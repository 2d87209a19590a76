package provision

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/parkpage/parkpage/internal/authguard"
	"github.com/parkpage/parkpage/internal/config"
)

// phoneGet fetches path as a phone would: HTTP basic auth with the
// provisioning user, as Yealink and Poly send it for an http://user:pass@
// provisioning URL.
func phoneGet(t *testing.T, base, path, pass string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest("GET", base+path, nil)
	req.Header.Set("User-Agent", "Yealink SIP-T54W 96.86.0.100 80:5e:c0:12:34:56")
	if pass != "" {
		req.SetBasicAuth(HTTPUser, pass)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b), res.Header
}

func TestServeAsPhone(t *testing.T) {
	cfg := seedOffice(t)
	reg, err := OpenRegistry(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"yealink-t54w-exp50-reception", "poly-vvx450-warehouse"} {
		p := seedPhones[name]
		p.MAC = FormatMAC(p.MAC) // as an installer types it
		if _, err := reg.Put(p); err != nil {
			t.Fatal(err)
		}
	}
	h := &Handler{Config: func() *config.Config { return cfg }, Registry: reg,
		Guard: authguard.New("provision", authguard.DefaultLimits, authguard.Options{})}
	mux := http.NewServeMux()
	mux.Handle("/provision/", h)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	pass := reg.Password()

	// A T54W pointed at http://provision:PASS@host/provision/yealink/ asks
	// for its model's common file, then its own (upper-case MAC here).
	code, body, _ := phoneGet(t, srv.URL, "/provision/yealink/y000000000096.cfg", pass)
	if code != 200 || !strings.HasPrefix(body, "#!version:1.0.0.1\n") {
		t.Fatalf("common file: %d %q", code, body)
	}
	code, body, hdr := phoneGet(t, srv.URL, "/provision/yealink/805EC0123456.cfg", pass)
	want := string(generate(t, cfg, "yealink-t54w-exp50-reception").Body)
	if code != 200 || body != want || !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain") {
		t.Fatalf("phone file: %d %s\n%s", code, hdr.Get("Content-Type"), body)
	}
	if f, ok := h.LastFetch("805ec0123456"); !ok || f.File != "805EC0123456.cfg" {
		t.Errorf("last fetch: %+v %v", f, ok)
	}

	// A VVX asks for its master file and then the files it lists.
	code, body, _ = phoneGet(t, srv.URL, "/provision/poly/0004f2abcdef.cfg", pass)
	m := regexp.MustCompile(`CONFIG_FILES="([^"]+)"`).FindStringSubmatch(body)
	if code != 200 || m == nil {
		t.Fatalf("master: %d %s", code, body)
	}
	for _, file := range strings.Split(m[1], ",") {
		code, body, _ = phoneGet(t, srv.URL, "/provision/poly/"+strings.TrimSpace(file), pass)
		if want := string(generate(t, cfg, "poly-vvx450-warehouse").Body); code != 200 || body != want {
			t.Fatalf("%s: %d\n%s", file, code, body)
		}
	}

	for _, tc := range []struct {
		path, pass string
		code       int
	}{
		{"/provision/yealink/805ec0123456.cfg", "", 401},
		{"/provision/yealink/805ec0123456.cfg", "wrong", 401},
		{"/provision/yealink/805ec0999999.cfg", pass, 404}, // not in the registry
		{"/provision/poly/805ec0123456.cfg", pass, 404},    // a Yealink asked as a Poly
		{"/provision/yealink/0004f2abcdef.cfg", pass, 404}, // a Poly asked as a Yealink
		{"/provision/yealink/805ec0123456-local.cfg", pass, 404},
		{"/provision/poly/000000000000.cfg", pass, 404},
		{"/provision/poly/sip.ld", pass, 404},
		{"/provision/yealink/../phones.json", pass, 404},
		{"/provision/cisco/805ec0123456.cfg", pass, 404},
	} {
		if code, body, _ := phoneGet(t, srv.URL, tc.path, tc.pass); code != tc.code {
			t.Errorf("%s (pass %q): %d, want %d: %s", tc.path, tc.pass, code, tc.code, body)
		}
	}
	req, _ := http.NewRequest("PUT", srv.URL+"/provision/poly/0004f2abcdef-app.log", strings.NewReader("log"))
	req.SetBasicAuth(HTTPUser, pass)
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != 405 {
		t.Errorf("PUT: %v %v", res, err)
	}
}

func TestRegistryPersists(t *testing.T) {
	dir := t.TempDir()
	r, err := OpenRegistry(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Put(Phone{MAC: "80-5E-C0-12-34-56", Model: YealinkT54W, User: "2001", Zones: []string{"all"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Put(Phone{MAC: "nonsense", Model: YealinkT54W, User: "2001"}); err == nil {
		t.Fatal("bad MAC accepted")
	}
	if _, err := r.Put(Phone{MAC: "805ec0123457", Model: "snom-d785", User: "2001"}); err == nil {
		t.Fatal("bad model accepted")
	}
	r2, err := OpenRegistry(dir)
	if err != nil {
		t.Fatal(err)
	}
	if r2.Password() != r.Password() || len(r.Password()) < 20 {
		t.Fatalf("password %q then %q", r.Password(), r2.Password())
	}
	p, ok := r2.Phone("805ec0123456")
	if !ok || p.User != "2001" || p.Zones[0] != "all" {
		t.Fatalf("after reopening: %+v %v", p, ok)
	}
	if ok, err := r2.Delete("805ec0123456"); !ok || err != nil {
		t.Fatal(ok, err)
	}
	r3, _ := OpenRegistry(dir)
	if len(r3.Phones()) != 0 {
		t.Fatalf("deleted phone back: %v", r3.Phones())
	}
}

func TestParseMAC(t *testing.T) {
	for in, want := range map[string]string{
		"805ec0123456": "805ec0123456", "805EC0123456": "805ec0123456", "80:5e:c0:12:34:56": "805ec0123456",
		"80-5E-C0-12-34-56": "805ec0123456", "80:5e-c0:12:34:56": "", "805ec012345": "", "805ec012345g": "",
		"000000000000": "", "": "", "80:5e:c0:12:34:5": "",
	} {
		got, err := ParseMAC(in)
		if got != want || (want == "") != (err != nil) {
			t.Errorf("ParseMAC(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
