package sipstack

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/parkpage/parkpage/internal/atomicfile"
)

// Binding is one registered contact of a user.
type Binding struct {
	User      string    `json:"user"`
	Contact   string    `json:"contact"`   // Contact URI
	Source    string    `json:"source"`    // ip:port the REGISTER came from
	Transport string    `json:"transport"` // udp, tcp, tls
	Expires   time.Time `json:"expires"`
	CallID    string    `json:"call_id"`
	CSeq      uint32    `json:"cseq"`
	Updated   time.Time `json:"updated"`
}

// registrar keeps bindings in memory and in a JSON file written atomically
// (write a temporary file, fsync, rename), so registrations survive a
// restart and phones' BLF keys and ring-backs work before they re-register.
type registrar struct {
	log  *slog.Logger
	path string // "" keeps bindings in memory only
	now  func() time.Time

	mu       sync.Mutex
	bindings map[string][]Binding // user -> bindings, newest last
}

const (
	minExpires     = 60
	maxExpires     = 3600
	defaultExpires = 3600
	maxBindings    = 5
)

func newRegistrar(stateDir string, log *slog.Logger) *registrar {
	r := &registrar{log: log, now: time.Now, bindings: map[string][]Binding{}}
	if stateDir != "" {
		r.path = filepath.Join(stateDir, "sip-registrations.json")
	}
	return r
}

// load reads persisted bindings, dropping expired ones.
func (r *registrar) load() error {
	if r.path == "" {
		return nil
	}
	data, err := os.ReadFile(r.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("registrations: %w", err)
	}
	var all []Binding
	if err := json.Unmarshal(data, &all); err != nil {
		return fmt.Errorf("registrations %s: %w", r.path, err)
	}
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, b := range all {
		if b.Expires.After(now) && b.User != "" && b.Contact != "" {
			r.bindings[b.User] = append(r.bindings[b.User], b)
		}
	}
	return nil
}

// saveLocked writes all live bindings; r.mu held.
func (r *registrar) saveLocked() {
	if r.path == "" {
		return
	}
	all := []Binding{}
	for _, u := range sortedUsers(r.bindings) {
		all = append(all, r.bindings[u]...)
	}
	data, err := json.MarshalIndent(all, "", "  ")
	if err != nil {
		r.log.Error("registrations: encode", "error", err)
		return
	}
	if err := atomicfile.Write(r.path, data, 0o600); err != nil {
		r.log.Error("registrations: save", "error", err)
	}
}

func sortedUsers(m map[string][]Binding) []string {
	us := make([]string, 0, len(m))
	for u := range m {
		us = append(us, u)
	}
	sort.Strings(us)
	return us
}

// lookup returns the live bindings of user, newest first.
func (r *registrar) lookup(user string) []Binding {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	var out []Binding
	for _, b := range r.bindings[user] {
		if b.Expires.After(now) {
			out = append(out, b)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Updated.After(out[j].Updated) })
	return out
}

// all returns every live binding.
func (r *registrar) all() []Binding {
	r.mu.Lock()
	users := sortedUsers(r.bindings)
	r.mu.Unlock()
	var out []Binding
	for _, u := range users {
		out = append(out, r.lookup(u)...)
	}
	return out
}

// expiresOf reads a contact's expiry: its expires parameter, else the
// Expires header, else the default.
func expiresOf(c *sip.ContactHeader, req *sip.Request) int {
	if v, ok := c.Params.Get("expires"); ok {
		if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
			return n
		}
	}
	if h := req.GetHeader("Expires"); h != nil {
		if n, err := strconv.Atoi(strings.TrimSpace(h.Value())); err == nil {
			return n
		}
	}
	return defaultExpires
}

// register applies a REGISTER for an authenticated user and returns the
// response code and the bindings to list in the 200.
func (r *registrar) register(user string, req *sip.Request) (int, string, []Binding) {
	contacts := req.GetHeaders("Contact")
	if len(contacts) == 0 {
		contacts = req.GetHeaders("m")
	}
	callID := ""
	if h := req.CallID(); h != nil {
		callID = h.Value()
	}
	var cseq uint32
	if h := req.CSeq(); h != nil {
		cseq = h.SeqNo
	}
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	list := r.bindings[user]
	if len(contacts) == 0 { // a query
		return 200, "OK", r.liveLocked(user)
	}
	var parsed []*sip.ContactHeader
	for _, h := range contacts {
		for _, v := range splitContacts(h.Value()) {
			if strings.TrimSpace(v) == "*" {
				if expiresOf(&sip.ContactHeader{}, req) != 0 || len(contacts) != 1 {
					return 400, "Bad Request", nil
				}
				delete(r.bindings, user)
				r.saveLocked()
				return 200, "OK", nil
			}
			c := &sip.ContactHeader{}
			var uri sip.Uri
			disp, err := sip.ParseAddressValue(v, &uri, &c.Params)
			if err != nil || uri.Host == "" {
				return 400, "Bad Request", nil
			}
			c.DisplayName, c.Address = disp, uri
			parsed = append(parsed, c)
		}
	}
	for _, c := range parsed {
		exp := expiresOf(c, req)
		contact := c.Address.String()
		idx := -1
		for i, b := range list {
			if b.Contact == contact {
				idx = i
			}
		}
		if idx >= 0 && list[idx].CallID == callID && cseq <= list[idx].CSeq {
			return 500, "Server Internal Error", nil // out of order (RFC 3261 10.3 step 7)
		}
		if exp == 0 {
			if idx >= 0 {
				list = append(list[:idx], list[idx+1:]...)
			}
			continue
		}
		if exp < minExpires {
			return 423, "Interval Too Brief", nil
		}
		exp = min(exp, maxExpires)
		b := Binding{User: user, Contact: contact, Source: req.Source(), Transport: strings.ToLower(req.Transport()),
			Expires: now.Add(time.Duration(exp) * time.Second), CallID: callID, CSeq: cseq, Updated: now}
		if idx >= 0 {
			list = append(list[:idx], list[idx+1:]...)
		}
		list = append(list, b)
	}
	// Drop expired bindings and the oldest beyond the limit.
	live := list[:0]
	for _, b := range list {
		if b.Expires.After(now) {
			live = append(live, b)
		}
	}
	if len(live) > maxBindings {
		live = live[len(live)-maxBindings:]
	}
	if len(live) == 0 {
		delete(r.bindings, user)
	} else {
		r.bindings[user] = live
	}
	r.saveLocked()
	return 200, "OK", r.liveLocked(user)
}

func (r *registrar) liveLocked(user string) []Binding {
	now := r.now()
	var out []Binding
	for _, b := range r.bindings[user] {
		if b.Expires.After(now) {
			out = append(out, b)
		}
	}
	return out
}

// splitContacts splits a Contact header value holding several contacts.
func splitContacts(v string) []string {
	var out []string
	for _, c := range splitTop(v) {
		if c != "" {
			out = append(out, c)
		}
	}
	return out
}
