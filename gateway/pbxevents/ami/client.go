// Package ami follows an Asterisk's parked calls over the Asterisk Manager
// Interface (AMI, TCP port 5038): it logs in, reads the event stream and
// turns res_parking's ParkedCall, ParkedCallSwap, UnParkedCall,
// ParkedCallTimeOut and ParkedCallGiveUp events into pbxevents.ParkEvents.
// It reconnects with capped, jittered exponential backoff and sends a
// keep-alive Ping, so a PBX that restarts or a link that silently dies is
// noticed and recovered.
//
// The wire protocol: the manager greets with one line, "Asterisk Call
// Manager/11.0.0"; then both sides exchange messages of "Key: Value" lines
// ending in CRLF, each message ending with an empty line. Actions carry an
// ActionID that the manager copies into its Response.
//
// It owns only the AMI connection; it must not import the gateway or SIP
// code.
package ami

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/parkpage/parkpage/gateway/pbxevents"
	"github.com/parkpage/parkpage/internal/config"
)

// Defaults for Options.
const (
	// DefaultEvents is the Login event mask: res_parking's events are of
	// class "call", and asking for that class alone spares the Pi the
	// dialplan (VarSet) and RTCP events a busy PBX sends by the hundred.
	DefaultEvents       = "call"
	DefaultDialTimeout  = 5 * time.Second
	DefaultPingInterval = 20 * time.Second
	DefaultPingTimeout  = 10 * time.Second
	DefaultMinBackoff   = time.Second
	DefaultMaxBackoff   = time.Minute
)

// Options configures a Client beyond config.AMI.
type Options struct {
	// Sink receives the park events; required. See pbxevents.Sink.
	Sink pbxevents.Sink
	// Mapper maps the PBX's slots to local ones; nil: identity.
	Mapper *pbxevents.SlotMapper
	// Logger; nil: slog.Default().
	Logger *slog.Logger
	// Events is the Login "Events:" mask ("on", or classes such as
	// "call,system"). Default DefaultEvents.
	Events string
	// DialTimeout bounds the TCP connect, the banner and the login.
	// Default DefaultDialTimeout.
	DialTimeout time.Duration
	// PingInterval is how often an idle-or-not connection is probed with
	// Action: Ping; PingTimeout how long the answer may take before the
	// connection is declared dead. Defaults DefaultPingInterval,
	// DefaultPingTimeout.
	PingInterval, PingTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait between reconnection
	// attempts: it doubles per failed attempt up to MaxBackoff, and is
	// jittered to between half and all of that. Defaults DefaultMinBackoff,
	// DefaultMaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// Now stamps events that carry no Timestamp field (manager.conf
	// timestampevents=no). Default time.Now.
	Now func() time.Time
}

// Client follows one Asterisk manager. Create it with New, run it with Run.
type Client struct {
	cfg  config.AMI
	opts Options
	log  *slog.Logger

	// Touched only by the Run goroutine.
	seq      uint64
	state    connState
	upAt     time.Time
	attempts int // connection attempts since the last lasting session
}

