package provision

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/parkpage/parkpage/internal/atomicfile"
)

// Registry is the installer's list of phones and the provisioning
// password phones fetch their files with, kept in the state directory
// (phones.json, written atomically).
type Registry struct {
	path string

	mu     sync.Mutex
	phones map[string]Phone
	secret string
}

type registryFile struct {
	// Password is the HTTP password of user "provision" for phones
	// fetching their files.
	Password string  `json:"password"`
	Phones   []Phone `json:"phones"`
}

// OpenRegistry reads dir/phones.json, creating a password when there is
// none. An empty dir keeps everything in memory.
func OpenRegistry(dir string) (*Registry, error) {
	r := &Registry{phones: map[string]Phone{}}
	if dir != "" {
		r.path = filepath.Join(dir, "phones.json")
		data, err := os.ReadFile(r.path)
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			return nil, fmt.Errorf("phones: %w", err)
		default:
			var f registryFile
			if err := json.Unmarshal(data, &f); err != nil {
				return nil, fmt.Errorf("phones %s: %w", r.path, err)
			}
			r.secret = f.Password
			for _, p := range f.Phones {
				if m, err := ParseMAC(p.MAC); err == nil {
					p.MAC = m
					r.phones[m] = p
				}
			}
		}
	}
	if r.secret == "" {
		r.secret = newSecret()
		r.mu.Lock()
		defer r.mu.Unlock()
		if err := r.saveLocked(); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func newSecret() string {
	b := make([]byte, 15)
	rand.Read(b)
	return strings.ToLower(base32.StdEncoding.EncodeToString(b))
}

// Password is the provisioning password (HTTP user "provision").
func (r *Registry) Password() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.secret
}

// Phones lists the phones by MAC.
func (r *Registry) Phones() []Phone {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Phone, 0, len(r.phones))
	for _, p := range r.phones {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b Phone) int { return strings.Compare(a.MAC, b.MAC) })
	return out
}

// Phone returns the phone with that MAC.
func (r *Registry) Phone(mac string) (Phone, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok := r.phones[mac]
	return p, ok
}

// Put adds or replaces a phone (its MAC normalised).
func (r *Registry) Put(p Phone) (Phone, error) {
	m, err := ParseMAC(p.MAC)
	if err != nil {
		return p, err
	}
	p.MAC = m
	if _, err := Lookup(string(p.Model)); err != nil {
		return p, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	old, had := r.phones[m]
	r.phones[m] = p
	if err := r.saveLocked(); err != nil {
		if had {
			r.phones[m] = old
		} else {
			delete(r.phones, m)
		}
		return p, err
	}
	return p, nil
}

// Delete removes a phone; it reports whether there was one.
func (r *Registry) Delete(mac string) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok := r.phones[mac]
	if !ok {
		return false, nil
	}
	delete(r.phones, mac)
	if err := r.saveLocked(); err != nil {
		r.phones[mac] = p
		return false, err
	}
	return true, nil
}

func (r *Registry) saveLocked() error {
	if r.path == "" {
		return nil
	}
	f := registryFile{Password: r.secret, Phones: []Phone{}}
	for _, p := range r.phones {
		f.Phones = append(f.Phones, p)
	}
	slices.SortFunc(f.Phones, func(a, b Phone) int { return strings.Compare(a.MAC, b.MAC) })
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(r.path, data, 0o600); err != nil {
		return fmt.Errorf("phones: %w", err)
	}
	return nil
}
