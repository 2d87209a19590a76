package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"time"

	"github.com/parkpage/parkpage/gateway/output"
	"github.com/parkpage/parkpage/gateway/paging"
	"github.com/parkpage/parkpage/internal/config"
)

// Relays switches the relays of zones. The gateway calls Acquire before a
// zone's outputs start and Release after they end; the controller (package
// relays) maps zones to their zone-select and page-active relays and applies
// lead and hold times.
type Relays interface {
	// Acquire switches on the zones' relays and returns once their lead time
	// has passed. On error (including ctx ending) nothing stays held.
	Acquire(ctx context.Context, zones []string) error
	// Release switches the zones' relays off after their hold time; it does
	// not wait for the hold.
	Release(zones []string)
}

// Zone is a named set of outputs paged together.
type Zone struct {
	Name        string
	Description string
	Outputs     []output.Output
	// Relays names the zone's relays, for the API; switching goes through
	// the Relays controller, which knows the mapping itself.
	Relays []string
	// MaxPage bounds one page on this zone; zero means no bound.
	MaxPage time.Duration
	// Latency starts every output as soon as it can (zones.NAME.align:
	// latency) instead of lining up their first audio frames (together,
	// the default: see package gateway/align).
	Latency bool
	// AlignWait bounds how long the zone waits for outputs still setting up
	// (zones.NAME.align_wait); zero: align.DefaultWait.
	AlignWait time.Duration
}

// Describer is implemented by outputs that can describe themselves for the
// API; the outputs BuildZones makes all do.
type Describer interface {
	Describe() paging.OutputInfo
}

// BuildZones makes the zones of config section zones, their outputs
// through factory. Every
// output is wrapped so that it describes itself from config (Describer). On
// error the outputs already made are closed.
func BuildZones(cfgZones map[string]*config.Zone, factory output.Factory) (map[string]*Zone, error) {
	zones := make(map[string]*Zone, len(cfgZones))
	names := make([]string, 0, len(cfgZones))
	for n := range cfgZones {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		zc := cfgZones[n]
		if zc == nil {
			zc = &config.Zone{}
		}
		z := &Zone{Name: n, Description: zc.Description, Relays: slices.Clone(zc.Relays), MaxPage: zc.MaxPage.D(),
			Latency: zc.Align == config.AlignLatency, AlignWait: zc.AlignWait.D()}
		zones[n] = z
		for i, oc := range zc.Outputs {
			if oc == nil {
				continue
			}
			if factory == nil {
				closeZones(zones)
				return nil, fmt.Errorf("zone %q output %d: no output factory", n, i)
			}
			o, err := factory(n, i, oc)
			if err != nil {
				closeZones(zones)
				return nil, fmt.Errorf("zone %q output %d (%s): %w", n, i, oc.Type, err)
			}
			z.Outputs = append(z.Outputs, &described{Output: o, info: describeConfig(o.Name(), oc)})
		}
	}
	return zones, nil
}

func describeConfig(name string, o *config.Output) paging.OutputInfo {
	info := paging.OutputInfo{Name: name, Type: o.Type, Codec: o.Codec}
	switch o.Type {
	case config.OutputPolycom:
		info.Address = fmt.Sprintf("%s:%d", o.Group, o.Port)
		info.Channel = o.Channel
	case config.OutputRTP:
		info.Address = fmt.Sprintf("%s:%d", o.Group, o.Port)
	case config.OutputSIP:
		info.Address = o.URI
		info.Codec = ""
	case config.OutputLineOut:
		info.Address = o.Device
		info.Codec = ""
	}
	return info
}

// described adds a config-derived description to an output.
type described struct {
	output.Output
	info paging.OutputInfo
}

func (d *described) Describe() paging.OutputInfo { return d.info }

// aligned reports whether o lines up its start through Playback.Start.
func aligned(o output.Output) bool {
	if d, ok := o.(*described); ok {
		o = d.Output
	}
	_, ok := o.(output.Aligned)
	return ok
}

// Close closes the wrapped output if it holds resources.
func (d *described) Close() error {
	if c, ok := d.Output.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// closeZones closes every output that implements io.Closer.
func closeZones(zones map[string]*Zone) error {
	var errs []error
	for _, z := range zones {
		for _, o := range z.Outputs {
			if c, ok := o.(io.Closer); ok {
				if err := c.Close(); err != nil {
					errs = append(errs, fmt.Errorf("close %s: %w", o.Name(), err))
				}
			}
		}
	}
	return errors.Join(errs...)
}

func describe(o output.Output) paging.OutputInfo {
	if d, ok := o.(Describer); ok {
		return d.Describe()
	}
	return paging.OutputInfo{Name: o.Name()}
}

// generation is one set of zone definitions. Plays hold a reference to the
// generation they started with, so a reload lets in-flight pages finish on
// the old outputs, which are closed when the last such page ends.
type generation struct {
	zones   map[string]*Zone
	refs    int  // running plays
	retired bool // replaced by a reload (or the gateway closed)
}
