// Package announce turns a park or page event into the audio a zone hears.
//
// It owns phrasing (slot numbers spoken digit by digit, phrase templates
// with {slot}, {label}, {caller}, {parker}, {zone}), chimes (built-in ones
// synthesised here, or WAV files), repeats, per-slot recorded overrides,
// level (gated-RMS loudness normalisation and a lookahead peak limiter),
// lead-in silence, encoding into 20 ms frames per codec, and a bounded LRU
// cache with one render per announcement however many ask at once.
//
// It uses internal/tts for speech and internal/codec for frames, and knows
// nothing of RTP, SIP, multicast or config files: callers pass a Config and
// a WAV loader, and send the frames. Service is the appliance's reloadable
// renderer and cache for config section announce (internal/config's type).
//
// Audio layout of an announcement, all at 16 kHz:
//
//	[lead-in silence][chime][chime gap][phrase]([repeat gap][phrase])…[tail silence]
//
// Chime and phrase are each normalised to Config.TargetDBFS (active level,
// see Loudness); the whole is limited to Config.CeilingDBFS and padded
// with silence to a whole number of 20 ms frames.
package announce
