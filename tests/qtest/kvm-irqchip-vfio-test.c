/*
 * QTest: the KVM irqchip mode a VM gets with and without vfio-pci
 *
 * Runs the real binary under KVM and reads the irqchip it actually
 * creates: KVM_CREATE_IRQCHIP in the kvm_vm_ioctl trace means the full
 * in-kernel irqchip; the "kernel-irqchip-mode" property of /machine and
 * the IOAPIC model tell the rest for VMs that keep running.  No vfio-pci
 * host device exists on test machines, so vfio-pci cases fail to realize
 * the device afterwards: the test checks that the irqchip was created,
 * and the decision logged, before that failure.
 *
 * Copyright (c) 2026 qemu-vfio-audio developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include <gio/gio.h>
#include "libqtest.h"
#include "qemu-vfio-audio/compat.h"
#include FORK_QJSON_H
#include FORK_QDICT_H
#include FORK_QSTRING_H

#define NO_HOST         "0000:ff:1f.7"
#define VFIO            "-device vfio-pci,host=" NO_HOST ",id=gpu "
#define VFIO_JSON       "-device '{\"driver\":\"vfio-pci\",\"host\":\"" \
                        NO_HOST "\"}' "
#define VFIO_NOHOTPLUG  "-device vfio-pci-nohotplug,host=" NO_HOST " "
#define INTREMAP        "-device intel-iommu,intremap=on "

#define KVM_CREATE_IRQCHIP_TRACE "kvm_vm_ioctl type 0xae60,"
#define VFIO_REALIZE_ERROR       "no such host device"
#define KVM_NO_USERSPACE_APIC    "KVM does not support userspace APIC"

/* Sent on QEMU's stdin; a VM that fails to start never reads it. */
#define QMP_SCRIPT \
    "{'execute': 'qmp_capabilities'}\n" \
    "{'execute': 'qom-get', 'arguments': " \
    "{'path': '/machine', 'property': 'kernel-irqchip-mode'}}\n" \
    "{'execute': 'qom-get', 'arguments': " \
    "{'path': '/machine/q35/ioapic', 'property': 'type'}}\n" \
    "{'execute': 'quit'}\n"

typedef struct Run {
    char *out;          /* QMP replies */
    char *err;          /* log lines and trace */
    bool exited_ok;
    char *mode;         /* kernel-irqchip-mode, if the VM started */
    char *ioapic;       /* its IOAPIC model, if the VM started */
} Run;

static char *qmp_script_path;

static void run_free(Run *r)
{
    g_free(r->out);
    g_free(r->err);
    g_free(r->mode);
    g_free(r->ioapic);
}

/* The string results of the two qom-get commands, in order. */
static void parse_replies(Run *r)
{
    g_auto(GStrv) lines = g_strsplit(r->out, "\n", -1);
    char **results[] = { &r->mode, &r->ioapic };
    int n = 0;
    int i;

    for (i = 0; lines[i] && n < ARRAY_SIZE(results); i++) {
        QObject *obj = lines[i][0] == '{' ?
            qobject_from_json(lines[i], NULL) : NULL;
        QDict *reply = qobject_to(QDict, obj);
        QString *ret = reply ? qobject_to(QString, qdict_get(reply, "return"))
                             : NULL;

        if (ret) {
            *results[n++] = g_strdup(qstring_get_str(ret));
        }
        qobject_unref(obj);
    }
}

static const char *qemu_binary(void)
{
    const char *bin = getenv("QTEST_QEMU_BINARY");

    g_assert_nonnull(bin);
    return bin;
}

static void run_qemu(Run *r, const char *args)
{
    g_autofree char *cmdline = g_strdup_printf(
        "%s -nodefaults -display none -S -qmp stdio "
        "-trace kvm_vm_ioctl %s", qemu_binary(), args);
    g_autoptr(GSubprocessLauncher) launcher = NULL;
    g_autoptr(GSubprocess) proc = NULL;
    g_autoptr(GError) error = NULL;
    g_auto(GStrv) argv = NULL;

    memset(r, 0, sizeof(*r));
    g_assert_true(g_shell_parse_argv(cmdline, NULL, &argv, NULL));
    launcher = g_subprocess_launcher_new(G_SUBPROCESS_FLAGS_STDOUT_PIPE |
                                         G_SUBPROCESS_FLAGS_STDERR_PIPE);
    g_subprocess_launcher_set_stdin_file_path(launcher, qmp_script_path);
    proc = g_subprocess_launcher_spawnv(launcher,
                                        (const char * const *)argv, &error);
    g_assert_no_error(error);
    g_subprocess_communicate_utf8(proc, NULL, NULL, &r->out, &r->err, &error);
    g_assert_no_error(error);
    r->exited_ok = g_subprocess_get_if_exited(proc) &&
                   g_subprocess_get_exit_status(proc) == 0;
    parse_replies(r);
    if (g_test_verbose()) {
        g_test_message("%s", cmdline);
        g_test_message("stdout: %s", r->out);
        g_test_message("stderr: %s", r->err);
    }
}

