/*
 * Choosing the KVM irqchip mode for VMs with vfio-pci devices
 *
 * Copyright (c) 2026 qemu-vfio-audio developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef HW_I386_KVM_IRQCHIP_POLICY_H
#define HW_I386_KVM_IRQCHIP_POLICY_H

#include "qapi/qapi-types-common.h"
#include "qemu-vfio-audio/compat.h"
#include FORK_QDICT_H
#include "qemu/option.h"

/*
 * Called by vl.c for every -device before the accelerator starts: JSON
 * (@props) or QemuOpts (-device key=val, -readconfig [device]).
 */
void kvm_irqchip_policy_note_device(const QDict *props);
int kvm_irqchip_policy_note_opts(void *opaque, QemuOpts *opts, Error **errp);

/*
 * Called by kvm_init() where upstream resolves kernel-irqchip=auto.
 * @split is KVMState's kernel_irqchip_split, still ON_OFF_AUTO_AUTO when
 * the user did not choose; @allowed is false for kernel-irqchip=off;
 * @machine_split is the machine type's default.  Returns ON for split,
 * OFF for the full in-kernel irqchip, logging the choice when vfio-pci
 * made it, and warning when an explicit choice slows vfio-pci INTx down.
 * Also adds the read-only "kernel-irqchip-mode" property to /machine.
 */
OnOffAuto kvm_irqchip_policy_resolve(MachineState *ms, OnOffAuto split,
                                     bool allowed, bool machine_split);

#endif
