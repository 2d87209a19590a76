package ami

import (
	"bufio"
	"fmt"
	"log/slog"
	"net"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parkpage/parkpage/gateway/pbxevents"
	"github.com/parkpage/parkpage/internal/config"
	"github.com/parkpage/parkpage/internal/testsupport/logtest"
	"github.com/parkpage/parkpage/internal/testsupport/runtest"
)

const (
	testUser   = "parkpage"
	testSecret = "s3cret"
)

func testConfig(addr, secret string) config.AMI {
	return config.AMI{Address: addr, Username: testUser, Secret: secret}
}

// fixture splits the capture into its banner and its messages, each in
// wire form (CRLF lines, ending with an empty line).
func fixture(t testing.TB) (banner string, msgs []string) {
	raw := readFixture(t)
	banner, rest, _ := strings.Cut(raw, "\n")
	for _, m := range strings.Split(rest, "\n\n") {
		if m = strings.Trim(m, "\n"); m != "" {
			msgs = append(msgs, crlf(m)+"\r\n\r\n")
		}
	}
	return banner + "\r\n", msgs
}

// amiServer is a small Asterisk manager speaking the real protocol over TCP
// on loopback. It parses actions with its own code, not the package's.
type amiServer struct {
	t      *testing.T
	ln     net.Listener
	banner string
	// serve runs after a successful login on connection n (1-based); when it
	// returns the connection is closed.
	serve func(n int, c *amiConn)
	// ignorePings on connection n: a manager that stopped answering.
	ignorePings func(n int) bool

	conns    atomic.Int32
	logins   atomic.Int32 // successful
	refusals atomic.Int32
	pongs    atomic.Int32
	wg       sync.WaitGroup
	mu       sync.Mutex
	open     []net.Conn
}

type amiConn struct {
	net.Conn
	wmu sync.Mutex
	// gone is closed when the client hangs up (or cleanup closes the
	// connection): a script holds the connection open with <-c.gone.
	gone chan struct{}
}

func (c *amiConn) send(s string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, err := c.Write([]byte(s))
	return err
}

func startServer(t *testing.T, s *amiServer) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return startServerOn(t, s, ln)
}

func startServerOn(t *testing.T, s *amiServer, ln net.Listener) string {
	t.Helper()
	s.t, s.ln = t, ln
	if s.banner == "" {
		s.banner, _ = fixture(t)
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.open = append(s.open, conn)
			s.mu.Unlock()
			n := int(s.conns.Add(1))
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer conn.Close()
				s.handle(n, &amiConn{Conn: conn, gone: make(chan struct{})})
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for _, c := range s.open {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return ln.Addr().String()
}

// readAction reads one "Key: Value" block into a map.
func readAction(br *bufio.Reader) (map[string]string, error) {
	m := map[string]string{}
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return nil, err
		}
		if !strings.HasSuffix(line, "\r\n") {
			return nil, fmt.Errorf("action line %q does not end in CRLF", line)
		}
		line = strings.TrimSuffix(line, "\r\n")
		if line == "" {
			if len(m) == 0 {
				continue
			}
			return m, nil
		}
		k, v, ok := strings.Cut(line, ": ")
		if !ok {
			return nil, fmt.Errorf("action line %q is not Key: Value", line)
		}
		m[strings.ToLower(k)] = v
	}
}

func (s *amiServer) handle(n int, c *amiConn) {
	if err := c.send(s.banner); err != nil {
		return
	}
	br := bufio.NewReader(c)
	login, err := readAction(br)
	if err != nil {
		s.t.Errorf("conn %d: reading login: %v", n, err)
		return
	}
	if login["action"] != "Login" || login["username"] != testUser || login["events"] == "" || login["actionid"] == "" {
		s.t.Errorf("conn %d: bad login action %q", n, login)
		return
	}
	if login["secret"] != testSecret {
		s.refusals.Add(1)
		c.send("Response: Error\r\nActionID: " + login["actionid"] + "\r\nMessage: Authentication failed\r\n\r\n")
		return // Asterisk hangs up after a failed login
	}
	s.logins.Add(1)
	c.send("Response: Success\r\nActionID: " + login["actionid"] + "\r\nMessage: Authentication accepted\r\n\r\n")

	// Answer actions while the script plays.
	defer func() { <-c.gone }()
	go func() {
		defer close(c.gone)
		for {
			a, err := readAction(br)
			if err != nil {
				return
			}
			switch a["action"] {
			case "Ping":
				if s.ignorePings != nil && s.ignorePings(n) {
					continue
				}
				s.pongs.Add(1)
				c.send("Response: Success\r\nActionID: " + a["actionid"] + "\r\nPing: Pong\r\nTimestamp: 1795604262.000000\r\n\r\n")
			default:
				s.t.Errorf("conn %d: unexpected action %q", n, a)
				c.send("Response: Error\r\nActionID: " + a["actionid"] + "\r\nMessage: Invalid/unknown command\r\n\r\n")
			}
		}
	}()
	if s.serve != nil {
		s.serve(n, c)
	}
	c.Close()
}

