/*
 * vfio-pci devices on the command line, before any device exists
 *
 * The KVM irqchip mode is fixed when the accelerator starts, long before
 * -device options are realized; whoever must know about vfio-pci by then
 * can only look at the options.  Subclasses (vfio-pci-nohotplug) count.
 *
 * Copyright (c) 2026 qemu-vfio-audio developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qom/object.h"
#include "hw/vfio/vfio-cmdline.h"

#define VFIO_PCI_TYPE "vfio-pci"

const char *cmdline_device_driver_of(const QDict *props, const char *type)
{
    const char *driver = qdict_get_try_str(props, "driver");
    ObjectClass *oc = driver ? object_class_by_name(driver) : NULL;

    return oc && object_class_dynamic_cast(oc, type) ? driver : NULL;
}

char *vfio_pci_cmdline_describe(const QDict *props)
{
    const char *driver = cmdline_device_driver_of(props, VFIO_PCI_TYPE);
    const char *keys[] = { "id", "host", "sysfsdev" };
    g_autoptr(GString) desc = NULL;
    const char *sep = " (";
    int i;

    if (!driver) {
        return NULL;
    }

    desc = g_string_new(driver);
    for (i = 0; i < ARRAY_SIZE(keys); i++) {
        const char *val = qdict_get_try_str(props, keys[i]);

        if (val) {
            g_string_append_printf(desc, "%s%s=%s", sep, keys[i], val);
            sep = ", ";
        }
    }
    if (*sep == ',') {
        g_string_append_c(desc, ')');
    }
    return g_string_free(g_steal_pointer(&desc), false);
}
