package api

import (
	"bufio"
	"bytes"
	"io"
	"strings"

	"github.com/VictoriaMetrics/metrics"
)

func init() {
	// # TYPE lines (and empty # HELP lines, filled in by writeMetrics) for
	// every family, the runtime's and process's included.
	metrics.ExposeMetadata(true)
}

// metricHelp is the # HELP text of parkpage's metric families.
var metricHelp = map[string]string{
	"parkpage_events_total":                    "Events published on the event bus, by type.",
	"parkpage_events_lost_total":               "Events a slow subscriber missed (the announcer resynchronises; alert on any).",
	"parkpage_output_failures_total":           "Failures of a zone's output (output is zone/outputs[i]).",
	"parkpage_parked_calls":                    "Calls parked now.",
	"parkpage_draining":                        "1 while the park drains (new parks refused, parked calls rung back: parkpage drain).",
	"parkpage_sip_registrations":               "Live SIP registrations.",
	"parkpage_rtp_legs":                        "RTP legs open now.",
	"parkpage_hold_music_late_ticks":           "Wake-ups of the sending loop (pacer) that ran late (kept name; same as parkpage_pacer_late_wakeups_total).",
	"parkpage_hold_music_max_tick_seconds":     "Longest wake-up of the sending loop (kept name; same as parkpage_pacer_max_wakeup_seconds).",
	"parkpage_pacer_streams":                   "Streams the sending loop sends now (call legs, pages).",
	"parkpage_pacer_realtime":                  "1 when the sending loop runs with real-time priority (SCHED_FIFO).",
	"parkpage_pacer_wakeups_total":             "Wake-ups of the sending loop (none while no stream is sending).",
	"parkpage_pacer_late_wakeups_total":        "Wake-ups of the sending loop that came too late for their packets.",
	"parkpage_pacer_packets_total":             "Packets the sending loop sent.",
	"parkpage_pacer_bytes_total":               "Bytes the sending loop sent.",
	"parkpage_pacer_late_packets_total":        "Packets sent later than their due time.",
	"parkpage_pacer_dropped_packets_total":     "Packets dropped (too late to be worth sending).",
	"parkpage_pacer_send_errors_total":         "Send errors of the sending loop.",
	"parkpage_pacer_max_late_seconds":          "Latest a packet left after its due time.",
	"parkpage_pacer_max_wakeup_seconds":        "Longest wake-up of the sending loop.",
	"parkpage_zones_paging":                    "Zones playing a page now.",
	"parkpage_live_pages":                      "Live pages in progress.",
	"parkpage_label_recordings_total":          "Labels and announcements recorded from phones, by result (saved, or the reason refused).",
	"parkpage_announcements_running":           "Announcements playing or repeating now.",
	"parkpage_announce_cache_hits":             "Rendered-announcement cache hits.",
	"parkpage_announce_cache_misses":           "Rendered-announcement cache misses.",
	"parkpage_announce_renders":                "Announcements rendered.",
	"parkpage_auth_failures_total":             "Failed logins (wrong password, token or digest), by service.",
	"parkpage_auth_lockouts_total":             "Sources locked out after failed logins, by service.",
	"parkpage_auth_refused_total":              "Attempts refused unchecked from locked-out sources, by service.",
	"parkpage_auth_locked_sources":             "Sources locked out now, by service.",
	"parkpage_sip_stateless_responses_total":   "Requests from outside sip.trusted answered statelessly.",
	"parkpage_sip_dropped_total":               "SIP datagrams dropped by the flood screen, by reason.",
	"parkpage_sip_unparseable_datagrams_total": "UDP datagrams that were not SIP (dropped).",
}

// writeMetrics writes set and the process metrics in the Prometheus text
// format with # HELP texts for parkpage's families.
func writeMetrics(w io.Writer, set *metrics.Set) {
	var buf bytes.Buffer
	set.WritePrometheus(&buf)
	metrics.WriteProcessMetrics(&buf)
	sc := bufio.NewScanner(&buf)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	bw := bufio.NewWriter(w)
	defer bw.Flush()
	for sc.Scan() {
		line := sc.Text()
		if name, ok := strings.CutPrefix(line, "# HELP "); ok && !strings.Contains(name, " ") {
			if h := metricHelp[name]; h != "" {
				line += " " + h
			}
		}
		bw.WriteString(line)
		bw.WriteByte('\n')
	}
}