// recorder collects park events.
type recorder struct {
	c chan pbxevents.ParkEvent
}

func newRecorder() *recorder { return &recorder{c: make(chan pbxevents.ParkEvent, 64)} }

func (r *recorder) sink(e pbxevents.ParkEvent) {
	select {
	case r.c <- e:
	default:
		panic("recorder full")
	}
}

func (r *recorder) wait(t *testing.T, n int) []pbxevents.ParkEvent {
	t.Helper()
	var got []pbxevents.ParkEvent
	timeout := time.After(10 * time.Second)
	for len(got) < n {
		select {
		case e := <-r.c:
			got = append(got, e)
		case <-timeout:
			t.Fatalf("got %d park events, want %d: %+v", len(got), n, got)
		}
	}
	return got
}

// runClient runs a client until the test ends.
func runClient(t *testing.T, cfg config.AMI, opts Options) {
	t.Helper()
	c, err := New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	runtest.Start(t, "Run", c.Run)
}

func fastOptions(r *recorder) Options {
	return Options{
		Sink:         r.sink,
		Logger:       slog.New(slog.DiscardHandler),
		DialTimeout:  2 * time.Second,
		PingInterval: 20 * time.Millisecond,
		PingTimeout:  time.Second,
		MinBackoff:   5 * time.Millisecond,
		MaxBackoff:   40 * time.Millisecond,
	}
}

func ts(s string) time.Time {
	t, ok := parseTimestamp(s)
	if !ok {
		panic(s)
	}
	return t
}

// fixtureEvents are the park events in ami-park-session.txt, 703 mapped to
// local slot 713.
func fixtureEvents() []pbxevents.ParkEvent {
	ev := func(k pbxevents.Kind, slot, local, at string) pbxevents.ParkEvent {
		return pbxevents.ParkEvent{Kind: k, Slot: local, ExternalSlot: slot, Lot: "default",
			Caller: "Phone 201 <201>", Parker: "PJSIP/201", Source: "ami", Time: ts(at)}
	}
	retrieved := ev(pbxevents.Retrieved, "702", "702", "1795604269.979296")
	retrieved.Retriever = "Phone 202 <202>"
	return []pbxevents.ParkEvent{
		ev(pbxevents.Parked, "701", "701", "1795604261.775282"),
		ev(pbxevents.Abandoned, "701", "701", "1795604266.286621"),
		ev(pbxevents.Parked, "702", "702", "1795604266.942544"),
		retrieved,
		ev(pbxevents.Parked, "703", "713", "1795604271.984056"),
		ev(pbxevents.TimedOut, "703", "713", "1795604361.986036"),
	}
}

var testSlotMap = map[string]string{"703": "713"}

func checkEvents(t *testing.T, got, want []pbxevents.ParkEvent) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		for i := range max(len(got), len(want)) {
			var g, w pbxevents.ParkEvent
			if i < len(got) {
				g = got[i]
			}
			if i < len(want) {
				w = want[i]
			}
			if !reflect.DeepEqual(g, w) {
				t.Errorf("event %d:\n got %+v\nwant %+v", i, g, w)
			}
		}
	}
}

// sentinel is a park event of another lot and slot sent after a script, so
// a test knows everything before it has been read.
const sentinel = "Event: ParkedCall\r\nPrivilege: call,all\r\nParkeeCallerIDNum: 999\r\nParkinglot: sentinel\r\nParkingSpace: 799\r\n\r\n"

func TestClientReplaysAsteriskSession(t *testing.T) {
	_, msgs := fixture(t)
	for _, tc := range []struct {
		name string
		lot  string
		want []pbxevents.ParkEvent
	}{
		{"every lot", "", fixtureEvents()},
		{"the default lot", "default", fixtureEvents()},
		{"another lot", "sales", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := &amiServer{serve: func(n int, c *amiConn) {
				for _, m := range msgs {
					if err := c.send(m); err != nil {
						return
					}
				}
				c.send(strings.Replace(sentinel, "sentinel", tc.lot, 1))
				<-c.gone
			}}
			addr := startServer(t, srv)
			r := newRecorder()
			opts := fastOptions(r)
			opts.Mapper = pbxevents.NewSlotMapper(testSlotMap)
			cfg := testConfig(addr, testSecret)
			cfg.Lot = tc.lot
			runClient(t, cfg, opts)

			got := r.wait(t, len(tc.want)+1)
			last := got[len(got)-1]
			if last.ExternalSlot != "799" {
				t.Fatalf("last event %+v is not the sentinel", last)
			}
			checkEvents(t, got[:len(got)-1], tc.want)
			runtest.WaitFor(t, "pings answered", 10*time.Second, func() bool { return srv.pongs.Load() >= 3 })
			if n := srv.logins.Load(); n != 1 {
				t.Errorf("%d logins on a healthy connection, want 1", n)
			}
		})
	}
}

