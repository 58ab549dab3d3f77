#!/bin/bash
# Build the audio benchmark guest: OUTDIR/vmlinuz and OUTDIR/initrd.img.
#
# Everything that goes into the guest comes from Debian packages fetched with
# `apt-get download` and unpacked with dpkg-deb, never from the host's own
# files, so the guest is the same whatever the host has installed.  The .debs
# are cached in OUTDIR/debs and unpacked trees in OUTDIR/work, so a second run
# only reassembles the (small) initrd.
#
# Usage: build-guest.sh OUTDIR
# Environment: GUEST_MODULES  kernel modules to load at boot, in addition to
#                             their dependencies (default: snd-intel8x0,
#                             snd-hda-codec-generic, snd-hda-intel: AC97
#                             and Intel HDA)
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi

here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$1"
outdir=$(cd "$1" && pwd)
debs=$outdir/debs
work=$outdir/work
modules=${GUEST_MODULES:-snd-intel8x0 snd-hda-codec-generic snd-hda-intel}
# Guest userland packages.  libc6 is fetched too so that aplay runs against
# the archive's libc, not whatever the host happens to have.
userland_pkgs="alsa-utils libasound2 libasound2-data libc6"
# Debian 13 renamed libraries in its 64-bit time_t transition (libasound2
# is libasound2t64 there): take the name this archive has.
userland_pkgs=$(for pkg in $userland_pkgs; do
    if apt-cache show "${pkg}t64" >/dev/null 2>&1; then
        echo "${pkg}t64"
    else
        echo "$pkg"
    fi
done | tr '\n' ' ')

log() { echo "build-guest: $*" >&2; }

# Host tools, as command:package.  apt-get itself, dpkg-deb, gzip and ldd
# come with every Debian system.
install_host_tools() {
    local pair missing=()
    for pair in xz:xz-utils cpio:cpio depmod:kmod; do
        command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing host tools: ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
    fi
}

# A fresh machine may never have run apt-get update; downloads need the lists.
ensure_apt_lists() {
    if ! apt-cache show linux-image-amd64 >/dev/null 2>&1; then
        log "apt lists are empty, running apt-get update"
        apt-get update -q >&2
    fi
}

