// Package media is parkpage's RTP side of a SIP call: one UDP endpoint per
// call leg, SDP offer/answer (PCMU, PCMA, G.722, Opus and
// telephone-event/8000), paced sending of 20 ms frames, shared hold music,
// RFC 4733 DTMF, and a bridge that relays RTP between two legs.
//
// # Engine, legs and pacing
//
// An Engine owns the RTP port range and the hold music, and sends every
// leg's packets through the appliance's one sending loop (internal/pacer,
// shared with the multicast pages; an engine built without one makes its
// own). Each negotiated leg is a stream on the pacer's 20 ms frame grid:
// on each frame the pacer asks every leg for its next packet and sends
// them all from one real-time thread woken by an absolute CLOCK_MONOTONIC
// timerfd. One loop for all legs (rather than a goroutine and a Go timer
// per leg) is what keeps the packet gap near 20 ms with a thousand parked
// calls on two cores (see pacing.md in the project docs). Work per frame
// is kept to a 12-byte header per leg: audio is encoded before it is
// queued, and hold music is encoded once per codec per frame, by the
// first leg that needs it, and shared by every leg playing it.
//
// A Leg is created with Engine.NewLeg, negotiated with Offer/SetAnswer (we
// call) or Answer (we are called), and then plays music (PlayMusic), PCM or
// pre-encoded frames (Play, PlayEncoded, WritePCM) or DTMF (SendDTMF);
// received audio and digits are delivered to OnAudio and OnDTMF callbacks.
// A leg's SSRC, sequence number and timestamp belong to the leg, not to
// what it plays, so switching between prompt, music and bridge never
// restarts the stream: the sequence continues by one and the timestamp
// follows wall-clock time, with the marker bit set at each switch.
//
// # Why a bridge and not a re-INVITE
//
// A retrieved call is connected by relaying RTP between the two legs
// parkpage already holds (a B2BUA media bridge), not by re-INVITEing the
// two ends towards each other. A bridge needs nothing from the far ends
// beyond the INVITE/200/ACK/BYE every phone, PBX and trunk supports; the
// re-INVITE route depends on both ends accepting a media change, breaks
// on NAT, SRTP and codec mismatch, and some trunks refuse it. Staying in
// the media path also lets parkpage detect dead media, play the whisper
// to the answerer only, and transcode when the two legs negotiated
// different codecs. The cost, two UDP relays per connected call, is
// negligible for the handful of calls a park lot holds.
//
// When both legs use the same codec the bridge copies payloads unchanged
// and rewrites only SSRC, sequence number and timestamp so each receiver
// sees one continuous stream; otherwise it decodes to 16 kHz PCM and
// re-encodes. telephone-event packets are passed through with their
// payload type mapped, or dropped when the other leg did not negotiate
// telephone-event.
package media
