#!/bin/bash
# Boot the audio benchmark guest built by build-guest.sh under TCG, with an
# AC97 or Intel HDA card, and return when the guest powers itself off.
#
# Usage: run-guest.sh QEMU_BINARY OUTDIR [extra qemu args...]
#
# Environment:
#   BENCH_CARD     ac97 (default) or hda (ich9-intel-hda with hda-duplex)
#   BENCH_APPEND   bench.* parameters for the guest, e.g.
#                  "bench.period=128 bench.buffer=512 bench.seconds=5";
#                  empty or unset plays the ~1 s chime demo instead
#   BENCH_TIMEOUT  seconds before a guest that never powers off is killed
#                  (default 120 + 5 * bench.seconds)
#
# The serial console goes to stdout and to OUTDIR/console.log.  Unless the
# extra arguments contain their own -audiodev (which must have id=snd0), the
# sound goes to OUTDIR/out.wav at the guest's rate, so that QEMU does not
# resample the test signal on the way.  Exits non-zero if QEMU fails, times
# out, or the guest did not reach BENCH-END.
set -euo pipefail

if [ $# -lt 2 ]; then
    echo "usage: $0 QEMU_BINARY OUTDIR [extra qemu args...]" >&2
    exit 2
fi
qemu=$1
outdir=$2
shift 2
append=${BENCH_APPEND:-}

for f in vmlinuz initrd.img; do
    if [ ! -f "$outdir/$f" ]; then
        echo "run-guest: no $outdir/$f; run build-guest.sh $outdir first" >&2
        exit 2
    fi
done

rate=48000
seconds=10
for word in $append; do
    case $word in
        bench.rate=*) rate=${word#*=} ;;
        bench.seconds=*) seconds=${word#*=} ;;
    esac
done
timeout=${BENCH_TIMEOUT:-$((120 + 5 * seconds))}

audiodev=(-audiodev "wav,id=snd0,path=$outdir/out.wav,out.frequency=$rate")
for arg in "$@"; do
    if [ "$arg" = -audiodev ]; then
        audiodev=()
    fi
done

# KVM cannot run this guest kernel on our machines (it stops with an
# emulation error), hence TCG.  -nic none and -vga none leave out devices the
# guest would only spend emulated time probing.  panic=-1 with -no-reboot
# turns a kernel panic into a QEMU exit instead of a hang.
# --foreground keeps QEMU in the terminal's process group so that
# -nographic can still read the console when run interactively.
# The sound card: BENCH_CARD=ac97 (default) or hda, as libvirt's
# <sound model='ich9'/> makes it (hda-duplex).
case ${BENCH_CARD:-ac97} in
    ac97) card=(-device AC97,audiodev=snd0) ;;
    hda) card=(-device ich9-intel-hda -device hda-duplex,audiodev=snd0) ;;
    *) echo "run-guest: BENCH_CARD=$BENCH_CARD: want ac97 or hda" >&2; exit 2 ;;
esac

set +e
timeout --foreground -k 10 "$timeout" \
    "$qemu" -accel tcg -M q35 -m 256 -nographic -no-reboot -nic none -vga none \
    -name debug-threads=on \
    -kernel "$outdir/vmlinuz" -initrd "$outdir/initrd.img" \
    -append "console=ttyS0 quiet panic=-1 $append" \
    "${audiodev[@]}" "${card[@]}" \
    "$@" | tee "$outdir/console.log"
status=${PIPESTATUS[0]}
set -e

if [ "$status" -eq 124 ]; then
    echo "run-guest: guest did not power off within ${timeout}s, killed" >&2
elif [ "$status" -ne 0 ]; then
    echo "run-guest: $qemu exited with status $status" >&2
elif ! grep -q '^BENCH-END' "$outdir/console.log"; then
    echo "run-guest: the guest stopped before BENCH-END" >&2
    status=1
elif grep -q '^BENCH-ERROR' "$outdir/console.log"; then
    status=1
fi
exit "$status"