# fetch PACKAGE...: make sure the candidate version of each package is
# complete in the cache and remember its path in deb[PACKAGE].  One apt-get
# call each for the query and the download: apt takes about a second just to
# start, which would otherwise dominate a rebuild.
declare -A deb
fetch() {
    local file size missing=() pkg
    # --print-uris prints 'URI' FILE SIZE HASH per package, downloading nothing.
    while read -r _ file size _; do
        pkg=${file%%_*}
        deb[$pkg]=$debs/$file
        if [ "$(stat -c %s "$debs/$file" 2>/dev/null)" != "$size" ]; then
            rm -f "$debs/$file"
            missing+=("$pkg")
        fi
    done < <(apt-get download --print-uris "$@")
    for pkg in "$@"; do
        [ -n "${deb[$pkg]:-}" ] || { log "apt has no candidate for $pkg"; exit 1; }
    done
    if [ ${#missing[@]} -gt 0 ]; then
        log "downloading ${missing[*]}"
        # The cache belongs to root, so apt's unprivileged sandbox user could
        # not write into it; say so up front instead of getting a warning.
        (cd "$debs" && apt-get download -q -o APT::Sandbox::User=root "${missing[@]}" >&2)
    fi
}

# unpack DIR DEB...: unpack the .debs into DIR unless DIR already holds
# exactly these .debs (a version change rebuilds the tree from scratch).
unpack() {
    local dir=$1 want deb
    shift
    want=$(for deb in "$@"; do basename "$deb"; done)
    if [ -d "$dir" ] && [ "$(cat "$dir.stamp" 2>/dev/null)" = "$want" ]; then
        return
    fi
    log "unpacking $(echo "$want" | tr '\n' ' ')"
    rm -rf "$dir" "$dir.stamp"
    mkdir -p "$dir"
    for deb in "$@"; do
        dpkg-deb -x "$deb" "$dir"
    done
    # Debian 13's packages install into /usr only (merged /usr): give the
    # tree the links its root has, so /bin/busybox and /lib/modules resolve.
    for sub in bin sbin lib lib64; do
        if [ ! -e "$dir/$sub" ] && [ -d "$dir/usr/$sub" ]; then
            ln -s "usr/$sub" "$dir/$sub"
        fi
    done
    echo "$want" >"$dir.stamp"
}

# copy_in TREE PATH: copy TREE/PATH to the rootfs at PATH, resolving symlinks
# inside TREE (an absolute link target must not escape to the host's files).
copy_in() {
    local tree=$1 path=$2 real=$2 target hops=0
    while [ -L "$tree$real" ]; do
        target=$(readlink "$tree$real")
        case $target in
            /*) real=$target ;;
            *) real=$(dirname "$real")/$target ;;
        esac
        hops=$((hops + 1))
        [ $hops -lt 20 ] || { log "symlink loop at $tree$path"; exit 1; }
    done
    mkdir -p "$rootfs$(dirname "$path")"
    cp "$tree$real" "$rootfs$path"
}

ensure_apt_lists
install_host_tools
mkdir -p "$debs" "$work"

# The versioned image package that the linux-image-amd64 metapackage points
# at, e.g. linux-image-6.1.0-56-amd64.
kpkg=$(apt-cache depends linux-image-amd64 |
    awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9].*-amd64$/ { print $2; exit }')
[ -n "$kpkg" ] || { log "cannot find the kernel package behind linux-image-amd64"; exit 1; }

# shellcheck disable=SC2086 # word splitting of the package list is wanted
fetch "$kpkg" busybox-static $userland_pkgs
udebs=()
for pkg in $userland_pkgs; do
    udebs+=("${deb[$pkg]}")
done

kernel=$work/kernel
userland=$work/userland
busybox=$work/busybox
unpack "$kernel" "${deb[$kpkg]}"
unpack "$busybox" "${deb[busybox-static]}"
unpack "$userland" "${udebs[@]}"

vmlinuz=$(echo "$kernel"/boot/vmlinuz-*)
[ -f "$vmlinuz" ] || { log "no single vmlinuz in $kpkg"; exit 1; }
kver=${vmlinuz##*/vmlinuz-}
kmoddir=$kernel/lib/modules/$kver
# The package ships no modules.dep: its postinst runs depmod on the target
# system.  Run it on the unpacked tree instead.
if [ ! -s "$kmoddir/modules.dep" ]; then
    log "running depmod for $kver"
    depmod -b "$kernel" "$kver"
fi

rootfs=$work/rootfs
rm -rf "$rootfs"
mkdir -p "$rootfs"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,lib/modules}

# busybox provides the shell and every other command; link all its applets.
cp "$busybox/bin/busybox" "$rootfs/bin/busybox"
"$rootfs/bin/busybox" --list-full | while read -r applet; do
    [ -e "$rootfs/$applet" ] || ln -s /bin/busybox "$rootfs/$applet"
done

# aplay plays, amixer unmutes the codec.  Resolve their libraries against the
# unpacked packages only: anything ldd finds elsewhere (or not at all) means a
# package is missing from $userland_pkgs, and the build stops.
libpath=$userland/lib/x86_64-linux-gnu:$userland/usr/lib/x86_64-linux-gnu
for bin in /usr/bin/aplay /usr/bin/amixer; do
    copy_in "$userland" "$bin"
    while read -r name arrow path _; do
        case $name:$arrow in
            linux-vdso.so.*) continue ;;
            /*:*) copy_in "$userland" "$name" ;; # the ELF interpreter, by its guest path
            *:"=>")
                case $path in
                    "$userland"/*) copy_in "$userland" "${path#"$userland"}" ;;
                    *) log "$bin needs $name, found outside the packages: $path"; exit 1 ;;
                esac
                ;;
            *) log "unexpected ldd output for $bin: $name $arrow $path"; exit 1 ;;
        esac
    done < <(LD_LIBRARY_PATH=$libpath ldd "$userland$bin")
done
# alsa-lib reads alsa.conf and the files it includes even to open hw:0,0;
# init/ and utils.sh are for alsactl, which the guest does not have.
for f in alsa.conf cards ctl pcm; do
    mkdir -p "$rootfs/usr/share/alsa"
    cp -r "$userland/usr/share/alsa/$f" "$rootfs/usr/share/alsa/"
done

# Kernel modules with their dependencies, dependencies first (a depth-first
# walk of modules.dep), decompressed because busybox insmod may not read xz.
# They go flat into /lib/modules; /etc/bench-modules is the load order.
order=$(awk -v want="$modules" '
    function norm(p) { sub(/.*\//, "", p); sub(/\.ko(\.[a-z]+)?$/, "", p); gsub(/_/, "-", p); return p }
    function visit(m,   n, i, d) {
        if (m in done) return
        if (!(m in file)) { print "no module " m > "/dev/stderr"; exit 1 }
        done[m] = 1
        n = split(deps[m], d, " ")
        for (i = 1; i <= n; i++) visit(norm(d[i]))
        print file[m]
    }
    { sub(/:$/, "", $1); m = norm($1); file[m] = $1; $1 = ""; deps[m] = $0 }
    END { n = split(want, w, " "); for (i = 1; i <= n; i++) visit(norm(w[i])) }
' "$kmoddir/modules.dep")
: >"$rootfs/etc/bench-modules"
for rel in $order; do
    name=${rel##*/}
    case $name in
        *.ko) cp "$kmoddir/$rel" "$rootfs/lib/modules/$name" ;;
        *.ko.xz) name=${name%.xz}; xz -dc "$kmoddir/$rel" >"$rootfs/lib/modules/$name" ;;
        *) log "cannot handle module file $rel"; exit 1 ;;
    esac
    echo "${name%.ko}" >>"$rootfs/etc/bench-modules"
