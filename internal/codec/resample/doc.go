// Package resample is parkpage's one sample-rate converter: a polyphase
// windowed-sinc Converter for any rational ratio (audio files, line-out
// devices, text-to-speech voices) and the half-band FIR that halves and
// doubles the rate between 16 kHz and G.711's 8 kHz. It is pure Go and
// imports nothing of parkpage's, so packages that must not link the
// codecs' C libraries (tts in a static build) can use it; package codec
// re-exports it for the codecs' users.
package resample
