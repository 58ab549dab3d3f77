/*
 * QTest: a frame counter as the test signal of the sound card qtests, and
 * the wav files their backend records it to
 *
 * Left counts 1..30000 and wraps, right counts down once per wrap, so a
 * lost, repeated or reordered frame shows wherever it is.
 *
 * Copyright (c) 2026 qemu-vfio-audio developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef QTEST_PCM_COUNTER_H
#define QTEST_PCM_COUNTER_H

/* @frames of 16-bit stereo, little endian, counting from @first. */
void pcm_counter_fill(int16_t *buf, uint32_t frames, uint32_t first);

/*
 * -audiodev options of a wav backend at @rate writing to a new temporary
 * file named after @test, whose path goes to *path.  Free both.
 */
char *pcm_counter_wav_backend(const char *test, int rate, char **path);

/* Remove the wav file at @path, if any, and free @path. */
void pcm_counter_wav_remove(char *path);

/*
 * The wav file at @path, leading silence skipped: *pcm points at its
 * first frame of sound and *frames says how many follow.  Free the
 * returned buffer.
 */
char *pcm_counter_wav(const char *path, const int16_t **pcm,
                      uint32_t *frames);

/* Frame @i of @pcm holds count @n; else says what it holds. */
bool pcm_counter_frame_is(const int16_t *pcm, uint32_t i, uint32_t n);

#endif
