package console

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/parkpage/parkpage/internal/api"
)

// AmberAfter is the wait after which a parked call's lamp turns amber;
// it turns red at the slot's timeout (ring-back).
const AmberAfter = 45 * time.Second

// defaultTimeout is the park timeout when the backend does not say.
const defaultTimeout = 90 * time.Second

func init() {
	RegisterPage(Page{Path: "/", Nav: NavFrontDesk, Title: "Front desk", Template: "frontdesk.html",
		Scripts: []string{"frontdesk.js"}, Data: deskData})
	RegisterRoute("GET /api/v1/board", func(env *Env) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			WriteJSON(w, http.StatusOK, buildBoard(env.Backend.Slots(), time.Now()))
		})
	})
}

// Board is the front desk's lot wall (GET /api/v1/board): the slots as a
// person reads them, grouped by lot.
type Board struct {
	Now        time.Time  `json:"now"`
	AmberAfter float64    `json:"amber_after_seconds"`
	Lots       []BoardLot `json:"lots"`
	Parked     int        `json:"parked"`
	Ringing    int        `json:"ringing"`
}

// BoardLot is one park lot on the board.
type BoardLot struct {
	Name  string      `json:"name"`
	Label string      `json:"label,omitempty"`
	Slots []BoardSlot `json:"slots"`
}

// BoardSlot is one lamp.
type BoardSlot struct {
	Slot  string `json:"slot"`
	Label string `json:"label,omitempty"`
	// State is free, parked, ringback or returned (parked again after a
	// ring-back nobody answered).
	State        string     `json:"state"`
	CallerName   string     `json:"caller_name,omitempty"`
	CallerNumber string     `json:"caller_number,omitempty"`
	ParkerName   string     `json:"parker_name,omitempty"`
	ParkerNumber string     `json:"parker_number,omitempty"`
	Since        *time.Time `json:"since,omitempty"`
	// RingTarget is who rings for the call (state ringback).
	RingTarget string `json:"ring_target,omitempty"`
	// Timeout is when the call rings back, in seconds after Since.
	Timeout float64 `json:"timeout_seconds,omitempty"`
	// Wait is the wait so far in seconds, Age its colour: ok, amber, red.
	Wait float64 `json:"wait_seconds,omitempty"`
	Age  string  `json:"age,omitempty"`
}

// buildBoard turns the API's slot rows into the lamp wall.
func buildBoard(slots []api.Slot, now time.Time) Board {
	b := Board{Now: now, AmberAfter: AmberAfter.Seconds(), Lots: []BoardLot{}}
	idx := map[string]int{}
	for _, s := range slots {
		i, ok := idx[s.Lot]
		if !ok {
			i = len(b.Lots)
			idx[s.Lot] = i
			b.Lots = append(b.Lots, BoardLot{Name: s.Lot})
		}
		bs := BoardSlot{Slot: s.Slot, Label: s.Label, State: s.State}
		if s.State != "free" && s.State != "" {
			bs.CallerName, bs.CallerNumber = SplitParty(s.Caller)
			bs.ParkerName, bs.ParkerNumber = SplitParty(s.Parker)
			// The wait shown is the caller's whole wait, across returns.
			bs.Since = s.Since
			if s.ParkedAt != nil {
				bs.Since = s.ParkedAt
			}
			bs.Timeout = s.Timeout
			if bs.Timeout <= 0 {
				bs.Timeout = defaultTimeout.Seconds()
			}
			bs.RingTarget = s.RingTarget
			if s.State == "parked" && s.Returned {
				bs.State = "returned"
			}
			if bs.Since != nil {
				wait := now.Sub(*bs.Since)
				bs.Wait = max(0, wait.Seconds())
				bs.Age = ageOf(wait, time.Duration(bs.Timeout*float64(time.Second)))
			}
			if s.State == "ringback" {
				b.Ringing++
			} else {
				b.Parked++
			}
		}
		b.Lots[i].Slots = append(b.Lots[i].Slots, bs)
	}
	for i := range b.Lots {
		b.Lots[i].Label = commonLabel(b.Lots[i].Slots)
	}
	return b
}

