package pacer

import "errors"

// ErrClosed ends streams still playing when the Pacer stops, and any Play
// after that.
var ErrClosed = errors.New("pacer closed")
