package console

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/parkpage/parkpage/internal/history"
)

// Keys under which the wiring provides the park history (Env.Provide).
const (
	// HistoryKey: *history.Store.
	HistoryKey = "history.Store"
	// LayoutKey: func() history.Layout (the lots and groups in force).
	LayoutKey = "history.Layout"
)

func init() {
	RegisterPage(Page{Path: "/report", Nav: NavReport, Title: "Usage report", Template: "report.html", Data: reportPageData})
	RegisterRoute("GET /api/v1/history", func(env *Env) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			st := historyOf(env)
			if st == nil {
				WriteError(w, http.StatusServiceUnavailable, "", "no park history")
				return
			}
			limit := 50
			if v := r.URL.Query().Get("limit"); v != "" {
				n, err := strconv.Atoi(v)
				if err != nil || n < 1 || n > 1000 {
					WriteError(w, http.StatusBadRequest, "limit", "a number from 1 to 1000")
					return
				}
				limit = n
			}
			WriteJSON(w, http.StatusOK, map[string]any{"parks": historyRows(st.Recent(limit), st.Now())})
		})
	})
	RegisterRoute("GET /api/v1/report", func(env *Env) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rep, field, err := buildReport(env, r)
			if err != nil {
				WriteError(w, http.StatusBadRequest, field, err.Error())
				return
			}
			WriteJSON(w, http.StatusOK, rep)
		})
	})
	RegisterRoute("GET /api/v1/report.csv", func(env *Env) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rep, field, err := buildReport(env, r)
			if err != nil {
				WriteError(w, http.StatusBadRequest, field, err.Error())
				return
			}
			w.Header().Set("Content-Type", "text/csv; charset=utf-8")
			w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="parkpage-report-%dd-%s.csv"`, rep.Days, rep.Generated.Format("2006-01-02")))
			rep.WriteCSV(w)
		})
	})
	RegisterPanel(Panel{Name: "recent-parks", Order: 10, Data: func(r *http.Request, env *Env) (any, error) {
		st := historyOf(env)
		if st == nil {
			return []HistoryRow{}, nil
		}
		return historyRows(st.Recent(8), st.Now()), nil
	}})
}

func historyOf(env *Env) *history.Store {
	st, _ := env.Value(HistoryKey).(*history.Store)
	return st
}

// HistoryRow is one park in GET /api/v1/history and the recent-parks
// panel.
type HistoryRow struct {
	history.Record
	CallerName   string  `json:"caller_name,omitempty"`
	CallerNumber string  `json:"caller_number,omitempty"`
	WaitSeconds  float64 `json:"wait_seconds"`
	// Summary says the outcome in words: "Picked up by Anna (201) after 0:40".
	Summary string `json:"summary"`
	// Tone is the outcome's colour: ok, warn, bad, live.
	Tone string `json:"tone"`
}

func historyRows(rs []history.Record, now time.Time) []HistoryRow {
	out := make([]HistoryRow, 0, len(rs))
	for _, r := range rs {
		row := HistoryRow{Record: r, WaitSeconds: r.Wait(now).Round(time.Second).Seconds(), Summary: r.Describe(now)}
		row.CallerName, row.CallerNumber = SplitParty(r.Caller)
		switch {
		case r.Open():
			row.Tone = "live"
		case r.Outcome == history.OutcomePickedUp:
			row.Tone = "ok"
		case r.Outcome == history.OutcomeAbandoned || r.Outcome == history.OutcomeLost:
			row.Tone = "bad"
		default:
			row.Tone = "warn"
		}
		out = append(out, row)
	}
	return out
}

func buildReport(env *Env, r *http.Request) (history.Report, string, error) {
	st := historyOf(env)
	if st == nil {
		return history.Report{}, "", fmt.Errorf("no park history")
	}
	o := history.ReportOptions{Days: 30}
	if v := r.URL.Query().Get("days"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || (n != 7 && n != 30 && n != 90) {
			return history.Report{}, "days", fmt.Errorf("%q: want 7, 30 or 90", v)
		}
		o.Days = n
	}
	if v := r.URL.Query().Get("queue_per_day"); v != "" {
		n, err := strconv.ParseFloat(v, 64)
		if err != nil || n <= 0 {
			return history.Report{}, "queue_per_day", fmt.Errorf("%q: want a positive number", v)
		}
		o.QueuePerDay = n
	}
	var l history.Layout
	if f, ok := env.Value(LayoutKey).(func() history.Layout); ok {
		l = f()
	}
	return st.BuildReport(l, o), "", nil
}

// reportView is the Report page's data.
type reportView struct {
	Report  history.Report
	Windows []int
	Error   string
	Busiest int // most parks of any slot, for the bars
}

func reportPageData(r *http.Request, env *Env) (any, error) {
	rep, _, err := buildReport(env, r)
	v := reportView{Report: rep, Windows: history.Windows}
	if err != nil {
		v.Error = err.Error()
		q := r.URL.Query()
		q.Del("days")
		r.URL.RawQuery = q.Encode()
		rep, _, _ = buildReport(env, r)
		v.Report = rep
	}
	for _, l := range v.Report.Lots {
		for _, s := range l.Slots {
			v.Busiest = max(v.Busiest, s.Parks)
		}
	}
	return v, nil
}
