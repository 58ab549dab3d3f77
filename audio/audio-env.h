/*
 * QEMU_AUDIO_DRV and the other audio variables of QEMU before 8.2
 *
 * Copyright (c) 2026 qemu-vfio-audio developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef AUDIO_AUDIO_ENV_H
#define AUDIO_AUDIO_ENV_H

/*
 * With $QEMU_AUDIO_DRV set, define the default audiodev (the one of cards
 * without audiodev=) from it and the QEMU_AUDIO_* and QEMU_PA_* variables,
 * read as QEMU 7.2 read them, and return true.  A bad value sets @errp,
 * naming the variable, defines nothing, and returns true as well: the
 * variables were meant, so upstream's defaults must not take over.
 * Without $QEMU_AUDIO_DRV, do nothing and return false.
 */
bool audio_env_define_default(Error **errp);

#endif
