package browsertest

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	boot "github.com/parkpage/parkpage/internal/appliance"
)

// The first-run credential setup is a console page: styled like the
// console, refusing a wrong one-time code, saving the password with the
// right one.
func TestFirstRunSetupInBrowser(t *testing.T) {
	t.Parallel()
	health := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") }))
	defer health.Close()
	dir := t.TempDir()
	saved := make(chan struct{}, 1)
	s := &boot.Setup{StateDir: dir, Health: health.URL + "/healthz", Log: slog.New(slog.DiscardHandler),
		Problems: []string{"boot partition parkpage.yaml:6:9: zones.front.outputs[0].port: 70000 is not a port"},
		Done:     func() { saved <- struct{}{} }}
	s.NewCode()
	srv := httptest.NewServer(s)
	defer srv.Close()
	ctx := newBrowser(t, 3*time.Minute) // a bound for a busy machine, not a target

	do(t, ctx, "setup page", chromedp.Navigate(srv.URL+"/"), chromedp.WaitVisible(`#code`))
	if bg := eval[string](t, ctx, `getComputedStyle(document.querySelector('.card.login')).backgroundColor`); bg != "rgb(255, 255, 255)" {
		t.Errorf("setup page without the console's stylesheet (card background %q)", bg)
	}
	do(t, ctx, "a wrong code",
		chromedp.SendKeys(`#code`, "0000-0000"),
		chromedp.SendKeys(`#password`, "correct horse"),
		chromedp.SendKeys(`#confirm`, "correct horse"),
		chromedp.Click(`button[type=submit]`),
		chromedp.WaitVisible(`.alert-error`))
	if msg := eval[string](t, ctx, `document.querySelector('.alert-error').textContent`); !strings.Contains(msg, "Wrong setup code") {
		t.Errorf("wrong code: %q", msg)
	}
	screenshot(t, ctx, "firstrun")
	do(t, ctx, "the right code",
		chromedp.SendKeys(`#code`, s.Code()),
		chromedp.SendKeys(`#password`, "correct horse"),
		chromedp.SendKeys(`#confirm`, "correct horse"),
		chromedp.Click(`button[type=submit]`),
		chromedp.WaitVisible(`.alert-ok`))
	select {
	case <-saved:
	case <-time.After(10 * time.Second):
		t.Fatal("setup not done")
	}
	if _, err := os.Stat(filepath.Join(dir, boot.PermHash)); err != nil {
		t.Errorf("password hash not saved: %v", err)
	}
}
