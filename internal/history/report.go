package history

import (
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Layout is what the report needs from the config: the lots and their
// slots (also the unused ones) and who belongs to which group.
type Layout struct {
	Lots []LotLayout
	// Groups maps a SIP user to its groups (sip.users.X.groups).
	Groups map[string][]string
}

// LotLayout is one park lot.
type LotLayout struct {
	Name  string
	Label string // the lot's own label (slots without one of their own show it)
	Slots []SlotLayout
}

// SlotLayout is one slot.
type SlotLayout struct {
	Slot  string
	Label string
	Zones []string // zones its park announcement pages
}

// ReportOptions tune the findings.
type ReportOptions struct {
	// Days is the window: 7, 30 or 90.
	Days int
	// QueuePerDay: more pickups a day than this by one group is a queue.
	// Default 30.
	QueuePerDay float64
	// RingBackShare: more ring-backs than this share of a slot's parks
	// means nobody hears the page. Default 0.2.
	RingBackShare float64
	// MinParks is the fewest parks a slot needs before its ring-back
	// share counts. Default 5.
	MinParks int
}

// Windows are the report's windows in days.
var Windows = []int{7, 30, 90}

// Report is the usage report (GET /api/v1/report).
type Report struct {
	Generated time.Time `json:"generated"`
	Days      int       `json:"days"`
	From      time.Time `json:"from"`
	// HistoryFrom is when the history begins (zero: no parks yet).
	HistoryFrom time.Time     `json:"history_from,omitzero"`
	Totals      SlotStats     `json:"totals"`
	Lots        []LotStats    `json:"lots"`
	Findings    []Finding     `json:"findings"`
	Options     ReportOptions `json:"options"`
}

// LotStats is a lot's slots and how many were in use at once.
type LotStats struct {
	Name  string      `json:"name"`
	Slots []SlotStats `json:"slots"`
	// MaxInUse is the most slots of the lot holding a call at the same
	// moment in the window.
	MaxInUse int `json:"max_in_use"`
}

// SlotStats is one slot's figures (or the totals).
type SlotStats struct {
	Lot   string `json:"lot,omitempty"`
	Slot  string `json:"slot,omitempty"`
	Label string `json:"label,omitempty"`
	Parks int    `json:"parks"`
	// MedianWait and P90Wait are over the parks that ended, in seconds.
	MedianWait float64 `json:"median_wait_seconds"`
	P90Wait    float64 `json:"p90_wait_seconds"`
	Pickups    int     `json:"pickups"`
	RingBacks  int     `json:"ring_backs"` // parks that rang back the parker
	Fallbacks  int     `json:"fallbacks"`  // parks that rang the fallback
	Abandons   int     `json:"abandons"`
}

// Finding kinds.
const (
	FindLabelDrift   = "label_drift"
	FindQueue        = "queue"
	FindRingBacks    = "ring_backs"
	FindTooManySlots = "too_many_slots"
)

// Finding is one plain-language observation.
type Finding struct {
	Kind  string `json:"kind"`
	Lot   string `json:"lot,omitempty"`
	Slot  string `json:"slot,omitempty"`
	Group string `json:"group,omitempty"`
	Title string `json:"title"`
	Text  string `json:"text"`
}

// labelDriftDays is the window of the label-drift finding.
const labelDriftDays = 30

// minCoverage is how much history the findings about absence (unused
// slots, too many slots) need: about a week.
const minCoverage = 6 * 24 * time.Hour

// BuildReport computes the report over the last o.Days days.
func (s *Store) BuildReport(l Layout, o ReportOptions) Report {
	now := s.Now()
	if o.Days <= 0 {
		o.Days = 30
	}
	if o.QueuePerDay <= 0 {
		o.QueuePerDay = 30
	}
	if o.RingBackShare <= 0 {
		o.RingBackShare = 0.2
	}
	if o.MinParks <= 0 {
		o.MinParks = 5
	}
	from := now.Add(-time.Duration(o.Days) * 24 * time.Hour)
	recs := s.Since(from)
	rep := Report{Generated: now, Days: o.Days, From: from, HistoryFrom: s.First(), Lots: []LotStats{}, Findings: []Finding{}, Options: o}

	bySlot := map[string][]Record{}
	for _, r := range recs {
		bySlot[r.Slot] = append(bySlot[r.Slot], r)
	}
	known := map[string]bool{}
	var all []Record
	for _, lot := range l.Lots {
		ls := LotStats{Name: lot.Name, Slots: []SlotStats{}}
		var lotRecs []Record
		for _, sl := range lot.Slots {
			known[sl.Slot] = true
			label := sl.Label
			if label == "" {
				label = lot.Label
			}
			st := stats(bySlot[sl.Slot], now)
			st.Lot, st.Slot, st.Label = lot.Name, sl.Slot, label
			ls.Slots = append(ls.Slots, st)
			lotRecs = append(lotRecs, bySlot[sl.Slot]...)
		}
		ls.MaxInUse = maxInUse(lotRecs, now)
		rep.Lots = append(rep.Lots, ls)
		all = append(all, lotRecs...)
	}
	// Slots no longer configured (or a PBX's unmapped slots) still count.
	var other []string
	for slot := range bySlot {
		if !known[slot] {
			other = append(other, slot)
		}
	}
	if len(other) > 0 {
		slices.SortFunc(other, compareSlots)
		ls := LotStats{Name: "other", Slots: []SlotStats{}}
		var lotRecs []Record
		for _, slot := range other {
			st := stats(bySlot[slot], now)
			st.Lot, st.Slot, st.Label = "other", slot, bySlot[slot][len(bySlot[slot])-1].Label
			ls.Slots = append(ls.Slots, st)
			lotRecs = append(lotRecs, bySlot[slot]...)
		}
		ls.MaxInUse = maxInUse(lotRecs, now)
		rep.Lots = append(rep.Lots, ls)
		all = append(all, lotRecs...)
	}
	rep.Totals = stats(all, now)

	covered := !rep.HistoryFrom.IsZero() && now.Sub(rep.HistoryFrom) >= minCoverage
	if covered {
		rep.Findings = append(rep.Findings, s.labelDrift(l, now)...)
	}
	rep.Findings = append(rep.Findings, queues(recs, l.Groups, o, now)...)
	rep.Findings = append(rep.Findings, ringBacks(rep.Lots, l, o)...)
	if covered {
		rep.Findings = append(rep.Findings, tooManySlots(rep.Lots, l, o.Days, now.Sub(rep.HistoryFrom))...)
	}
	return rep
}

func compareSlots(a, b string) int {
	x, ea := strconv.Atoi(a)
	y, eb := strconv.Atoi(b)
	if ea == nil && eb == nil {
		return x - y
	}
	return strings.Compare(a, b)
}

func stats(rs []Record, now time.Time) SlotStats {
	var st SlotStats
	var waits []float64
	for _, r := range rs {
		st.Parks++
		if !r.Open() && r.Outcome != OutcomeLost {
			waits = append(waits, r.Ended.Sub(r.Parked).Seconds())
		}
		switch r.Outcome {
		case OutcomePickedUp:
			st.Pickups++
		case OutcomeAbandoned:
			st.Abandons++
		}
		if r.RingBacks > 0 {
			st.RingBacks++
		}
		if r.Fallbacks > 0 {
			st.Fallbacks++
		}
	}
	slices.Sort(waits)
	st.MedianWait = percentile(waits, 0.5)
	st.P90Wait = percentile(waits, 0.9)
	return st
}

// percentile is the nearest-rank percentile of sorted values (0 for none).
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return math.Round(sorted[max(0, min(i, len(sorted)-1))]*10) / 10
}

