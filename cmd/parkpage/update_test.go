package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
)

// The update counts the calls in the box's slots (parked or ringing back)
// to tell the installer what the reboot does to them.
func TestUpdateCountsParkedCalls(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		status     int
		want       int
	}{
		{"none", `{"slots":[{"slot":"701","state":"free"},{"slot":"702","state":"free"}]}`, 200, 0},
		{"parked and ringing back", `{"slots":[{"slot":"701","state":"parked"},{"slot":"702","state":"free"},{"slot":"703","state":"ringback"}]}`, 200, 2},
		{"old box without the route", `not found`, 404, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/api/v1/slots" || r.Header.Get("Authorization") != "Bearer tok" {
					http.Error(w, "unexpected "+r.URL.Path, http.StatusTeapot)
					return
				}
				w.WriteHeader(tc.status)
				w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			c := &updateClient{base: srv.URL, token: "tok"}
			if got := c.parked(context.Background()); got != tc.want {
				t.Fatalf("parked() = %d, want %d", got, tc.want)
			}
		})
	}
}
