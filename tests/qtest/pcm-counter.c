/*
 * QTest: a frame counter as the test signal of the sound card qtests, and
 * the wav files their backend records it to
 *
 * Copyright (c) 2026 qemu-vfio-audio developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/bswap.h"
#include "libqtest.h"
#include "pcm-counter.h"

#define WAV_HEADER  44

void pcm_counter_fill(int16_t *buf, uint32_t frames, uint32_t first)
{
    uint32_t i;

    for (i = 0; i < frames; i++) {
        uint32_t n = first + i;

        buf[2 * i] = cpu_to_le16(1 + n % 30000);
        buf[2 * i + 1] = cpu_to_le16(-1 - (int)(n / 30000 % 30000));
    }
}

char *pcm_counter_wav_backend(const char *test, int rate, char **path)
{
    g_autofree char *tmpl = g_strdup_printf("%s-XXXXXX.wav", test);
    int fd = g_file_open_tmp(tmpl, path, NULL);

    g_assert_cmpint(fd, >=, 0);
    close(fd);
    /* At the guest's rate: no resampling in the way. */
    return g_strdup_printf("wav,path=%s,out.frequency=%d", *path, rate);
}

void pcm_counter_wav_remove(char *path)
{
    if (path) {
        unlink(path);
        g_free(path);
    }
}

char *pcm_counter_wav(const char *path, const int16_t **pcm,
                      uint32_t *frames)
{
    char *wav = NULL;
    const int16_t *p;
    gsize len;
    uint32_t n;

    g_assert_true(g_file_get_contents(path, &wav, &len, NULL));
    g_assert_cmpuint(len, >=, WAV_HEADER);
    p = (const int16_t *)(wav + WAV_HEADER);
    n = (len - WAV_HEADER) / 4;
    while (n && p[0] == 0 && p[1] == 0) {
        p += 2;
        n--;
    }
    *pcm = p;
    *frames = n;
    return wav;
}

bool pcm_counter_frame_is(const int16_t *pcm, uint32_t i, uint32_t n)
{
    int16_t left = le16_to_cpu(pcm[2 * i]);
    int16_t right = le16_to_cpu(pcm[2 * i + 1]);

    if (left == 1 + n % 30000 && right == -1 - (int)(n / 30000 % 30000)) {
        return true;
    }
    g_test_message("frame %u is (%d, %d), not count %u", i, left, right, n);
    return false;
}