// New checks cfg and returns a Client; it does not connect.
func New(cfg config.AMI, opts Options) (*Client, error) {
	if cfg.Address == "" {
		return nil, errors.New("ami: address is empty")
	}
	if _, _, err := net.SplitHostPort(cfg.Address); err != nil {
		return nil, fmt.Errorf("ami: address %q: %w", cfg.Address, err)
	}
	if cfg.Username == "" {
		return nil, errors.New("ami: username is empty")
	}
	if opts.Sink == nil {
		return nil, errors.New("ami: no sink")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Events == "" {
		opts.Events = DefaultEvents
	}
	setDefault(&opts.DialTimeout, DefaultDialTimeout)
	setDefault(&opts.PingInterval, DefaultPingInterval)
	setDefault(&opts.PingTimeout, DefaultPingTimeout)
	setDefault(&opts.MinBackoff, DefaultMinBackoff)
	setDefault(&opts.MaxBackoff, DefaultMaxBackoff)
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = opts.MinBackoff
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	c := &Client{cfg: cfg, opts: opts, log: opts.Logger.With("source", pbxevents.SourceAMI, "manager", cfg.Address)}
	if err := c.login("0").check(); err != nil {
		return nil, fmt.Errorf("ami: login: %w", err)
	}
	return c, nil
}

func setDefault(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

// connState is what the Client last logged about its connection.
type connState int

const (
	stateNew         connState = iota
	stateUp                    // logged in
	stateLost                  // was logged in, connection ended
	stateUnreachable           // connect, banner or login exchange failed
	stateRefused               // the manager rejected the credentials
)

// Run connects, logs in and delivers park events until ctx ends, then
// returns nil. Connection failures are not returned: it reconnects with
// backoff forever, logging once per change of state (not per retry).
func (c *Client) Run(ctx context.Context) error {
	for {
		up, err := c.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if up && time.Since(c.upAt) >= c.opts.MaxBackoff {
			// A session that lasted: start again from MinBackoff. One that
			// drops right after login keeps backing off, so a flapping
			// manager is not hammered.
			c.attempts = 0
		}
		delay := pbxevents.Backoff(c.attempts, c.opts.MinBackoff, c.opts.MaxBackoff)
		c.attempts++
		switch {
		case up:
			c.setState(stateLost, slog.LevelWarn, "ami connection lost; reconnecting", "err", err, "retry_in", delay)
		case errors.Is(err, ErrAuth):
			c.setState(stateRefused, slog.LevelError, "ami login refused; check external.ami username and secret; retrying", "err", err, "retry_in", delay)
		default:
			c.setState(stateUnreachable, slog.LevelWarn, "ami manager unreachable; retrying", "err", err, "retry_in", delay)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// setState logs msg at level when the state changes, and at debug level
// when it repeats.
func (c *Client) setState(s connState, level slog.Level, msg string, args ...any) {
	if s == c.state {
		level = slog.LevelDebug
	}
	c.state = s
	c.log.Log(context.Background(), level, msg, args...)
}

func (c *Client) nextID() string {
	c.seq++
	return "parkpage-" + strconv.FormatUint(c.seq, 10)
}

func (c *Client) login(id string) Message {
	return Message{
		{"Action", "Login"},
		{"ActionID", id},
		{"Username", c.cfg.Username},
		{"Secret", c.cfg.Secret},
		{"Events", c.opts.Events},
	}
}

// session runs one connection. up reports whether it got past the login.
func (c *Client) session(ctx context.Context) (up bool, err error) {
	d := net.Dialer{Timeout: c.opts.DialTimeout}
	conn, err := d.DialContext(ctx, "tcp", c.cfg.Address)
	if err != nil {
		return false, fmt.Errorf("dial: %w", err)
	}
	defer conn.Close()
	// Closing the connection is what unblocks a read when ctx ends.
	defer context.AfterFunc(ctx, func() { conn.Close() })()

	_ = conn.SetDeadline(time.Now().Add(c.opts.DialTimeout))
	rd := NewReader(conn)
	version, err := rd.ReadBanner()
	if err != nil {
		return false, err
	}
	id := c.nextID()
	if _, err := conn.Write(c.login(id).AppendTo(nil)); err != nil {
		return false, fmt.Errorf("send login: %w", err)
	}
	for {
		m, err := rd.ReadMessage()
		if errors.Is(err, ErrMessageTooLarge) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("login as %q: %w", c.cfg.Username, err)
		}
		if !m.Has("Response") || (m.Has("ActionID") && m.Get("ActionID") != id) {
			continue // an event, or an answer to something else
		}
		if !strings.EqualFold(m.Get("Response"), "Success") {
			return false, fmt.Errorf("login as %q: %w: %s", c.cfg.Username, ErrAuth, m.Get("Message"))
		}
		break
	}
	_ = conn.SetDeadline(time.Time{})
	c.upAt = time.Now()
	c.setState(stateUp, slog.LevelInfo, "ami logged in", "version", version, "retries", c.attempts)
	return true, c.serve(ctx, conn, rd)
}

// serve reads events and keeps the connection alive until it fails or ctx
// ends. Only this goroutine writes to conn.
func (c *Client) serve(ctx context.Context, conn net.Conn, rd *Reader) error {
	msgs := make(chan Message)
	readErr := make(chan error, 1)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			m, err := rd.ReadMessage()
			if errors.Is(err, ErrMessageTooLarge) {
				c.log.Debug("ami message too large; skipped")
				continue
			}
			if err != nil {
				readErr <- err
				return
			}
			select {
			case msgs <- m:
			case <-done:
				return
			}
		}
	}()
	defer func() {
		close(done)
		conn.Close()
		wg.Wait()
	}()

	ping := time.NewTicker(c.opts.PingInterval)
	defer ping.Stop()
	pong := time.NewTimer(c.opts.PingTimeout)
	pong.Stop()
	var (
		pending string           // ActionID of the unanswered Ping
		pongC   <-chan time.Time // armed while a Ping is pending
	)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-readErr:
			if err == io.EOF {
				return errors.New("closed by the manager")
			}
			return fmt.Errorf("read: %w", err)
		case m := <-msgs:
			if pending != "" && m.Has("Response") && m.Get("ActionID") == pending {
				pending, pongC = "", nil
				pong.Stop()
				continue
			}
			c.handle(m)
		case <-ping.C:
			if pending != "" {
				continue
			}
			pending = c.nextID()
			_ = conn.SetWriteDeadline(time.Now().Add(c.opts.PingTimeout))
			if _, err := conn.Write(Message{{"Action", "Ping"}, {"ActionID", pending}}.AppendTo(nil)); err != nil {
				return fmt.Errorf("send ping: %w", err)
			}
			pong.Reset(c.opts.PingTimeout)
			pongC = pong.C
		case <-pongC:
			return fmt.Errorf("%w after %v", ErrPingTimeout, c.opts.PingTimeout)
		}
	}
}

// handle delivers m if it is a park event of the followed lot.
func (c *Client) handle(m Message) {
	ev, ok := parkEvent(m, c.opts.Mapper, c.opts.Now())
	if !ok {
		return
	}
	if c.cfg.Lot != "" && ev.Lot != c.cfg.Lot {
		c.log.Debug("ami park event of another lot ignored", "lot", ev.Lot, "slot", ev.ExternalSlot)
		return
	}
	c.opts.Sink(ev)
}
