package ami

import "errors"

// Errors.
var (
	// ErrNotAMI: the peer's greeting is not an Asterisk manager banner.
	ErrNotAMI = errors.New("not an asterisk manager interface")
	// ErrMessageTooLarge: a message exceeded Reader.MaxMessageSize and was
	// skipped.
	ErrMessageTooLarge = errors.New("ami message too large")
	// ErrBadField: an action field cannot be written (line break, colon in a
	// key).
	ErrBadField = errors.New("bad ami field")
	// ErrAuth: the manager refused the login.
	ErrAuth = errors.New("ami authentication failed")
	// ErrPingTimeout: the manager did not answer a keep-alive Ping in time.
	ErrPingTimeout = errors.New("ami ping timed out")
)
