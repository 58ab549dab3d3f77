/*
 * -soundhw, the sound card option of QEMU before 7.1
 *
 * Copyright (c) 2026 qemu-vfio-audio developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef HW_AUDIO_SOUNDHW_LEGACY_H
#define HW_AUDIO_SOUNDHW_LEGACY_H

/* Handle "-soundhw @optarg"; exits on "help" and on an unknown model. */
void soundhw_legacy_option(const char *optarg);

/*
 * Whether -soundhw added a card.  It has no audiodev, so it needs a default
 * one: QEMU 10.0 makes none with -nodefaults, which 7.2 never cared about.
 */
bool soundhw_legacy_used(void);

#endif