static bool created_in_kernel(Run *r)
{
    return strstr(r->err, KVM_CREATE_IRQCHIP_TRACE) != NULL;
}

/* A VM without vfio-pci that starts, and the irqchip it reports. */
static void assert_running_vm(Run *r, const char *mode)
{
    g_assert_true(r->exited_ok);
    g_assert_cmpstr(r->mode, ==, mode);
    g_assert_cmpstr(r->ioapic, ==,
                    !strcmp(mode, "on") ? "kvm-ioapic" : "ioapic");
    g_assert_cmpint(created_in_kernel(r), ==, !strcmp(mode, "on"));
}

/*
 * A VM with vfio-pci, which cannot start here: the irqchip was created
 * (or not) and @line logged, both before the device failed to realize.
 */
static void assert_vfio_vm(Run *r, bool in_kernel, const char *line)
{
    const char *failure = strstr(r->err, VFIO_REALIZE_ERROR);

    g_assert_false(r->exited_ok);
    g_assert_nonnull(failure);
    g_assert_cmpint(created_in_kernel(r), ==, in_kernel);
    if (in_kernel) {
        g_assert_true(strstr(r->err, KVM_CREATE_IRQCHIP_TRACE) < failure);
    }
    if (line) {
        const char *at = strstr(r->err, line);

        g_assert_nonnull(at);
        g_assert_true(at < failure);
    }
}

static void assert_no_policy_lines(Run *r)
{
    g_assert_null(strstr(r->err, "kernel-irqchip: "));
    g_assert_null(strstr(r->err, "warning: kernel-irqchip="));
    g_assert_null(strstr(r->err, "info: kernel-irqchip="));
}

/* --- what the machine types do on their own ------------------------------ */

/* A VM without vfio-pci: @mode as the machine type says, nothing said. */
static void check_without_vfio(const char *args, const char *mode)
{
    Run r;

    run_qemu(&r, args);
    assert_running_vm(&r, mode);
    assert_no_policy_lines(&r);
    run_free(&r);
}

static void test_q35_40_default(void)
{
    check_without_vfio("-M pc-q35-4.0 -accel kvm", "split");
}

static void test_q35_default(void)
{
    check_without_vfio("-M q35 -accel kvm", "on");
}

static void test_q35_40_split_without_vfio(void)
{
    check_without_vfio("-M pc-q35-4.0,kernel_irqchip=split -accel kvm",
                       "split");
}

/* --- vfio-pci present, user did not choose -------------------------------- */

#define CHOSE_ON "info: kernel-irqchip: using 'on' (full in-kernel irqchip) " \
                 "instead of machine type pc-q35-4.0's default 'split'"

static void test_vfio(const char *device, const char *shown_as)
{
    g_autofree char *args = g_strdup_printf("-M pc-q35-4.0 -accel kvm %s",
                                            device);
    Run r;

    run_qemu(&r, args);
    assert_vfio_vm(&r, true, CHOSE_ON);
    g_assert_nonnull(strstr(r.err, shown_as));
    run_free(&r);
}

static void test_vfio_keyval(void)
{
    test_vfio(VFIO, "vfio-pci (id=gpu, host=" NO_HOST ") is present");
}

static void test_vfio_json(void)
{
    test_vfio(VFIO_JSON, "vfio-pci (host=" NO_HOST ") is present");
}

static void test_vfio_nohotplug(void)
{
    test_vfio(VFIO_NOHOTPLUG,
              "vfio-pci-nohotplug (host=" NO_HOST ") is present");
}

static void test_vfio_readconfig(void)
{
    g_autofree char *path = NULL;
    g_autofree char *args = NULL;
    int fd = g_file_open_tmp("kvm-irqchip-XXXXXX.cfg", &path, NULL);
    const char *cfg = "[device \"gpu\"]\n"
                      "  driver = \"vfio-pci\"\n"
                      "  host = \"" NO_HOST "\"\n";

    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(write(fd, cfg, strlen(cfg)), ==, strlen(cfg));
    close(fd);
    args = g_strdup_printf("-readconfig %s", path);
    test_vfio(args, "vfio-pci (id=gpu, host=" NO_HOST ") is present");
    unlink(path);
}

static void test_vfio_q35(void)
{
    Run r;

    /* Already in-kernel by default: nothing to change, nothing to say. */
    run_qemu(&r, "-M q35 -accel kvm " VFIO);
    assert_vfio_vm(&r, true, NULL);
    assert_no_policy_lines(&r);
    run_free(&r);
}

