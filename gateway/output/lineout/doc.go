// Package lineout plays pages on an ALSA sound device: a USB audio adapter
// into an analog amplifier's line or telephone input, or a two-way radio's
// microphone input (usually with a relay keying the amplifier or the
// radio's push-to-talk, see package relays).
//
// There is no libasound on the appliance (no static library to link), so
// the package drives the kernel's PCM device (/dev/snd/pcmC*D*p) with its
// ioctls: HW_REFINE and HW_PARAMS (interleaved S16_LE, mono if the device
// offers it or else stereo, the configured rate), SW_PARAMS, PREPARE,
// WRITEI_FRAMES, DRAIN, and PREPARE again after an underrun. Device is the
// ioctl boundary: the kernel device implements it, and tests use a fake
// that records parameters and frames, since build machines have no sound
// cards.
//
// Output implements output.Output: it resamples the page's 16 kHz audio
// to the device rate (codec.Converter) and writes it through a Writer.
// It imports nothing of gateway but the gateway/output leaf; Factory is
// the output.Factory for config type lineout.
package lineout
