/*
 * libpulse's main loop, run by QEMU's main loop
 *
 * Copyright (c) 2026 qemu-vfio-audio developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef AUDIO_PA_LOOP_H
#define AUDIO_PA_LOOP_H

#include <pulse/mainloop.h>

typedef struct PALoop PALoop;

PALoop *pa_loop_new(void);
void pa_loop_free(PALoop *l);
pa_mainloop_api *pa_loop_api(PALoop *l);

/*
 * Dispatch what libpulse has queued (a write, a reply), without looking at
 * the server's sockets; call after every libpulse call.  Costs nothing when
 * nothing is queued.
 */
void pa_loop_run(PALoop *l);

/* Also take in what the server sent. */
void pa_loop_pump(PALoop *l);

/*
 * While @paced, QEMU's main loop does not wake for what the server sends:
 * the caller pumps the loop on a timer of its own (the audio timer, whose
 * tick answers the server's requests anyway).
 */
void pa_loop_set_paced(PALoop *l, bool paced);

#endif
