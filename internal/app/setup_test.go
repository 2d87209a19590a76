package app

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const setupYAML = `# Front office parkpage.
http:
  listen: 127.0.0.1:0
sip:
  listen: [{transport: udp, address: "127.0.0.1:0"}]
park:
  lots:
    - extension: "700" # park key
      slots: 701-705
zones:
  # Ceiling speakers.
  front:
    outputs:
      - {type: rtp, group: 239.255.90.1, port: 5004, interface: lo}
`

// call sends a request to the app's API and decodes a JSON answer.
func call(t *testing.T, a *App, method, path, ctype, body string) (int, map[string]any, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+a.HTTPAddr().String()+path, strings.NewReader(body))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var m map[string]any
	json.Unmarshal(b, &m)
	return res.StatusCode, m, b
}

func TestConsoleSaveEditsValidatesKeepsPreviousAndReloads(t *testing.T) {
	a, path, logs := runApp(t, setupYAML)
	code, doc, _ := call(t, a, "GET", "/api/v1/config", "", "")
	if code != 200 || doc["path"] != path || doc["embedded"] != false {
		t.Fatalf("config %d %v", code, doc)
	}
	version := doc["version"].(string)
	lots := doc["config"].(map[string]any)["park"].(map[string]any)["lots"].([]any)
	if lots[0].(map[string]any)["timeout"] != "1m30s" {
		t.Errorf("effective lot %v", lots[0])
	}

	// A bad value: refused with the problem at its key, nothing written.
	bad := `{"base":"` + version + `","edits":[{"path":["zones","front","outputs",0,"port"],"value":70000},{"path":["park","slots","702","label"],"value":"Sales"}]}`
	code, m, raw := call(t, a, "POST", "/api/v1/config/edits", "application/json", bad)
	if code != 422 {
		t.Fatalf("bad edit: %d %s", code, raw)
	}
	ps := m["problems"].([]any)
	p0 := ps[0].(map[string]any)
	if len(ps) != 1 || p0["path"] != "zones.front.outputs[0].port" || !strings.Contains(p0["message"].(string), "70000") || p0["line"] == nil {
		t.Errorf("problems %v", ps)
	}
	if b, _ := os.ReadFile(path); string(b) != setupYAML {
		t.Errorf("a refused save changed the file:\n%s", b)
	}

	// Fixed: saved, previous kept, comments kept, running config reloaded.
	good := strings.Replace(bad, "70000", "5006", 1)
	code, m, raw = call(t, a, "POST", "/api/v1/config/edits", "application/json", good)
	if code != 200 || m["saved"] != true || m["previous"] != path+".prev" {
		t.Fatalf("good edit: %d %s", code, raw)
	}
	if prev, _ := os.ReadFile(path + ".prev"); string(prev) != setupYAML {
		t.Errorf("previous version:\n%s", prev)
	}
	now, _ := os.ReadFile(path)
	for _, want := range []string{"# Front office parkpage.", "# park key", "# Ceiling speakers.", "port: 5006", "label: Sales"} {
		if !bytes.Contains(now, []byte(want)) {
			t.Errorf("saved file lacks %q:\n%s", want, now)
		}
	}
	if got := a.Config().Zones["front"].Outputs[0].Port; got != 5006 {
		t.Errorf("running port %d after the save", got)
	}
	if !strings.Contains(logs.String(), "config reloaded") {
		t.Errorf("no reload logged:\n%s", logs)
	}

	// The old version is stale now.
	code, _, _ = call(t, a, "POST", "/api/v1/config/edits", "application/json", good)
	if code != 409 {
		t.Errorf("edit on a stale base: %d, want 409", code)
	}

	// Download, and a full backup.
	code, _, body := call(t, a, "GET", "/api/v1/config/file", "", "")
	if code != 200 || !bytes.Equal(body, now) {
		t.Errorf("download %d:\n%s", code, body)
	}
	os.MkdirAll(a.Config().StateDir, 0o750)
	os.WriteFile(filepath.Join(a.Config().StateDir, "sip-registrations.json"), []byte(`[]`), 0o600)
	code, _, body = call(t, a, "GET", "/api/v1/config/backup", "", "")
	zr, err := zip.NewReader(bytes.NewReader(body), int64(len(body)))
	if code != 200 || err != nil {
		t.Fatalf("backup %d %v", code, err)
	}
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
	}
	if strings.Join(names, ",") != "parkpage.yaml,sip-registrations.json" {
		t.Errorf("backup holds %v", names)
	}
}