// maxInUse is the most parks overlapping at one moment.
func maxInUse(rs []Record, now time.Time) int {
	type edge struct {
		t time.Time
		d int
	}
	var es []edge
	for _, r := range rs {
		end := r.Ended
		if r.Open() {
			end = now
		}
		es = append(es, edge{r.Parked, 1}, edge{end, -1})
	}
	// Ends before starts at the same instant: a slot freed and taken in
	// the same second is one in use, not two.
	slices.SortFunc(es, func(a, b edge) int {
		if c := a.t.Compare(b.t); c != 0 {
			return c
		}
		return a.d - b.d
	})
	n, m := 0, 0
	for _, e := range es {
		n += e.d
		m = max(m, n)
	}
	return m
}

func slotName(slot, label string) string {
	if label == "" {
		return slot
	}
	return slot + " (" + label + ")"
}

// labelDrift finds slots unused in the last 30 days while the slots on
// both sides of them in their lot were used: people park in the
// neighbours, so the slot's label no longer says what it is for.
func (s *Store) labelDrift(l Layout, now time.Time) []Finding {
	used := map[string]bool{}
	for _, r := range s.Since(now.Add(-labelDriftDays * 24 * time.Hour)) {
		used[r.Slot] = true
	}
	days := labelDriftDays
	if h := int(math.Round(now.Sub(s.First()).Hours() / 24)); h < days {
		days = h
	}
	var out []Finding
	for _, lot := range l.Lots {
		for i, sl := range lot.Slots {
			if used[sl.Slot] {
				continue
			}
			var below, above string
			for j := i - 1; j >= 0; j-- {
				if used[lot.Slots[j].Slot] {
					below = lot.Slots[j].Slot
					break
				}
			}
			for j := i + 1; j < len(lot.Slots); j++ {
				if used[lot.Slots[j].Slot] {
					above = lot.Slots[j].Slot
					break
				}
			}
			if below == "" || above == "" {
				continue
			}
			label := sl.Label
			if label == "" {
				label = lot.Label
			}
			out = append(out, Finding{Kind: FindLabelDrift, Lot: lot.Name, Slot: sl.Slot,
				Title: fmt.Sprintf("Slot %s unused: audit its label", slotName(sl.Slot, label)),
				Text: fmt.Sprintf("Nobody parked in %s in the last %d days, while %s and %s were used. "+
					"Check that its label (and its BLF key's) still says what people park there.", slotName(sl.Slot, label), days, below, above)})
		}
	}
	return out
}