// TestClientReconnects: the manager drops the connection in the middle of
// the session (a PBX restart); the client logs in again and carries on.
func TestClientReconnects(t *testing.T) {
	_, msgs := fixture(t)
	split := 0 // just after the first ParkedCall
	for i, m := range msgs {
		if strings.HasPrefix(m, "Event: ParkedCall\r\n") {
			split = i + 1
			break
		}
	}
	srv := &amiServer{serve: func(n int, c *amiConn) {
		part := msgs[:split]
		if n > 1 {
			part = msgs[split:]
		}
		for _, m := range part {
			c.send(m)
		}
		if n > 1 {
			<-c.gone
		}
		// Connection 1 ends here: the server closes it.
	}}
	addr := startServer(t, srv)
	r := newRecorder()
	logs := &logtest.Recorder{}
	opts := fastOptions(r)
	opts.Mapper = pbxevents.NewSlotMapper(testSlotMap)
	opts.Logger = slog.New(logs)
	runClient(t, testConfig(addr, testSecret), opts)

	checkEvents(t, r.wait(t, 6), fixtureEvents())
	if n := srv.logins.Load(); n != 2 {
		t.Errorf("%d logins, want 2", n)
	}
	if n := logs.Count(slog.LevelWarn, "ami connection lost", nil); n != 1 {
		t.Errorf("%d 'connection lost' warnings, want 1", n)
	}
	if n := logs.Count(slog.LevelInfo, "ami logged in", nil); n != 2 {
		t.Errorf("%d 'logged in' records, want 2", n)
	}
}

// TestClientPingTimeout: a manager that stops answering (a dead link that
// TCP has not noticed) is dropped after PingTimeout and reconnected.
func TestClientPingTimeout(t *testing.T) {
	srv := &amiServer{
		serve:       func(n int, c *amiConn) { <-c.gone },
		ignorePings: func(n int) bool { return n == 1 },
	}
	addr := startServer(t, srv)
	logs := &logtest.Recorder{}
	opts := fastOptions(newRecorder())
	opts.PingTimeout = 100 * time.Millisecond
	opts.Logger = slog.New(logs)
	runClient(t, testConfig(addr, testSecret), opts)

	runtest.WaitFor(t, "a second login", 10*time.Second, func() bool { return srv.logins.Load() >= 2 })
	runtest.WaitFor(t, "pongs on the second connection", 10*time.Second, func() bool { return srv.pongs.Load() >= 3 })
	if n := srv.logins.Load(); n != 2 {
		t.Errorf("%d logins, want 2: the answered connection must stay up", n)
	}
	if n := logs.Count(slog.LevelWarn, "ami connection lost", nil); n != 1 {
		t.Errorf("%d 'connection lost' warnings, want 1", n)
	}
}

// TestClientLoginRefused: a wrong secret is answered "Authentication
// failed"; the client keeps retrying with backoff and says so once.
func TestClientLoginRefused(t *testing.T) {
	srv := &amiServer{}
	addr := startServer(t, srv)
	logs := &logtest.Recorder{}
	r := newRecorder()
	opts := fastOptions(r)
	opts.Logger = slog.New(logs)
	runClient(t, testConfig(addr, "wrong"), opts)

	// The server counts a refusal before the client has read and logged
	// it: wait for both.
	runtest.WaitFor(t, "four refused logins, logged", 10*time.Second, func() bool {
		return srv.refusals.Load() >= 4 && logs.Count(slog.LevelDebug, "ami login refused", nil) >= 4
	})
	if n := logs.Count(slog.LevelError, "ami login refused", nil); n != 1 {
		t.Errorf("%d 'login refused' errors after %d refusals, want exactly 1", n, srv.refusals.Load())
	}
	if n := logs.Count(slog.LevelDebug, "ami login refused", nil); n < 4 {
		t.Errorf("%d 'login refused' records in all, want one per attempt", n)
	}
	if srv.logins.Load() != 0 || len(r.c) != 0 {
		t.Error("logged in or delivered events with a wrong secret")
	}
}

// TestClientUnreachable: nothing listens; the client retries quietly and
// connects as soon as the manager appears.
func TestClientUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // connection refused from now on

	logs := &logtest.Recorder{}
	r := newRecorder()
	opts := fastOptions(r)
	opts.Logger = slog.New(logs)
	runClient(t, testConfig(addr, testSecret), opts)
	runtest.WaitFor(t, "retries", 10*time.Second, func() bool { return logs.Count(slog.LevelDebug, "ami manager unreachable", nil) >= 4 })
	if n := logs.Count(slog.LevelWarn, "ami manager unreachable", nil); n != 1 {
		t.Errorf("%d 'unreachable' warnings, want 1", n)
	}

	// The manager comes up on the same port.
	ln2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("relisten on %s: %v", addr, err)
	}
	srv := &amiServer{serve: func(n int, c *amiConn) {
		c.send("Event: ParkedCall\r\nParkingSpace: 704\r\nParkinglot: default\r\n\r\n")
		<-c.gone
	}}
	startServerOn(t, srv, ln2)
	got := r.wait(t, 1)
	if got[0].Kind != pbxevents.Parked || got[0].Slot != "704" {
		t.Errorf("got %+v", got[0])
	}
}
