package blfwatch

import "errors"

// Errors.
var (
	// ErrGone: the PBX answered 481: it no longer knows the subscription
	// (it restarted, or the subscription expired).
	ErrGone = errors.New("subscription does not exist")
	// ErrTerminated: the PBX ended the subscription (Subscription-State:
	// terminated).
	ErrTerminated = errors.New("subscription terminated by the pbx")
	// ErrNoNotify: the PBX accepted a SUBSCRIBE but sent no NOTIFY in time.
	ErrNoNotify = errors.New("no notify after subscribe")
	// ErrNoCredentials: the PBX asked for digest auth and none is configured.
	ErrNoCredentials = errors.New("challenged, but no username and password configured")
)
