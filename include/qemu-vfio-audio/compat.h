/*
 * qemu-vfio-audio: what differs between the upstream bases (7.2 and 10.0)
 * for the fork's own files.  Every difference our sources see is here,
 * so that they read the same on both bases.
 *
 * Copyright (c) 2026 qemu-vfio-audio developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef QEMU_VFIO_AUDIO_COMPAT_H
#define QEMU_VFIO_AUDIO_COMPAT_H

#include "qapi/error.h"

/* config-host.h (through qemu/osdep.h) tells the base. */
#if QEMU_VERSION_MAJOR >= 10
#define FORK_BASE_10 1
#endif

/* 9.2 moved sysemu/ to system/ and qapi/qmp/ to qobject/. */
#ifdef FORK_BASE_10
#define FORK_KVM_H "system/kvm.h"
#define FORK_QDICT_H "qobject/qdict.h"
#define FORK_QJSON_H "qobject/qjson.h"
#define FORK_QSTRING_H "qobject/qstring.h"
#define FORK_RUNSTATE_H "system/runstate.h"
#else
#define FORK_KVM_H "sysemu/kvm.h"
#define FORK_QDICT_H "qapi/qmp/qdict.h"
#define FORK_QJSON_H "qapi/qmp/qjson.h"
#define FORK_QSTRING_H "qapi/qmp/qstring.h"
#define FORK_RUNSTATE_H "sysemu/runstate.h"
#endif

/* 8.2 renamed the big QEMU lock's calls; the trylock is our glue's. */
#ifdef FORK_BASE_10
#define fork_bql_locked() bql_locked()
#define fork_bql_trylock() bql_trylock()
#define fork_bql_unlock() bql_unlock()
#else
#define fork_bql_locked() qemu_mutex_iothread_locked()
#define fork_bql_trylock() qemu_mutex_trylock_iothread()
#define fork_bql_unlock() qemu_mutex_unlock_iothread()
#endif

/*
 * An audio driver's init takes an Error ** since 8.2, and can_be_default
 * went with the legacy QEMU_AUDIO_* code.  Our drivers write
 * fn(Audiodev *, Error **); on 7.2 FORK_AUDIO_DRIVER_INIT_DEFINE(fn) wraps
 * it to report the error, as 7.2's callers expect of init.
 */
#ifdef FORK_BASE_10
#define FORK_AUDIO_DRIVER_INIT_DEFINE(fn)
#define FORK_AUDIO_DRIVER_INIT(fn) .init = fn
#else
#define FORK_AUDIO_DRIVER_INIT_DEFINE(fn)                               \
    static void *fn##_reported(Audiodev *dev)                           \
    {                                                                   \
        Error *err = NULL;                                              \
        void *state = fn(dev, &err);                                    \
                                                                        \
        if (!state) {                                                   \
            error_report_err(err);                                      \
        }                                                               \
        return state;                                                   \
    }
#define FORK_AUDIO_DRIVER_INIT(fn) .init = fn##_reported, .can_be_default = 1
#endif

#endif
