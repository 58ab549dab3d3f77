/*
 * Choosing the KVM irqchip mode for VMs with vfio-pci devices
 *
 * pc-q35-4.0 defaults to kernel-irqchip=split, where vfio-pci INTx goes
 * through userspace resampling; NVIDIA and Windows guests of that era did
 * not work until kernel-irqchip=on was added by hand (upstream fixed only
 * the newer machine types, in 4.0.1/4.1).  Users pin old machine types for
 * years, so when vfio-pci is on the command line and the user did not
 * choose, use the full in-kernel irqchip, unless a device needs split
 * (x86 IOMMU interrupt remapping).  An explicit choice always wins; when it
 * hurts vfio-pci, say so.
 *
 * Copyright (c) 2026 qemu-vfio-audio developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/error-report.h"
#include "qom/object.h"
#include "hw/boards.h"
#include "qemu-vfio-audio/compat.h"
#include FORK_KVM_H
#include "hw/vfio/vfio-cmdline.h"
#include "hw/i386/kvm-irqchip-policy.h"

/* Interrupt remapping of intel-iommu and amd-iommu only works with split */
#define X86_IOMMU_TYPE "x86-iommu"

/* The first of each kind on the command line, for the log line. */
static char *vfio_device;
static char *split_device;

static char *split_needed_by(const QDict *props)
{
    const char *driver = cmdline_device_driver_of(props, X86_IOMMU_TYPE);
    const char *keys[] = { "intremap", "eim" };
    int i;

    for (i = 0; driver && i < ARRAY_SIZE(keys); i++) {
        const char *val = qdict_get_try_str(props, keys[i]);

        if (val && !strcmp(val, "on")) {
            return g_strdup_printf("%s with %s=on", driver, keys[i]);
        }
    }
    return NULL;
}

void kvm_irqchip_policy_note_device(const QDict *props)
{
    if (!vfio_device) {
        vfio_device = vfio_pci_cmdline_describe(props);
    }
    if (!split_device) {
        split_device = split_needed_by(props);
    }
}

int kvm_irqchip_policy_note_opts(void *opaque, QemuOpts *opts, Error **errp)
{
    g_autoptr(QDict) props = qemu_opts_to_qdict(opts, NULL);

    kvm_irqchip_policy_note_device(props);
    return 0;
}

static char *machine_get_kernel_irqchip_mode(Object *obj, Error **errp)
{
    if (!kvm_enabled() || !kvm_irqchip_in_kernel()) {
        return g_strdup("off");
    }
    return g_strdup(kvm_irqchip_is_split() ? "split" : "on");
}

static OnOffAuto choose(MachineState *ms, bool machine_split)
{
    const char *type = MACHINE_GET_CLASS(ms)->name;

    if (!machine_split || !vfio_device) {
        return machine_split ? ON_OFF_AUTO_ON : ON_OFF_AUTO_OFF;
    }
    if (split_device) {
        info_report("kernel-irqchip: keeping machine type %s's default "
                    "'split' although %s is present: %s needs it; vfio-pci "
                    "INTx interrupts will be resampled in userspace",
                    type, vfio_device, split_device);
        return ON_OFF_AUTO_ON;
    }
    info_report("kernel-irqchip: using 'on' (full in-kernel irqchip) instead "
                "of machine type %s's default 'split': %s is present and "
                "vfio-pci INTx interrupts need the in-kernel irqchip; set "
                "kernel-irqchip= to choose otherwise", type, vfio_device);
    return ON_OFF_AUTO_OFF;
}

static void check_explicit(OnOffAuto split, bool allowed)
{
    const char *mode = !allowed ? "off" : "split";

    if (!vfio_device || (allowed && split != ON_OFF_AUTO_ON)) {
        return;
    }
    if (split_device && allowed) {
        info_report("kernel-irqchip=split as chosen, which %s requires; %s "
                    "INTx interrupts will be resampled in userspace",
                    split_device, vfio_device);
        return;
    }
    warn_report("kernel-irqchip=%s with %s: its INTx interrupts take the "
                "slow userspace path, and NVIDIA or Windows guests may fail "
                "to use the device; kernel-irqchip=on avoids this%s", mode,
                vfio_device,
                split_device ? "" : " (no device here needs split or off)");
}

OnOffAuto kvm_irqchip_policy_resolve(MachineState *ms, OnOffAuto split,
                                     bool allowed, bool machine_split)
{
    if (split == ON_OFF_AUTO_AUTO) {
        split = choose(ms, machine_split);
    } else {
        check_explicit(split, allowed);
    }
    object_property_add_str(OBJECT(ms), "kernel-irqchip-mode",
                            machine_get_kernel_irqchip_mode, NULL);
    object_property_set_description(OBJECT(ms), "kernel-irqchip-mode",
        "The KVM irqchip in force: on (in-kernel), split or off");
    return split;
}
