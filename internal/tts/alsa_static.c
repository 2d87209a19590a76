//go:build cgo && static_flite

// Failing no-op definitions of the libasound functions that libflite.a's
// au_alsa.o references. A fully static link (the appliance image) pulls
// au_alsa.o in through flite.o's playback functions, and Debian ships no
// libasound.a. parkpage only synthesises into memory (flite_text_to_wave)
// and never reaches flite's audio output; if anything ever did, every call
// fails with -ENODEV, as if the machine had no sound card. Only built with
// the static_flite tag: a dynamic link against the real libasound would
// clash with these.
//
// No ALSA headers exist on the build machine, so the opaque handle types
// are void pointers; the symbols only need to link.

#include <errno.h>
#include <stddef.h>

int snd_pcm_open(void **pcm, const char *name, int stream, int mode) {
	if (pcm) *pcm = NULL;
	return -ENODEV;
}
int snd_pcm_close(void *pcm) { return 0; }
int snd_pcm_drain(void *pcm) { return -ENODEV; }
int snd_pcm_drop(void *pcm) { return -ENODEV; }
int snd_pcm_prepare(void *pcm) { return -ENODEV; }
int snd_pcm_resume(void *pcm) { return -ENODEV; }
int snd_pcm_wait(void *pcm, int timeout) { return -ENODEV; }
int snd_pcm_state(void *pcm) { return 0; /* SND_PCM_STATE_OPEN */ }
long snd_pcm_writei(void *pcm, const void *buf, unsigned long frames) { return -ENODEV; }
int snd_pcm_set_params(void *pcm, int format, int access, unsigned int channels,
		unsigned int rate, int soft_resample, unsigned int latency) { return -ENODEV; }
size_t snd_pcm_hw_params_sizeof(void) { return 64; }
int snd_pcm_hw_params(void *pcm, void *params) { return -ENODEV; }
int snd_pcm_hw_params_any(void *pcm, void *params) { return -ENODEV; }
int snd_pcm_hw_params_set_access(void *pcm, void *params, int access) { return -ENODEV; }
int snd_pcm_hw_params_set_channels(void *pcm, void *params, unsigned int val) { return -ENODEV; }
int snd_pcm_hw_params_set_format(void *pcm, void *params, int format) { return -ENODEV; }
int snd_pcm_hw_params_set_rate(void *pcm, void *params, unsigned int val, int dir) { return -ENODEV; }
int snd_config_update_free_global(void) { return 0; }
const char *snd_strerror(int errnum) { return "no sound device (libasound not linked)"; }