static void test_vfio_intremap(void)
{
    Run r;

    run_qemu(&r, "-M pc-q35-4.0 -accel kvm " INTREMAP VFIO);
    assert_vfio_vm(&r, false, "info: kernel-irqchip: keeping machine type "
                   "pc-q35-4.0's default 'split' although vfio-pci (id=gpu, "
                   "host=" NO_HOST ") is present: intel-iommu with "
                   "intremap=on needs it");
    run_free(&r);
}

/* --- vfio-pci present, the user chose ------------------------------------- */

static void test_vfio_explicit_on(void)
{
    Run r;

    /* The 2019 command line, unchanged. */
    run_qemu(&r, "-machine pc-q35-4.0,kernel_irqchip=on,accel=kvm " VFIO);
    assert_vfio_vm(&r, true, NULL);
    assert_no_policy_lines(&r);
    run_free(&r);
}

static void test_vfio_explicit_split(void)
{
    Run r;

    run_qemu(&r, "-M pc-q35-4.0,kernel_irqchip=split -accel kvm " VFIO);
    assert_vfio_vm(&r, false, "warning: kernel-irqchip=split with vfio-pci "
                   "(id=gpu, host=" NO_HOST "): its INTx interrupts take the "
                   "slow userspace path");
    run_free(&r);
}

static void test_vfio_explicit_off(void)
{
    Run r;

    /* -accel's property wins over -machine's legacy option. */
    run_qemu(&r, "-M q35,kernel_irqchip=on -accel kvm,kernel-irqchip=off "
             VFIO);
    if (strstr(r.err, KVM_NO_USERSPACE_APIC)) {
        /*
         * QEMU 10.0 stops at kvm_init() on a host whose KVM lacks the
         * userspace APIC (this machine's kvm_pvm): after the policy
         * spoke, before any device is realized.
         */
        g_assert_false(r.exited_ok);
        g_assert_false(created_in_kernel(&r));
        g_assert_nonnull(strstr(r.err,
                                "warning: kernel-irqchip=off with vfio-pci"));
    } else {
        assert_vfio_vm(&r, false,
                       "warning: kernel-irqchip=off with vfio-pci");
    }
    run_free(&r);
}

static void test_vfio_explicit_split_intremap(void)
{
    Run r;

    run_qemu(&r, "-M q35,kernel_irqchip=split -accel kvm " INTREMAP VFIO);
    assert_vfio_vm(&r, false, "info: kernel-irqchip=split as chosen, which "
                   "intel-iommu with intremap=on requires");
    g_assert_null(strstr(r.err, "warning: kernel-irqchip="));
    run_free(&r);
}

int main(int argc, char **argv)
{
    int fd, ret;

    g_test_init(&argc, &argv, NULL);

    if (access("/dev/kvm", R_OK | W_OK)) {
        g_test_skip("/dev/kvm is not usable here (KVM needed to create "
                    "an irqchip)");
        return g_test_run();
    }

    fd = g_file_open_tmp("kvm-irqchip-qmp-XXXXXX", &qmp_script_path, NULL);
    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(write(fd, QMP_SCRIPT, strlen(QMP_SCRIPT)), ==,
                    strlen(QMP_SCRIPT));
    close(fd);

    qtest_add_func("/kvm-irqchip/pc-q35-4.0/default", test_q35_40_default);
    qtest_add_func("/kvm-irqchip/q35/default", test_q35_default);
    qtest_add_func("/kvm-irqchip/pc-q35-4.0/split-without-vfio",
                   test_q35_40_split_without_vfio);
    qtest_add_func("/kvm-irqchip/vfio/keyval", test_vfio_keyval);
    qtest_add_func("/kvm-irqchip/vfio/json", test_vfio_json);
    qtest_add_func("/kvm-irqchip/vfio/readconfig", test_vfio_readconfig);
    qtest_add_func("/kvm-irqchip/vfio/nohotplug", test_vfio_nohotplug);
    qtest_add_func("/kvm-irqchip/vfio/q35", test_vfio_q35);
    qtest_add_func("/kvm-irqchip/vfio/intremap", test_vfio_intremap);
    qtest_add_func("/kvm-irqchip/vfio/explicit-on", test_vfio_explicit_on);
    qtest_add_func("/kvm-irqchip/vfio/explicit-split",
                   test_vfio_explicit_split);
    qtest_add_func("/kvm-irqchip/vfio/explicit-off", test_vfio_explicit_off);
    qtest_add_func("/kvm-irqchip/vfio/explicit-split-intremap",
                   test_vfio_explicit_split_intremap);

    ret = g_test_run();
    unlink(qmp_script_path);
    g_free(qmp_script_path);
    return ret;
}