// ageOf is a lamp's colour for a wait: ok, amber after AmberAfter, red
// from the timeout on.
func ageOf(wait, timeout time.Duration) string {
	switch {
	case wait >= timeout:
		return "red"
	case wait >= AmberAfter:
		return "amber"
	}
	return "ok"
}

// commonLabel is the label every slot of a lot shares ("" when they
// differ): the lot's name on the board.
func commonLabel(ss []BoardSlot) string {
	if len(ss) == 0 {
		return ""
	}
	l := ss[0].Label
	for _, s := range ss[1:] {
		if s.Label != l {
			return ""
		}
	}
	return l
}

// SplitParty reads a SIP identity (`"ACME Supply" <sip:2065550100@pbx>`,
// `sip:201@host`, `Alice <tel:+1555>`) as a person would: the display
// name and the number (the URI's user part). Either may be "".
func SplitParty(s string) (name, number string) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", ""
	}
	uri := s
	if i := strings.IndexByte(s, '<'); i >= 0 {
		name = strings.TrimSpace(s[:i])
		uri = s[i+1:]
		if j := strings.IndexByte(uri, '>'); j >= 0 {
			uri = uri[:j]
		}
		if uq, err := strconv.Unquote(name); err == nil {
			name = uq
		} else {
			name = strings.Trim(name, `"`)
		}
	} else if !hasScheme(s) {
		return s, ""
	}
	lower := strings.ToLower(uri)
	for _, p := range []string{"sips:", "sip:", "tel:"} {
		if strings.HasPrefix(lower, p) {
			uri = uri[len(p):]
			break
		}
	}
	if i := strings.IndexAny(uri, "@;?"); i >= 0 {
		number = uri[:i]
		if uri[i] != '@' && strings.Contains(number, ".") {
			number = "" // sip:host;params: no user part
		}
	} else if !strings.Contains(uri, ".") {
		number = uri
	}
	if name == number {
		name = ""
	}
	return name, number
}

func hasScheme(s string) bool {
	l := strings.ToLower(s)
	return strings.HasPrefix(l, "sip:") || strings.HasPrefix(l, "sips:") || strings.HasPrefix(l, "tel:")
}

// Panel is a box on the front desk's side column that another file adds
// (RegisterPanel): the recent parks history is one.
type Panel struct {
	// Name is the panel's template name: the file that registers it
	// defines it in templates/partials/<name>.html as
	// {{define "panel-<name>"}}...{{end}}.
	Name string
	// Order sorts panels (smaller first).
	Order int
	// Data is what the panel's template sees as .Data.
	Data func(r *http.Request, env *Env) (any, error)
}

var panels struct {
	mu sync.Mutex
	ps []Panel
}

// RegisterPanel adds a panel to the front desk; call it from init.
func RegisterPanel(p Panel) {
	panels.mu.Lock()
	defer panels.mu.Unlock()
	panels.ps = append(panels.ps, p)
	slices.SortStableFunc(panels.ps, func(a, b Panel) int { return a.Order - b.Order })
}

// lampView is a lamp with the label it shows: none when the lot's heading
// already says it.
type lampView struct {
	BoardSlot
	ShownLabel string
}

func lampOf(s BoardSlot, lotLabel string) lampView {
	v := lampView{BoardSlot: s}
	if s.Label != lotLabel {
		v.ShownLabel = s.Label
	}
	return v
}

// deskView is the front desk's template data.
type deskView struct {
	Board  Board
	Panels []panelView
}

type panelView struct {
	Name string
	Data any
}

func deskData(r *http.Request, env *Env) (any, error) {
	v := deskView{Board: buildBoard(env.Backend.Slots(), time.Now())}
	panels.mu.Lock()
	ps := slices.Clone(panels.ps)
	panels.mu.Unlock()
	for _, p := range ps {
		pv := panelView{Name: p.Name}
		if p.Data != nil {
			d, err := p.Data(r, env)
			if err != nil {
				return nil, err
			}
			pv.Data = d
		}
		v.Panels = append(v.Panels, pv)
	}
	return v, nil
}
