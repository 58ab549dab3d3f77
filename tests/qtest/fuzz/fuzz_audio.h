/*
 * An audio backend whose answers the fuzz target chooses
 *
 * Copyright (c) 2026 qemu-vfio-audio developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef FUZZ_AUDIO_H
#define FUZZ_AUDIO_H

/* Playback: how many more bytes the backend takes, from now on. */
void fuzz_audio_set_room(uint32_t bytes);
/* Capture: how many more bytes it has to give. */
void fuzz_audio_set_avail(uint32_t bytes);
/* Whether it asks the devices to keep it full (as our pa does). */
void fuzz_audio_set_keep_full(bool on);

#endif
