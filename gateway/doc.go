// Package gateway is where pages meet zones: it schedules pages by priority
// over the zones they name and drives each zone's outputs and relays. It
// knows outputs only through the small interface of package
// gateway/output; the output kinds implement it in their own packages
// (multicast for Polycom and RTP, gateway/output/sipamp, gateway/output/lineout),
// and the wiring hands the gateway an output.Factory that makes them.
//
// It imports no output kind, and nothing below it imports it: the output
// kinds implement gateway/output, and its clients (announcer, livepage,
// phonepage) submit paging.Page values through a Pager interface of their
// own.
package gateway
