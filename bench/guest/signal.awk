# The bench's test signal as raw S16_LE stereo on stdout: one loop of
# 98304 frames (2.048 s at 48 kHz) that the guest plays over and over.
#
# left:  a 1 kHz sawtooth (48 frames a cycle), whose phase survives the
#        resampling stock QEMU's 44.1 kHz stream goes through, so frames
#        lost or played twice show as phase breaks (run-bench.py).
# right: a ramp rising one step a frame over 32768 frames, so every frame
#        says which one it is (mod 32768): exactly where nothing resamples,
#        within a few frames where something does.  The DMA probe reads it
#        from guest memory, the recorder at the sink; their times give the
#        latency (bench/counter.py).  A loop holds whole cycles of both
#        (98304 = lcm(48, 32768)) and no frame of it is silent.
#
# Usage: awk -f signal.awk >signal.raw  (build-guest.sh, with the guest's
# busybox awk, like chime.awk)

function put(v) {
    if (v < 0) v += 65536
    printf "%c%c", v % 256, int(v / 256)
}

BEGIN {
    for (i = 0; i < 98304; i++) {
        put(int(-16384 + 32768 * (i % 48) / 48))
        put(-16384 + i % 32768)
    }
}