// queues finds groups that pick up more than QueuePerDay parks a day on
// average over the days that had parks: calls waiting for whoever is
// free are a queue, not a park.
func queues(rs []Record, groups map[string][]string, o ReportOptions, now time.Time) []Finding {
	perGroup := map[string]map[string]int{} // group -> day -> pickups
	days := map[string]bool{}
	for _, r := range rs {
		day := r.Parked.Format("2006-01-02")
		days[day] = true
		if r.Outcome != OutcomePickedUp {
			continue
		}
		_, user := SplitParty(r.Retriever)
		if user == "" {
			continue
		}
		gs := groups[user]
		if len(gs) == 0 {
			gs = []string{"user " + user}
		}
		for _, g := range gs {
			if perGroup[g] == nil {
				perGroup[g] = map[string]int{}
			}
			perGroup[g][day]++
		}
	}
	var names []string
	for g := range perGroup {
		names = append(names, g)
	}
	slices.Sort(names)
	var out []Finding
	for _, g := range names {
		total, busiest, busiestDay := 0, 0, ""
		for d, n := range perGroup[g] {
			total += n
			if n > busiest || n == busiest && d < busiestDay {
				busiest, busiestDay = n, d
			}
		}
		avg := float64(total) / float64(len(days))
		if avg <= o.QueuePerDay {
			continue
		}
		who := "Group " + g
		if strings.HasPrefix(g, "user ") {
			who = "Extension " + strings.TrimPrefix(g, "user ")
		}
		bd, _ := time.Parse("2006-01-02", busiestDay)
		out = append(out, Finding{Kind: FindQueue, Group: g,
			Title: fmt.Sprintf("%s picks up %.0f parks a day: a queue, not park", who, avg),
			Text: fmt.Sprintf("%s picked up %d parked calls in %d days with parks (%.0f a day, %d on %s). "+
				"More than %.0f a day picked up by the same people is a call queue: a queue or ring group answers them in order and nobody has to listen for pages.",
				who, total, len(days), avg, busiest, bd.Format("Mon 2 Jan"), o.QueuePerDay)})
	}
	return out
}