func TestConsoleUploadIsValidatedFirst(t *testing.T) {
	a, path, _ := runApp(t, setupYAML)
	before, _ := os.ReadFile(path)
	code, m, raw := call(t, a, "POST", "/api/v1/config/upload", "application/json", upload("park:\n  lots:\n    - {extension: \"700\", slots: 701-705, timeout: 0s}\n", false))
	if code != 422 {
		t.Fatalf("bad upload: %d %s", code, raw)
	}
	if p := m["problems"].([]any)[0].(map[string]any); p["path"] != "park.lots[0].timeout" {
		t.Errorf("problem %v", p)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Errorf("a refused upload replaced the file")
	}
	code, _, _ = call(t, a, "POST", "/api/v1/config/upload", "application/yaml", setupYAML)
	if code != 415 {
		t.Errorf("upload as YAML: %d, want 415 (the API takes JSON only)", code)
	}
	up := strings.Replace(setupYAML, "701-705", "701-703", 1)
	code, m, raw = call(t, a, "POST", "/api/v1/config/upload", "application/json", upload(up, true))
	if code != 200 || m["saved"] != false || m["checked"] != true {
		t.Errorf("check: %d %s", code, raw)
	}
	code, m, raw = call(t, a, "POST", "/api/v1/config/upload", "application/json", upload(up, false))
	if code != 200 || m["saved"] != true || a.Config().Park.Lots[0].Slots.Last != 703 {
		t.Errorf("upload: %d %s", code, raw)
	}
}

// A reload the running appliance refuses (moving the admin API) puts the
// previous file back.
func TestConsoleSaveRefusedByReloadRestoresTheFile(t *testing.T) {
	a, path, _ := runApp(t, setupYAML)
	before, _ := os.ReadFile(path)
	up := strings.Replace(setupYAML, "listen: 127.0.0.1:0\n", "listen: 127.0.0.1:1\n", 1)
	code, _, raw := call(t, a, "POST", "/api/v1/config/upload", "application/json", upload(up, false))
	if code != 409 || !strings.Contains(string(raw), "restart") {
		t.Errorf("save moving the API: %d %s", code, raw)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Errorf("the refused config stayed in the file:\n%s", after)
	}
}

// On the embedded default, the first save creates state_dir/parkpage.yaml,
// and a restart without -config runs on it.
func TestConsoleFirstSaveOfEmbeddedDefault(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	a, err := New(Options{StateDir: state, HTTPListen: "127.0.0.1:0", LogOutput: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	a.opts.Ready = func(*App) { close(ready) }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatal(err)
	case <-time.After(time.Minute):
		t.Fatal("not ready")
	}
	code, doc, _ := call(t, a, "GET", "/api/v1/config", "", "")
	want := filepath.Join(state, "parkpage.yaml")
	if code != 200 || doc["embedded"] != true || doc["path"] != want {
		t.Fatalf("config %d %v", code, doc)
	}
	code, m, raw := call(t, a, "POST", "/api/v1/config/edits", "application/json", `{"edits":[{"path":["park","slots","701","label"],"value":"Reception"}]}`)
	if code != 200 || m["path"] != want || m["previous"] != nil {
		t.Fatalf("first save %d %s", code, raw)
	}
	b, err := os.ReadFile(want)
	if err != nil || !bytes.Contains(b, []byte("# parkpage embedded default configuration.")) || !bytes.Contains(b, []byte("label: Reception")) {
		t.Errorf("saved file (%v):\n%s", err, b)
	}
	if a.Config().Park.Slots["701"].Label != "Reception" || a.Config().Source != want {
		t.Errorf("running config from %s", a.Config().Source)
	}
	again, err := New(Options{StateDir: state, LogOutput: io.Discard})
	if err != nil || again.Config().Source != want {
		t.Errorf("restart runs on %v (%v), want the saved file", again.Config().Source, err)
	}
}

func upload(yaml string, check bool) string {
	b, _ := json.Marshal(map[string]any{"yaml": yaml, "check": check})
	return string(b)
}

// On the appliance the running config can be a generated file on tmpfs
// (the setup page's credential folded in): a console save goes to
// SaveConfigTo (/perm), the file the next boot chooses, and runs from it.
func TestConsoleSaveOfGeneratedConfigGoesToSaveConfigTo(t *testing.T) {
	perm := filepath.Join(t.TempDir(), "perm", "parkpage.yaml")
	var generated string
	a, _, _ := runAppWith(t, setupYAML, func(a *App) {
		a.opts.SaveConfigTo = perm
		generated = a.opts.ConfigPath
	})
	before, _ := os.ReadFile(generated)
	code, m, raw := call(t, a, "POST", "/api/v1/config/edits", "application/json", `{"edits":[{"path":["park","slots","701","label"],"value":"Reception"}]}`)
	if code != 200 || m["path"] != perm || m["previous"] != perm+PrevSuffix {
		t.Fatalf("save %d %s", code, raw)
	}
	saved, err := os.ReadFile(perm)
	if err != nil || !bytes.Contains(saved, []byte("label: Reception")) || !bytes.Contains(saved, []byte("# Ceiling speakers.")) {
		t.Errorf("saved file (%v):\n%s", err, saved)
	}
	if prev, _ := os.ReadFile(perm + PrevSuffix); !bytes.Equal(prev, before) {
		t.Errorf("previous version is not the running config:\n%s", prev)
	}
	if a.Config().Source != perm || a.Config().Park.Slots["701"].Label != "Reception" {
		t.Errorf("running from %s", a.Config().Source)
	}
	if after, _ := os.ReadFile(generated); !bytes.Equal(after, before) {
		t.Errorf("the generated file was written")
	}
}
