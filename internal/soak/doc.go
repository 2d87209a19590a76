// Package soak holds parkpage's churn soak: the real binary as a process,
// sipp callers, retrievers and a PBX phone as its peers, and thousands of
// randomized park / pickup / hang-up / timeout cycles in phases, with the
// appliance's invariants checked after each phase (no call lost, no slot
// held by nobody, no leaked RTP leg, goroutine or file descriptor, RSS
// bounded) and, when switched on, restarts (SIGTERM + start) and kill -9
// at random moments. The package has only tests: `go test ./internal/soak`
// runs the short version (in `make test`), `make soak` the long one.
package soak
