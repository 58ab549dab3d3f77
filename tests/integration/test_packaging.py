"""How users get the fork: make install/uninstall, the Debian drop-in
package, and libvirt driving the binary unchanged.

These change the machine (a package installed and removed, libvirtd's
qemu.conf edited and restored), so they run last and put everything back.
"""

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import time

from guest import build_bench_guest
from harness import (PulseDaemon, Skip, TOP, ensure_user, qemu_binary,
                     sound_in)

DESK1 = ("qva-desk1", 1701)
STOCK = "/usr/bin/qemu-system-x86_64"
QEMU_CONF = "/etc/libvirt/qemu.conf"


def make(*targets, **env):
    return subprocess.run(["make", "--no-print-directory", "-C", TOP]
                          + list(targets),
                          env=dict(os.environ, **env), capture_output=True,
                          text=True, check=True)


def boots(binary, machine):
    """The binary starts @machine's firmware with no -L: its BIOS and
    option ROMs were found (else it exits at once)."""
    p = subprocess.Popen([binary, "-M", machine, "-accel", "tcg",
                          "-display", "none", "-monitor", "stdio"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    out, err = p.communicate("info status\nquit\n", timeout=30)
    assert p.returncode == 0, err
    assert "VM status: running" in out, out + err


def test_make_install_and_uninstall():
    dest = tempfile.mkdtemp(prefix="qva-destdir-")
    try:
        make("install", PREFIX="/opt/qva", DESTDIR=dest)
        binary = os.path.join(dest, "opt/qva/bin/qemu-system-x86_64")
        manifest = os.path.join(dest,
                                "opt/qva/share/qemu-vfio-audio/installed")
        assert os.access(binary, os.X_OK)
        version = subprocess.run([binary, "--version"], capture_output=True,
                                 text=True).stdout
        assert "qemu-vfio-audio" in version, version
        for machine in ("q35", "pc"):
            boots(binary, machine)
        with open(manifest) as f:
            listed = [e for e in f.read().split() if not e.endswith("/")]
        assert "/opt/qva/bin/qemu-system-x86_64" in listed
        make("uninstall", PREFIX="/opt/qva", DESTDIR=dest)
        left = [os.path.join(d, f) for d, _, fs in os.walk(dest)
                for f in fs]
        assert not left, left
    finally:
        shutil.rmtree(dest)


def stock_version():
    return subprocess.run([STOCK, "--version"], capture_output=True,
                          text=True).stdout


def test_debian_dropin_package():
    """Installs over Debian's binary, and removing it brings it back."""
    if not os.path.exists(STOCK) or "qemu-vfio-audio" in stock_version():
        raise Skip(f"needs Debian's own {STOCK} (package qemu-system-x86)")
    out = make("deb").stdout.strip().splitlines()[-1]
    deb = os.path.join(TOP, out) if not os.path.isabs(out) else out
    lint = subprocess.run(["lintian", "--tag-display-limit", "0", deb],
                          capture_output=True, text=True)
    errors = [ln for ln in lint.stdout.splitlines() if ln.startswith("E:")]
    assert not errors, lint.stdout
    before = stock_version()
    try:
        subprocess.run(["dpkg", "-i", deb], check=True, capture_output=True)
        assert "qemu-vfio-audio" in stock_version(), stock_version()
        diverts = subprocess.run(["dpkg-divert", "--list", STOCK],
                                 capture_output=True, text=True).stdout
        assert "qemu-system-x86-vfio-audio" in diverts, diverts
        boots(STOCK, "q35")
    finally:
        subprocess.run(["dpkg", "-r", "qemu-system-x86-vfio-audio"],
                       check=True, capture_output=True)
    assert stock_version() == before
    assert not os.path.exists(STOCK + ".distrib")


# --- libvirt -----------------------------------------------------------------

DOMAIN = """<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>256</memory>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    {boot}
  </os>
  <features>
    <acpi/>
  </features>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <emulator>{emulator}</emulator>
    <sound model='ac97'><audio id='1'/></sound>
    <audio id='1' type='pulseaudio'/>
    <graphics type='vnc' autoport='yes' listen='127.0.0.1'/>
  </devices>
</domain>
"""


def virsh(*args, check=True):
    p = subprocess.run(["virsh", "-c", "qemu:///system"] + list(args),
                       capture_output=True, text=True)
    # libvirt's own words: the domain's log may not exist yet.
    assert not check or p.returncode == 0, \
        f"virsh {' '.join(args)}: {p.stderr.strip()}"
    return p


@contextlib.contextmanager
def libvirtd(user=None):
    """The system libvirtd, with qemu.conf's user= set (or left alone),
    started here and stopped again; qemu.conf restored."""
    for tool in ("libvirtd", "virsh", "virtlogd"):
        if not shutil.which(tool):
            raise Skip("libvirt is not installed (libvirt-daemon-system)")
    saved = QEMU_CONF + ".qva-saved"
    shutil.copy2(QEMU_CONF, saved)
    started = []
    try:
        if user:
            with open(QEMU_CONF, "a") as f:
                f.write(f'\nuser = "{user}"\ngroup = "{user}"\n')
        for daemon in ("virtlogd", "libvirtd"):
            subprocess.run(["pkill", "-x", daemon])
            subprocess.run([daemon, "-d"], check=True)
            started.append(daemon)
        # No readiness notification without systemd: ask until it answers.
        deadline = time.monotonic() + 30
        while virsh("version", check=False).returncode:
            assert time.monotonic() < deadline, "libvirtd never answered"
            time.sleep(0.2)
        yield
    finally:
        for daemon in reversed(started):
            subprocess.run(["pkill", "-x", daemon])
        shutil.move(saved, QEMU_CONF)


def chime_guest():
    """The bench guest (bench/guest): with no bench.* parameters it plays
    a short chime through AC97 and powers off."""
    out = build_bench_guest()
    return (f"<kernel>{out}/vmlinuz</kernel>"
            f"<initrd>{out}/initrd.img</initrd>"
            "<cmdline>console=ttyS0 quiet panic=-1</cmdline>")


def remove_domain(name):
    """@name stopped and undefined, if libvirt has it."""
    virsh("destroy", name, check=False)
    virsh("undefine", name, check=False)


@contextlib.contextmanager
def domain(name, boot=""):
    path = os.path.join(tempfile.mkdtemp(prefix="qva-dom-"), "dom.xml")
    with open(path, "w") as f:
        f.write(DOMAIN.format(name=name, emulator=qemu_binary(), boot=boot))
    # A run cut short between define and undefine leaves the definition
    # behind in /etc/libvirt/qemu, and every later define of the name
    # fails ("already exists").
    remove_domain(name)
    virsh("define", path)
    try:
        virsh("start", name)
        yield os.path.join("/var/log/libvirt/qemu", name + ".log")
    finally:
        remove_domain(name)
        shutil.rmtree(os.path.dirname(path))


def wait_in_log(log, needle, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(log) as f:
            text = f.read()
        if needle in text:
            return text
        time.sleep(0.2)
    with open(log) as f:
        raise AssertionError(f"{needle!r} not in {log}:\n{f.read()}")


def test_libvirt_domcapabilities():
    with libvirtd():
        caps = virsh("domcapabilities", "--emulatorbin", qemu_binary(),
                     "--arch", "x86_64", "--machine", "q35",
                     "--virttype", "qemu").stdout
        assert "<path>" + qemu_binary() + "</path>" in caps, caps
        # the binary's own q35 (pc-q35-7.2 or pc-q35-10.0), as libvirt
        # resolves the alias domains are written with
        helps = subprocess.run([qemu_binary(), "-M", "help"],
                               capture_output=True, text=True).stdout
        q35 = re.search(r"^q35\s.*\(alias of (\S+)\)", helps, re.M)
        assert q35, helps
        assert f"<machine>{q35.group(1)}</machine>" in caps, caps


def test_libvirt_domain_plays_to_desktop_user():
    """qemu.conf user= the desktop user, <audio type='pulseaudio'/> with
    no serverName: QEMU finds the user's server by itself, although
    libvirt gives it a per-domain HOME and no XDG_RUNTIME_DIR."""
    pw = ensure_user(*DESK1)
    boot = chime_guest()
    d = PulseDaemon(pw).start()
    rec = None
    try:
        with libvirtd(pw.pw_name):
            rec = d.record()
            with domain("qva-sound", boot) as log:
                text = wait_in_log(log, "PulseAudio server")
                assert f"unix:{d.socket}" in text, text
                assert "chosen by this user's runtime directory" in text, \
                    text
                # The guest's chime reaches the user's sink.
                heard = rec.wait_for(lambda data: sound_in(data), 120)
                assert heard, "no sound from the guest reached the sink"
    finally:
        if rec:
            rec.stop()
        d.stop()


def test_libvirt_default_user_is_told_what_to_change():
    """With Debian's libvirt-qemu user the domain still starts, and the
    log says what to change."""
    pw = ensure_user(*DESK1)
    d = PulseDaemon(pw).start()
    try:
        with libvirtd(), domain("qva-nosound") as log:
            text = wait_in_log(log, "user= in /etc/libvirt/qemu.conf")
            assert "may not enter that runtime directory" in text, text
            state = virsh("domstate", "qva-nosound").stdout
            assert "running" in state, state
    finally:
        d.stop()
