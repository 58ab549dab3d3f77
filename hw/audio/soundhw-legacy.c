/*
 * -soundhw, the sound card option of QEMU before 7.1
 *
 * 2019-era VFIO scripts say "QEMU_AUDIO_DRV=pa ... -soundhw ac97".  The
 * card is added without an audiodev, so it takes the default audio driver
 * through the legacy environment variables, as it did then; one line says
 * what to write instead.
 *
 * Copyright (c) 2026 qemu-vfio-audio developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/error-report.h"
#include "qemu/help_option.h"
#include "hw/audio/soundhw.h"
#include "hw/audio/soundhw-legacy.h"

static bool soundhw_used;

bool soundhw_legacy_used(void)
{
    return soundhw_used;
}

void soundhw_legacy_option(const char *optarg)
{
    if (is_help_option(optarg)) {
        show_valid_soundhw();
        exit(0);
    }
    if (strchr(optarg, ',') || !strcmp(optarg, "all")) {
        error_report("-soundhw %s: name one sound card; more than one was "
                     "never supported with a single audio backend", optarg);
        exit(1);
    }
    /* An unknown card is an error of its own, without the note below. */
    select_soundhw(optarg, NULL);
    soundhw_used = true;
    warn_report("-soundhw %s is deprecated (removed upstream in QEMU 7.1); "
                "the card gets the default audio driver; write -audio "
                "pa,model=%s instead", optarg, optarg);
}
