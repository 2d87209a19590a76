package console

import (
	"net/http"
	"strconv"
	"time"

	"github.com/parkpage/parkpage/internal/api"
	"github.com/parkpage/parkpage/internal/logring"
	"github.com/parkpage/parkpage/internal/opstatus"
)

// StatusKey is where the wiring provides the Status page's sources
// (*StatusSources).
const StatusKey = "status.Sources"

// StatusSources are what the Status page reads; any may be nil.
type StatusSources struct {
	Registrations func() []Registration
	Watchers      func() []Watcher
	Outputs       func() []OutputStatus
	Relays        func() []RelayStatus
	// Pacer returns the parkpage_pacer_* metrics by name.
	Pacer func() map[string]float64
	Logs  func(n int) []logring.Entry
}

// Registration is one phone registered to parkpage.
type Registration struct {
	User      string    `json:"user"`
	Contact   string    `json:"contact"`
	Source    string    `json:"source"`
	Transport string    `json:"transport"`
	Expires   time.Time `json:"expires"`
	Updated   time.Time `json:"updated"`
}

// Watcher is one BLF subscription: which phone watches which slot.
type Watcher struct {
	Ext        string    `json:"ext"`
	Subscriber string    `json:"subscriber"`
	User       string    `json:"user"`
	Source     string    `json:"source"`
	Expires    time.Time `json:"expires"`
}

// OutputStatus is one zone output.
type OutputStatus struct {
	opstatus.Output
	Zone    string `json:"zone"`
	Type    string `json:"type"`
	Address string `json:"address"`
}

// RelayStatus is one relay.
type RelayStatus struct {
	Name     string    `json:"name"`
	Pin      string    `json:"pin"`
	Role     string    `json:"role"`
	On       bool      `json:"on"`
	Holding  bool      `json:"holding"`
	Switched time.Time `json:"switched,omitzero"`
}

// StatusView is GET /api/v1/status/details and the Status page's data.
type StatusView struct {
	Status        api.Status      `json:"status"`
	Uptime        string          `json:"uptime"`
	Registrations []Registration  `json:"registrations"`
	Watchers      []Watcher       `json:"watchers"`
	WatchedSlots  []WatchedSlot   `json:"watched_slots"`
	Outputs       []OutputStatus  `json:"outputs"`
	Relays        []RelayStatus   `json:"relays"`
	Pacer         PacerHealth     `json:"pacer"`
	Logs          []logring.Entry `json:"logs"`
}

// WatchedSlot groups the watchers of one extension.
type WatchedSlot struct {
	Ext   string   `json:"ext"`
	Users []string `json:"users"`
}

// PacerHealth is the sending loop's health from its metrics.
type PacerHealth struct {
	Known       bool    `json:"known"`
	Realtime    bool    `json:"realtime"`
	Streams     float64 `json:"streams"`
	Wakeups     float64 `json:"wakeups"`
	LateWakeups float64 `json:"late_wakeups"`
	Packets     float64 `json:"packets"`
	LatePackets float64 `json:"late_packets"`
	Dropped     float64 `json:"dropped_packets"`
	// LateShare is late wake-ups per wake-up.
	LateShare float64 `json:"late_share"`
	// Verdict is "ok", "warn" or "bad", Say what it means.
	Verdict string `json:"verdict"`
	Say     string `json:"say"`
}

func init() {
	RegisterPage(Page{Path: "/status", Nav: NavStatus, Title: "Status", Template: "status.html",
		Data: func(r *http.Request, env *Env) (any, error) { return buildStatus(env), nil }})
	RegisterRoute("GET /api/v1/status/details", func(env *Env) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			WriteJSON(w, http.StatusOK, buildStatus(env))
		})
	})
}

func buildStatus(env *Env) StatusView {
	v := StatusView{Registrations: []Registration{}, Watchers: []Watcher{}, WatchedSlots: []WatchedSlot{}, Outputs: []OutputStatus{},
		Relays: []RelayStatus{}, Logs: []logring.Entry{}}
	if env.Backend != nil {
		v.Status = env.Backend.Status()
		v.Uptime = formatUptime(time.Duration(v.Status.Uptime * float64(time.Second)))
	}
	src, _ := env.Value(StatusKey).(*StatusSources)
	if src == nil {
		return v
	}
	if src.Registrations != nil {
		v.Registrations = append(v.Registrations, src.Registrations()...)
	}
	if src.Watchers != nil {
		v.Watchers = append(v.Watchers, src.Watchers()...)
		idx := map[string]int{}
		for _, w := range v.Watchers {
			i, ok := idx[w.Ext]
			if !ok {
				i = len(v.WatchedSlots)
				idx[w.Ext] = i
				v.WatchedSlots = append(v.WatchedSlots, WatchedSlot{Ext: w.Ext})
			}
			who := w.User
			if who == "" {
				who = w.Subscriber
			}
			v.WatchedSlots[i].Users = append(v.WatchedSlots[i].Users, who)
		}
	}
	if src.Outputs != nil {
		v.Outputs = append(v.Outputs, src.Outputs()...)
	}
	if src.Relays != nil {
		v.Relays = append(v.Relays, src.Relays()...)
	}
	if src.Pacer != nil {
		v.Pacer = pacerHealth(src.Pacer())
	}
	if src.Logs != nil {
		v.Logs = append(v.Logs, src.Logs(40)...)
	}
	return v
}

func pacerHealth(m map[string]float64) PacerHealth {
	if len(m) == 0 {
		return PacerHealth{Verdict: "warn", Say: "No pacer metrics."}
	}
	p := PacerHealth{Known: true, Realtime: m["parkpage_pacer_realtime"] == 1, Streams: m["parkpage_pacer_streams"],
		Wakeups: m["parkpage_pacer_wakeups_total"], LateWakeups: m["parkpage_pacer_late_wakeups_total"],
		Packets: m["parkpage_pacer_packets_total"], LatePackets: m["parkpage_pacer_late_packets_total"],
		Dropped: m["parkpage_pacer_dropped_packets_total"]}
	if p.Wakeups > 0 {
		p.LateShare = p.LateWakeups / p.Wakeups
	}
	switch {
	case p.Dropped > 0 && p.Packets > 0 && p.Dropped/p.Packets > 0.001:
		p.Verdict, p.Say = "bad", "Packets were dropped: pages and hold music may have stuttered. The box is overloaded."
	case p.LateShare > 0.01:
		p.Verdict, p.Say = "warn", "Over 1 % of the sending loop's wake-ups came late: audio may jitter."
	case !p.Realtime:
		p.Verdict, p.Say = "warn", "Sending without real-time priority (needs CAP_SYS_NICE): audio may jitter under load."
	default:
		p.Verdict, p.Say = "ok", "Sending on time."
	}
	return p
}

func formatUptime(d time.Duration) string {
	d = d.Round(time.Minute)
	days := int(d.Hours()) / 24
	h := int(d.Hours()) % 24
	m := int(d.Minutes()) % 60
	switch {
	case days > 0:
		return strconv.Itoa(days) + " d " + strconv.Itoa(h) + " h"
	case h > 0:
		return strconv.Itoa(h) + " h " + strconv.Itoa(m) + " min"
	}
	return strconv.Itoa(m) + " min"
}
