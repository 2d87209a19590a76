package console

import (
	"fmt"
	"math"
	"slices"
	"time"
)

func init() {
	// Template helpers of the report, history and status pages.
	funcs["secs"] = FormatSeconds
	funcs["pct"] = func(n, of int) string {
		if of == 0 {
			return "–"
		}
		return fmt.Sprintf("%.0f%%", 100*float64(n)/float64(of))
	}
	funcs["has"] = func(list []string, v string) bool { return slices.Contains(list, v) }
	funcs["mul"] = func(a, b int) int { return a * b }
	funcs["when"] = When
	funcs["date"] = func(t time.Time) string {
		if t.IsZero() {
			return "–"
		}
		return t.Local().Format("Mon 2 Jan 2006")
	}
	funcs["ago"] = func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return Ago(time.Since(t))
	}

}

// FormatSeconds is a wait in seconds as "0:41", or "–" for none.
func FormatSeconds(s float64) string {
	if s <= 0 || math.IsNaN(s) {
		return "–"
	}
	return FormatWait(time.Duration(s * float64(time.Second)))
}

// When is a time as the console shows it: "14:05" today, else "Tue 3 Dec 14:05".
func When(t time.Time) string {
	if t.IsZero() {
		return "–"
	}
	t = t.Local()
	now := time.Now().Local()
	if t.Year() == now.Year() && t.YearDay() == now.YearDay() {
		return t.Format("15:04")
	}
	return t.Format("Mon 2 Jan 15:04")
}

// Ago is a duration in words: "12 s ago", "5 min ago", "3 h ago", "2 days ago".
func Ago(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%d s ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h ago", int(d.Hours()))
	}
	return fmt.Sprintf("%d days ago", int(d.Hours()/24))
}

// timeSince is time.Since (a seam for tests).
var timeSince = time.Since