// ringBacks finds slots where more than RingBackShare of the parks rang
// back: nobody heard the page.
func ringBacks(lots []LotStats, l Layout, o ReportOptions) []Finding {
	zones := map[string][]string{}
	for _, lot := range l.Lots {
		for _, sl := range lot.Slots {
			zones[sl.Slot] = sl.Zones
		}
	}
	var out []Finding
	for _, lot := range lots {
		for _, st := range lot.Slots {
			if st.Parks < o.MinParks || float64(st.RingBacks) <= o.RingBackShare*float64(st.Parks) {
				continue
			}
			check := "Check the zones it pages"
			if z := zones[st.Slot]; len(z) > 0 {
				check = "Check the zones it pages (" + strings.Join(z, ", ") + ")"
			} else {
				check = "It pages no zone: give it announcement zones"
			}
			out = append(out, Finding{Kind: FindRingBacks, Lot: lot.Name, Slot: st.Slot,
				Title: fmt.Sprintf("Slot %s rings back %.0f%% of the time", slotName(st.Slot, st.Label), 100*float64(st.RingBacks)/float64(st.Parks)),
				Text: fmt.Sprintf("%d of %d parks on %s timed out and rang back the parker: nobody hears the page, or the wrong people do. "+
					"%s: is every output working, loud enough, and where the people who pick up are?", st.RingBacks, st.Parks, slotName(st.Slot, st.Label), check)})
		}
	}
	return out
}

// tooManySlots finds lots with more slots than were ever in use at once.
func tooManySlots(lots []LotStats, l Layout, days int, covered time.Duration) []Finding {
	var out []Finding
	for _, lot := range lots {
		if lot.Name == "other" || len(lot.Slots) < 2 || lot.MaxInUse >= len(lot.Slots) {
			continue
		}
		total := 0
		for _, st := range lot.Slots {
			total += st.Parks
		}
		if total == 0 {
			continue
		}
		span := days
		if d := int(math.Round(covered.Hours() / 24)); d < span {
			span = d
		}
		want := lot.MaxInUse + 1
		out = append(out, Finding{Kind: FindTooManySlots, Lot: lot.Name,
			Title: fmt.Sprintf("Lot %s: %d slots, never more than %d in use", lot.Name, len(lot.Slots), lot.MaxInUse),
			Text: fmt.Sprintf("In the last %d days at most %d of lot %s's %d slots held a call at the same time. "+
				"%d slots (one spare) would do: fewer BLF keys to label and watch, and fewer numbers to mishear in a page.",
				span, lot.MaxInUse, lot.Name, len(lot.Slots), want)})
	}
	return out
}

// WriteCSV writes the report's slot table as CSV, one row a slot.
func (r Report) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"lot", "slot", "label", "days", "parks", "median_wait_seconds", "p90_wait_seconds", "pickups", "ring_backs", "fallbacks", "abandons"})
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
	for _, lot := range r.Lots {
		for _, s := range lot.Slots {
			cw.Write([]string{s.Lot, s.Slot, csvSafe(s.Label), strconv.Itoa(r.Days), strconv.Itoa(s.Parks), f(s.MedianWait), f(s.P90Wait),
				strconv.Itoa(s.Pickups), strconv.Itoa(s.RingBacks), strconv.Itoa(s.Fallbacks), strconv.Itoa(s.Abandons)})
		}
	}
	cw.Flush()
	return cw.Error()
}

// csvSafe keeps a label from being read as a formula by a spreadsheet.
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
