package api

import (
	"context"
	"io"
	"strings"
	"testing"
)

func TestDecodeEdits(t *testing.T) {
	req, err := DecodeEdits(strings.NewReader(`{"base":"ab","edits":[{"path":["zones","front","outputs",0,"port"],"value":5004},{"path":["park","slots","701"],"delete":true}]}`))
	if err != nil || len(req.Edits) != 2 || req.Edits[0].Path[3] != 0.0 || !req.Edits[1].Delete {
		t.Fatalf("%+v %v", req, err)
	}
	for _, body := range []string{`{"edits":[{"path":"zones"}]}`, `{"edits":[],"extra":1}`, `[1]`} {
		if _, err := DecodeEdits(strings.NewReader(body)); err == nil {
			t.Errorf("%s decoded", body)
		}
	}
}

// FuzzDecodeSetupBodies: the setup console's JSON bodies decode or fail
// with an error, never a panic.
func FuzzDecodeSetupBodies(f *testing.F) {
	f.Add(`{"edits":[{"path":["zones","a","outputs",0],"value":{"type":"rtp"}}],"check":true}`)
	f.Add(`{"text":"hello","tone":true}`)
	f.Add(`{"edits":[{"path":[1e300,-1,null,{}],"value":[[[]]]}]}`)
	f.Fuzz(func(t *testing.T, body string) {
		DecodeEdits(strings.NewReader(body))
		var tr OutputTestRequest
		DecodeJSON(strings.NewReader(body), &tr)
		var up ConfigUpload
		DecodeJSON(strings.NewReader(body), &up)
	})
}

// The fake backend's setup routes record their state changes as
// announcements, which the cross-site test counts.

func (f *fakeBackend) record(what string) {
	f.mu.Lock()
	f.announced = append(f.announced, AnnounceRequest{Text: what})
	f.mu.Unlock()
}

func (f *fakeBackend) ConfigDoc() (ConfigDoc, error) {
	return ConfigDoc{Path: "/tmp/parkpage.yaml", Version: "v1", Config: map[string]any{}, YAML: "zones: {}\n"}, nil
}

func (f *fakeBackend) SaveConfig(data []byte, base string, check bool) (SaveResult, error) {
	f.record("save")
	return SaveResult{Saved: !check, Path: "/tmp/parkpage.yaml", Version: "v2"}, nil
}

func (f *fakeBackend) ApplyEdits(data []byte, edits []ConfigEdit) ([]byte, error) { return data, nil }

func (f *fakeBackend) WriteBackup(w io.Writer) error { return nil }

func (f *fakeBackend) TestOutputs(ctx context.Context, req OutputTestRequest) (OutputTestResult, error) {
	f.record("test " + req.Zone)
	return OutputTestResult{Zone: req.Zone, Reason: "done"}, nil
}

func (f *fakeBackend) Hear(ctx context.Context, req HearRequest) ([]byte, error) {
	return []byte("RIFF"), nil
}
