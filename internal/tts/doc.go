// Package tts turns text into speech: 16 kHz mono int16 PCM, parkpage's
// internal audio format. It links CMU flite (Debian flite1-dev) through cgo,
// so synthesis happens in-process with no network, no helper program and
// nothing downloaded at run time.
//
// # Why flite
//
// The issue asks for a synthesiser linked into the binary, with no network
// and nothing downloaded at run time, under a licence that allows shipping
// it inside an appliance. flite meets all three and is small: C with no
// dependencies beyond libm, packaged in Debian (flite1-dev, also for arm64),
// links statically (see below), 4-6 MB per voice, and synthesises a
// sentence in milliseconds on one core of the appliance class, so a cold
// announcement still starts quickly. Its voices are intelligible rather than
// natural, which suits short fixed phrases ("Sales call on seven oh four")
// over ceiling speakers.
//
// Rejected: eSpeak NG (GPL-3.0-or-later: linking it would put the whole
// binary under the GPL, and it sounds more robotic); Piper (MIT code, but
// it needs ONNX Runtime and a 20-60 MB voice model per voice, and its
// phonemiser is eSpeak NG, GPL again); SVOX Pico (Apache-2.0 code, but
// Debian ships it in non-free for its language data, and it has one voice
// per language); Festival (a Scheme interpreter and large voice data, slow
// to start); any cloud service (network). A later engine can implement
// announce.Speaker without changing callers.
//
// # What it owns
//
// Voice registration and synthesis only. It does not phrase text (digits,
// templates), set levels or add chimes: that is package announce. Text is
// spoken the way flite reads it, so "704" comes out as "seven hundred four";
// callers that want digits read one by one must spell them out first.
//
// # Voices
//
// Voices lists the voices linked in, all of which flite 2.2 ships at 16 kHz:
// slt (US female, the default), kal16 (US male diphone, the fastest), awb
// (Scottish male) and rms (US male). A voice whose output is not 16 kHz is
// resampled (internal/codec/resample, windowed sinc), so the contract holds for any
// voice added later, such as the 8 kHz kal. Synthesis is deterministic: the
// same text and voice give the same samples (see pp_reseed in flite.go).
// Each voice adds 4-6 MB of static data to the binary.
//
// # Concurrency
//
// flite keeps global state and its voice registration is documented as not
// thread-safe, so the library is initialised once (sync.Once) and every
// voice registration and synthesis runs under one process-wide lock.
// Engines are safe for concurrent use; concurrent calls queue. A call
// waiting for the lock gives up when its context ends, but a synthesis
// already running completes (a typical announcement takes 3-40 ms).
//
// # Building and linking
//
// The cgo build needs the flite headers and libraries (flite1-dev). With
// CGO_ENABLED=0 the package still compiles, and New reports ErrUnavailable.
//
// flite has no pkg-config file; the flags are written out in flite.go.
// A fully static binary (the appliance image: -ldflags '-extldflags -static')
// pulls flite.o out of libflite.a, which references the audio-playback code
// (flite_text_to_speech and friends), which pulls au_alsa.o, which needs
// libasound symbols. Debian ships no libasound.a, so that link fails with
// undefined snd_pcm_* references. Build with the tag static_flite to compile
// alsa_static.c, which defines those snd_* functions as failing no-ops;
// parkpage only synthesises into memory buffers and never calls flite's
// playback path, so they are never reached. Dynamic builds must not use the
// tag (the real libasound would clash with the definitions). Verified on
// Debian 12 amd64: without the tag the static link fails with undefined
// snd_pcm_* references; with it, TestStaticLink builds and runs a static
// probe. The linker's warning about gethostbyname in cst_socket.o is
// harmless: flite's URL and socket input paths are never called.
//
// # Licence
//
// The flite core and the CMU voices are under CMU's BSD-style licence:
// use, modification and redistribution permitted, provided the copyright
// notice is kept and modifications are marked. A few linked files carry
// similar permissive notices (Cepstral, Henry Spencer's regex, Markus
// Mummert's rate converter). All are listed in
// /usr/share/doc/libflite1/copyright. The GPL-2 there covers only autotools
// scripts that are never linked in. Shipping flite inside the parkpage
// binary is therefore fine, provided those notices go into the image's
// licence file.
package tts
