package gateway

import (
	"context"
	"strings"
	"sync"
)

// LeaseRelays adapts a relay controller that hands out a lease per
// acquisition (relays.Bank: Acquire(ctx, zones) (*relays.Lease, error)) to
// Relays: Release(zones) releases the oldest lease taken for the same zones.
//
//	g, err := gateway.New(gateway.Options{Relays: gateway.LeaseRelays(bank.Acquire), ...})
func LeaseRelays[L interface{ Release() }](acquire func(ctx context.Context, zones []string) (L, error)) Relays {
	return &leaseRelays[L]{acquire: acquire, held: map[string][]L{}}
}

type leaseRelays[L interface{ Release() }] struct {
	acquire func(context.Context, []string) (L, error)
	mu      sync.Mutex
	held    map[string][]L // zones joined -> leases, oldest first
}

func leaseKey(zones []string) string { return strings.Join(zones, "\x00") }

func (r *leaseRelays[L]) Acquire(ctx context.Context, zones []string) error {
	l, err := r.acquire(ctx, zones)
	if err != nil {
		return err
	}
	k := leaseKey(zones)
	r.mu.Lock()
	r.held[k] = append(r.held[k], l)
	r.mu.Unlock()
	return nil
}

func (r *leaseRelays[L]) Release(zones []string) {
	k := leaseKey(zones)
	r.mu.Lock()
	ls := r.held[k]
	if len(ls) == 0 {
		r.mu.Unlock()
		return
	}
	l := ls[0]
	if len(ls) == 1 {
		delete(r.held, k)
	} else {
		r.held[k] = ls[1:]
	}
	r.mu.Unlock()
	l.Release()
}