done
log "modules: $(tr '\n' ' ' <"$rootfs/etc/bench-modules")"

install -m 0755 "$here/init" "$rootfs/init"
# The demo chime, computed here with the guest's own awk: the guest would
# need ten times the sound's length to compute it under TCG.
mkdir -p "$rootfs/usr/share/bench"
"$rootfs/bin/busybox" awk -v rate=48000 -f "$here/chime.awk" >"$rootfs/usr/share/bench/chime.raw"
# The bench's 48 kHz signal, for the same reason.
"$rootfs/bin/busybox" awk -f "$here/signal.awk" >"$rootfs/usr/share/bench/signal.raw"

# Fixed timestamps and sorted names make the initrd byte-for-byte
# reproducible, so an unchanged guest leaves initrd.img untouched.
find "$rootfs" -exec touch -h -d @0 {} +
# Replace DEST only when its content changed, so its mtime means something.
update() {
    if cmp -s "$1" "$2"; then
        rm -f "$1"
    else
        mv "$1" "$2"
    fi
}
# gzip -6: xz would save a third of the 3 MiB but cost seconds per build and
# more decompression time in the (emulated) guest; -9 buys almost nothing.
(cd "$rootfs" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --reproducible --quiet) |
    gzip -6n >"$outdir/initrd.img.new"
update "$outdir/initrd.img.new" "$outdir/initrd.img"
cp "$vmlinuz" "$outdir/vmlinuz.new"
update "$outdir/vmlinuz.new" "$outdir/vmlinuz"
log "kernel $kver ($kpkg), initrd $(du -k "$outdir/initrd.img" | cut -f1) KiB: $outdir"
