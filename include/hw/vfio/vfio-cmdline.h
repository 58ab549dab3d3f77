/*
 * vfio-pci devices on the command line, before any device exists
 *
 * Copyright (c) 2026 qemu-vfio-audio developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef HW_VFIO_VFIO_CMDLINE_H
#define HW_VFIO_VFIO_CMDLINE_H

#include "qemu-vfio-audio/compat.h"
#include FORK_QDICT_H

/*
 * The driver named by @props (the options of one -device, in any syntax)
 * if it is @type or a subclass of it, else NULL.
 */
const char *cmdline_device_driver_of(const QDict *props, const char *type);

/*
 * If @props (the options of one -device, in any syntax) create vfio-pci
 * or one of its subclasses, return a description for log lines, such as
 * "vfio-pci (id=gpu, host=0000:01:00.0)"; otherwise NULL.  Free with
 * g_free().
 */
char *vfio_pci_cmdline_describe(const QDict *props);

#endif
