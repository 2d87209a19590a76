// Package blfwatch watches an existing PBX's park slots the way a phone's
// BLF keys do: for each slot it sends a SUBSCRIBE for the dialog event
// package (RFC 6665, RFC 4235: "Event: dialog", "Accept:
// application/dialog-info+xml"), answers the PBX's NOTIFYs, and turns a slot
// going from idle to busy into a pbxevents.Parked event and back into
// pbxevents.Retrieved.
//
// What BLF cannot say: a slot's dialog state only says whether a call is
// there. When it goes idle the call may have been picked up, the caller may
// have hung up, or the park may have timed out and rung back; the watcher
// reports all three as Retrieved with an empty Retriever (read it as "the
// park ended"). Use the AMI source where the PBX offers it: it says which.
// Who parked the call is never known; the caller is known only if the PBX
// puts a remote identity in its NOTIFY (Asterisk does not).
//
// Subscriptions: each is refreshed (an in-dialog re-SUBSCRIBE) halfway
// through its lifetime, or a minute before it ends for long ones. Digest
// challenges (401/407) are answered with the configured user. A
// subscription the PBX ends (Subscription-State: terminated), forgets (481
// to a refresh), does not answer, or that gets no NOTIFY after an accepted
// SUBSCRIBE is replaced by a new one (a new Call-ID) after a jittered,
// growing delay: this is how a PBX restart is survived. The slot's state
// outlives its subscriptions, so the full-state NOTIFY of the new
// subscription resynchronises it without a second Parked event for a call
// that was already there. While no subscription works the slot keeps its
// last known state.
//
// The watcher is a user agent client of parkpage's one SIP stack
// (internal/sipstack): its SUBSCRIBEs leave from the SIP port through
// Options.SIP (a Requester), and the stack hands it the NOTIFYs that arrive
// there (Watcher.HandleNotify is a sipstack.NotifyHandler). So there is one
// SIP port, one transport layer and one place for logging, and the PBX
// reaches the watcher where it already reaches parkpage. Digest challenges
// are answered by the stack with the configured user.
// external.blf.listen, which once named a socket of the watcher's own, is
// no longer used.
//
// It must not import the gateway or the park server.
package blfwatch
