/* spandsp_g726: the independent reference for package g726's tests.
 * Reads 16-bit native-endian 8 kHz PCM on stdin, encodes it with spandsp's
 * G.726 at 24 kbit/s in the packing given (left or right), writes the
 * encoded bytes to argv[2] and spandsp's own decoding of them to argv[3]. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <spandsp.h>

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s left|right encoded.out decoded.out < pcm\n", argv[0]);
        return 2;
    }
    int packing = strcmp(argv[1], "left") == 0 ? G726_PACKING_LEFT : G726_PACKING_RIGHT;
    static int16_t pcm[1 << 20], dec[1 << 20];
    static uint8_t enc[1 << 20];
    size_t n = fread(pcm, sizeof(int16_t), sizeof(pcm) / sizeof(pcm[0]), stdin);
    g726_state_t *e = g726_init(NULL, 24000, G726_ENCODING_LINEAR, packing);
    g726_state_t *d = g726_init(NULL, 24000, G726_ENCODING_LINEAR, packing);
    if (e == NULL || d == NULL)
        return 1;
    int nb = g726_encode(e, enc, pcm, (int) n);
    int ns = g726_decode(d, dec, enc, nb);
    FILE *fe = fopen(argv[2], "wb"), *fd = fopen(argv[3], "wb");
    if (fe == NULL || fd == NULL)
        return 1;
    fwrite(enc, 1, (size_t) nb, fe);
    fwrite(dec, sizeof(int16_t), (size_t) ns, fd);
    fclose(fe);
    fclose(fd);
    return 0;
}
