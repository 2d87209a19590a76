package browsertest

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Shared helpers for the console's browser tests: a headless Chromium per
// test, logging in, and screenshots kept as test artefacts.
//
// Screenshots go to the artefacts directory: $PARKPAGE_ARTEFACTS, else
// cmd/parkpage/browsertest/artefacts (gitignored); TestMain prints it.

// Viewport widths of the screenshots: a desktop and a 768 px tablet.
const (
	desktopWidth, desktopHeight = 1440, 900
	tabletWidth, tabletHeight   = 768, 1024
)

var artefactsOnce sync.Once
var artefacts string

// artefactsDir is where screenshots go (created on first use).
func artefactsDir(t testing.TB) string {
	artefactsOnce.Do(func() {
		artefacts = os.Getenv("PARKPAGE_ARTEFACTS")
		if artefacts == "" {
			wd, _ := os.Getwd()
			artefacts = filepath.Join(wd, "artefacts")
		}
		os.MkdirAll(artefacts, 0o755)
	})
	return artefacts
}

// findBrowser is Chromium's path; the test fails without it.
func findBrowser(t testing.TB) string {
	t.Helper()
	for _, b := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(b); err == nil {
			return p
		}
	}
	t.Fatal("no Chromium (apt-get install chromium; make test installs it)")
	return ""
}

// newBrowser starts a headless Chromium at desktop size for the test and
// returns its context, ending within timeout.
func newBrowser(t *testing.T, timeout time.Duration) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(findBrowser(t)), chromedp.NoSandbox,
		chromedp.Flag("headless", "new"), chromedp.WindowSize(desktopWidth, desktopHeight), chromedp.Flag("hide-scrollbars", true))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelB := chromedp.NewContext(actx)
	ctx, cancelC := context.WithTimeout(ctx, timeout)
	t.Cleanup(func() { cancelC(); cancelB(); cancelA() })
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(desktopWidth, desktopHeight)); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	return ctx
}

// hashPassword is the bcrypt hash `parkpage hash-password` makes.
func hashPassword(t *testing.T, pw string) string {
	t.Helper()
	cmd := exec.Command(binary, "hash-password")
	cmd.Stdin = strings.NewReader(pw + "\n")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("hash-password: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// login logs in on the console's login page as admin and waits for the
// front desk.
func login(t *testing.T, ctx context.Context, base, password string) {
	t.Helper()
	if err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/login"),
		chromedp.WaitVisible(`#password`),
		chromedp.SetValue(`#user`, "admin"),
		chromedp.SendKeys(`#password`, password),
		chromedp.Click(`form.login button[type=submit]`),
		chromedp.WaitVisible(`body.page-frontdesk #board`),
	); err != nil {
		t.Fatalf("log in: %v", err)
	}
}

// screenshot saves the page as it is now at desktop and tablet width
// (full page) as NAME-desktop.png and NAME-tablet.png in the artefacts
// directory, and returns their paths.
func screenshot(t *testing.T, ctx context.Context, name string) []string {
	t.Helper()
	var paths []string
	for _, v := range []struct {
		suffix string
		w, h   int64
	}{{"desktop", desktopWidth, desktopHeight}, {"tablet", tabletWidth, tabletHeight}} {
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(v.w, v.h)); err != nil {
			t.Fatalf("screenshot %s %s: %v", name, v.suffix, err)
		}
		// Laid out at the new width, then one more frame painted.
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](fmt.Sprintf("window.innerWidth === %d", v.w))); err != nil {
			t.Fatalf("screenshot %s %s: %v", name, v.suffix, err)
		}
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool]("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))", chromedp.EvalAsValue, chromedp.EvalAwaitPromise)); err != nil {
			t.Fatalf("screenshot %s %s: %v", name, v.suffix, err)
		}
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s %s: %v", name, v.suffix, err)
		}
		p := filepath.Join(artefactsDir(t), fmt.Sprintf("%s-%s.png", name, v.suffix))
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(desktopWidth, desktopHeight)); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots: %s", strings.Join(paths, ", "))
	return paths
}

// cutProxy is a TCP proxy in front of the appliance's HTTP port that the
// test can cut (every connection closed, new ones refused) and restore:
// the browser loses its event stream as on a flaky Wi-Fi.
type cutProxy struct {
	ln    net.Listener
	up    string
	mu    sync.Mutex
	conns map[net.Conn]bool
	down  bool
}

// newCutProxy proxies 127.0.0.1:<free port> to upstream (host:port) until
// the test ends; URL is its base URL.
func newCutProxy(t *testing.T, upstream string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, up: upstream, conns: map[net.Conn]bool{}}
	t.Cleanup(func() { ln.Close(); p.cut() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *cutProxy) URL() string { return "http://" + p.ln.Addr().String() }

func (p *cutProxy) serve(c net.Conn) {
	p.mu.Lock()
	if p.down {
		p.mu.Unlock()
		c.Close()
		return
	}
	p.mu.Unlock()
	u, err := net.Dial("tcp", p.up)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.down {
		p.mu.Unlock()
		c.Close()
		u.Close()
		return
	}
	p.conns[c], p.conns[u] = true, true
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { io.Copy(u, c); done <- struct{}{} }()
	go func() { io.Copy(c, u); done <- struct{}{} }()
	<-done
	c.Close()
	u.Close()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, u)
	p.mu.Unlock()
}

// cut closes every connection and refuses new ones until restore.
func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		c.Close()
	}
}

func (p *cutProxy) restore() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}
