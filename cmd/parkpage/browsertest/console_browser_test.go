package browsertest

import (
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// The console's skeleton: the login page, a login, and the front desk
// with its lamps, at desktop and tablet width.
func TestConsoleLoginAndFrontDesk(t *testing.T) {
	t.Parallel()
	const pw = "front-desk-pass"
	ap := startAppliance(t, fmt.Sprintf(`
http: {password_hash: %q}
park:
  lots:
    - {extension: "700", slots: 701-706, label: Reception, find_slot: first}
`, hashPassword(t, pw)))
	ctx := newBrowser(t, 90*time.Second)
	if err := chromedp.Do(ctx, chromedp.Navigate(ap.api+"/"), chromedp.WaitVisible(`#password`)); err != nil {
		t.Fatalf("the front desk without a session goes to the login page: %v", err)
	}
	screenshot(t, ctx, "login")
	login(t, ctx, ap.api, pw)
	if err := chromedp.Do(ctx, chromedp.WaitVisible(`.lamp[data-slot="706"]`)); err != nil {
		t.Fatalf("lamps: %v", err)
	}
	screenshot(t, ctx, "frontdesk-empty")
}
