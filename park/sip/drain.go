package parksip

import "github.com/parkpage/parkpage/park"

// Drain closes the park for new calls (the park extension and slots answer
// 480 Temporarily Unavailable) and rings every parked call back to its
// parker as its timeout would; pickups keep working. See park.Server.Drain.
func (s *Server) Drain() park.DrainStatus { return s.park.Drain() }

// CancelDrain takes parks again.
func (s *Server) CancelDrain() park.DrainStatus { return s.park.CancelDrain() }

// Draining is the drain's state and the calls left in the lot.
func (s *Server) Draining() park.DrainStatus { return s.park.Draining() }
