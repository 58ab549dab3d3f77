# The demo chime as raw S16_LE stereo on stdout: two struck notes a major
# third apart (E6 then C6), each with a soft attack, an octave partial and an
# exponential decay, faded out at the end, about 1.1 s long.
#
# Run with the guest's busybox awk at build time (build-guest.sh): under TCG
# the guest's awk needs some 11 s for it, ten times longer than the sound.
# Debian's busybox awk has no sin(), exp() or ^, so each partial is a
# recurrence resonator (x[n] = 2cos(w) x[n-1] - x[n-2]) and the decay a
# per-sample factor; %c does write NUL bytes, so raw PCM can come out of awk.
#
# Usage: awk -v rate=48000 -f chime.awk >chime.raw

# Little-endian signed 16-bit sample.
function put(v) {
    if (v < 0) v += 65536
    printf "%c%c", v % 256, int(v / 256)
}

# Taylor series; only called for w well below pi/2.
function cosine(w,   t, s, k) {
    t = 1; s = 1
    for (k = 1; k <= 8; k++) { t *= -w * w / ((2 * k - 1) * (2 * k)); s += t }
    return s
}

function sine(w,   t, s, k) {
    t = w; s = w
    for (k = 1; k <= 8; k++) { t *= -w * w / ((2 * k) * (2 * k + 1)); s += t }
    return s
}

# Partial j: frequency f (Hz) starting at sample "at", loudness "amp".
function partial(j, f, at, amp,   w) {
    w = 6.283185307179586 * f / rate
    c2[j] = 2 * cosine(w); x1[j] = 0; x0[j] = sine(w)
    start[j] = at; gain[j] = amp; env[j] = 0
}

BEGIN {
    n = int(rate * 1.1)
    fade = int(rate * 0.15)
    attack = int(rate * 0.004)
    decay = 1 - 4.5 / rate
    second = int(rate * 0.32)
    partial(1, 1318.51, 0, 1)
    partial(2, 2637.02, 0, 0.25)
    partial(3, 1046.50, second, 0.9)
    partial(4, 2093.00, second, 0.22)
    for (i = 0; i < n; i++) {
        s = 0
        for (j = 1; j <= 4; j++) {
            if (i < start[j]) continue
            u = i - start[j]
            if (u < attack) env[j] = u / attack; else env[j] *= decay
            s += gain[j] * env[j] * x1[j]
            x = c2[j] * x0[j] - x1[j]; x1[j] = x0[j]; x0[j] = x
        }
        if (i > n - fade) s *= (n - i) / fade
        v = int(s * 9000)
        put(v); put(v)
    }
}
