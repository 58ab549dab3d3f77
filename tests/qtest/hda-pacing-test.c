/*
 * QTest: Intel HDA's DMA and interrupts paced by the sample clock
 *
 * Drives ich9-intel-hda as snd-hda-intel does: the controller out of
 * reset, CORB/RIRB rings, verbs that give the codec's converter a stream
 * tag and a format, a BDL in guest memory, the stream run with interrupts
 * on completion, and the DMA position buffer.  On the deterministic qtest
 * clock it checks every interrupt against its ideal time, LPIB and the
 * position buffer against the rate, that the wav backend receives exactly
 * what the guest queued (the last buffer before the stream stopped too),
 * capture without a backend that delivers, and guests that program
 * nonsense.  pacing=off (upstream's ring) is measured beside it.
 *
 * Copyright (c) 2026 qemu-vfio-audio developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/bswap.h"
#include "hda-guest.h"
#include "pcm-counter.h"

#define RATE                48000
#define FRAME_BYTES         4
#define MS                  (1000 * 1000)
#define NS_PER_S            1000000000LL
#define TICK_BYTES          (RATE / 1000 * FRAME_BYTES)

/* hda-output on a wav backend at the guest's rate: nothing resampled. */
static HDA *hda_start_wav(const char *codec_opts)
{
    char *path = NULL;
    g_autofree char *opts = pcm_counter_wav_backend("hda-pacing-test", RATE,
                                                    &path);
    HDA *s = hda_start(opts, "hda-output", codec_opts);

    s->wav_path = path;
    return s;
}

static void fill_buffer(HDA *s, uint64_t addr, uint32_t frames,
                        uint32_t first)
{
    g_autofree int16_t *buf = g_new(int16_t, frames * 2);

    pcm_counter_fill(buf, frames, first);
    qtest_memwrite(s->qts, addr, buf, frames * FRAME_BYTES);
}

/* The position buffer's entry of stream descriptor @sd. */
static uint32_t dma_position(HDA *s, uint64_t sd)
{
    return qtest_readl(s->qts, GUEST_DP + 8 * ((sd - SD_IN0) / 0x20));
}

typedef struct Timing {
    int irqs;
    int64_t max_late_ns;        /* worst interrupt after its ideal time */
    int64_t max_early_ns;       /* worst interrupt before it */
    int bursts;                 /* steps in which LPIB moved by > 1 tick */
    int dp_mismatch;            /* position buffer differs from LPIB */
} Timing;

/*
 * Play @nbufs buffers of @frames through a 32-entry ring, refilling each
 * buffer after it completes as a guest driver would, and stop the stream
 * at the interrupt of the last one; time every interrupt on the way.
 */
static void play_ring(HDA *s, uint32_t frames, int nbufs, Timing *t)
{
    const uint32_t bytes = frames * FRAME_BYTES;
    const uint32_t cbl = BD_COUNT * bytes;
    int64_t start, now;
    uint64_t pos = 0;
    uint32_t lpib = 0;
    int queued = 0, done = 0;
    int i;

    memset(t, 0, sizeof(*t));
    for (i = 0; i < BD_COUNT; i++) {
        fill_buffer(s, GUEST_PCM + i * bytes, frames, queued++ * frames);
    }
    hda_bdl_write(s, GUEST_PCM, BD_COUNT, bytes);
    /* the time now: QEMU 10.0's clock_step refuses a step of 0 */
    start = qtest_clock_stall(s->qts, 0);
    hda_stream_run(s, SD_OUT0, NID_DAC, FMT_48K_S16_STEREO, BD_COUNT, bytes);

    while (done < nbufs) {
        uint32_t new_lpib, moved;

        now = qtest_clock_step_next(s->qts);
        g_assert_cmpint(now - start, <, (int64_t)(nbufs + 40) *
                        frames * NS_PER_S / RATE);
        new_lpib = hda_readl(s, SD_OUT0 + SD_LPIB);
        if (dma_position(s, SD_OUT0) != new_lpib) {
            t->dp_mismatch++;
        }
        moved = (new_lpib + cbl - lpib) % cbl;
        if (moved > TICK_BYTES + FRAME_BYTES) {
            t->bursts++;
        }
        pos += moved;
        lpib = new_lpib;
        if (!(hda_readb(s, SD_OUT0 + SD_STS) & SD_STS_BCIS)) {
            continue;
        }
        while (done < pos / bytes) {
            int64_t ideal = start + (int64_t)(done + 1) * frames *
                            NS_PER_S / RATE;

            t->max_late_ns = MAX(t->max_late_ns, now - ideal);
            t->max_early_ns = MAX(t->max_early_ns, ideal - now);
            fill_buffer(s, GUEST_PCM + done % BD_COUNT * bytes, frames,
                        queued++ * frames);
            done++;
        }
        t->irqs++;
        hda_writeb(s, SD_OUT0 + SD_STS, SD_STS_BCIS);
    }
    hda_stream_stop(s, SD_OUT0);
}

/*
 * The wav file's sound, leading silence skipped, is the counter from 0:
 * at least @min_frames of it, at most @max_frames, nothing else.
 */
static void check_wav_counter(HDA *s, uint32_t min_frames,
                              uint32_t max_frames)
{
    g_autofree char *wav = NULL;
    const int16_t *pcm;
    uint32_t i, n;

    qtest_quit(s->qts);
    s->qts = NULL;
    wav = pcm_counter_wav(s->wav_path, &pcm, &n);
    g_test_message("wav: %u frames of sound (queued %u to %u)", n,
                   min_frames, max_frames);
    g_assert_cmpuint(n, >=, min_frames);
    g_assert_cmpuint(n, <=, max_frames);
    for (i = 0; i < n; i++) {
        g_assert_true(pcm_counter_frame_is(pcm, i, i));
    }
}

static void run_small_buffers(const char *codec_opts, Timing *t, bool wav)
{
    const uint32_t frames = 128, nbufs = 1000;
    HDA *s = hda_start_wav(codec_opts);

    hda_controller_init(s);
    play_ring(s, frames, nbufs, t);
    /* The end of the sound reaches the backend after the stop. */
    qtest_clock_step(s->qts, 50 * MS);
    if (wav) {
        /*
         * Everything queued up to the last interrupt, and no more than
         * the DMA had read of the next buffer by then: a tick.
         */
        check_wav_counter(s, nbufs * frames, nbufs * frames + RATE / 1000);
    }
    hda_stop(s);
}

static void test_small_buffers(void)
{
    Timing ours, upstream;

    run_small_buffers("", &ours, true);
    run_small_buffers(",pacing=off", &upstream, false);

    g_test_message("128-frame buffers at 48 kHz, 1000 buffers: paced: "
                   "%d interrupts, latest +%.3f ms, earliest -%.3f ms, "
                   "%d LPIB bursts; pacing=off (upstream): %d interrupts, "
                   "latest +%.3f ms, earliest -%.3f ms, %d LPIB bursts",
                   ours.irqs, ours.max_late_ns / 1e6,
                   ours.max_early_ns / 1e6, ours.bursts, upstream.irqs,
                   upstream.max_late_ns / 1e6, upstream.max_early_ns / 1e6,
                   upstream.bursts);

    /* Every interrupt within a tick of its time, one per buffer. */
    g_assert_cmpint(ours.max_late_ns, <=, 1000 * 1000);
    g_assert_cmpint(ours.max_early_ns, <=, 0);
    g_assert_cmpint(ours.irqs, ==, 1000);
    g_assert_cmpint(ours.bursts, ==, 0);
    g_assert_cmpint(ours.dp_mismatch, ==, 0);
}

/* Bytes the DMA moved in @ms of virtual time, from LPIB. */
static uint32_t moved_in(HDA *s, uint64_t sd, uint32_t nid, uint16_t fmt,
                         int ms)
{
    const uint32_t bytes = 64 * 1024;
    uint32_t before, after;

    hda_bdl_write(s, GUEST_PCM, 4, bytes);
    hda_stream_run(s, sd, nid, fmt, 4, bytes);
    qtest_clock_step(s->qts, 100 * MS);
    before = hda_readl(s, sd + SD_LPIB);
    qtest_clock_step(s->qts, (int64_t)ms * MS);
    after = hda_readl(s, sd + SD_LPIB);
    g_assert_cmpuint(dma_position(s, sd), ==, after);
    hda_stream_stop(s, sd);
    return (after + 4 * bytes - before) % (4 * bytes);
}

static void test_rates(void)
{
    const struct {
        uint16_t fmt;
        int rate;
    } f[] = { { FMT_48K_S16_STEREO, 48000 }, { FMT_44K_S16_STEREO, 44100 } };
    int i;

    for (i = 0; i < ARRAY_SIZE(f); i++) {
        HDA *s = hda_start_wav("");
        uint32_t got, want = f[i].rate / 4 * FRAME_BYTES;

        hda_controller_init(s);
        got = moved_in(s, SD_OUT0, NID_DAC, f[i].fmt, 250);
        g_test_message("%d Hz: %u bytes in 250 ms (nominal %u)", f[i].rate,
                       got, want);
        g_assert_cmpuint(got, >=, want - TICK_BYTES);
        g_assert_cmpuint(got, <=, want + TICK_BYTES);
        hda_stop(s);
    }
}

/*
 * Capture from a backend that delivers nothing of its own (none): the
 * guest's clock runs at the rate all the same, and it records silence.
 */
static void test_capture(void)
{
    HDA *s = hda_start("none", "hda-duplex", "");
    uint32_t got, want = RATE / 4 * FRAME_BYTES;
    uint8_t pcm[256];

    hda_controller_init(s);
    qtest_memset(s->qts, GUEST_PCM, 0x55, sizeof(pcm));
    got = moved_in(s, SD_IN0, NID_ADC, FMT_48K_S16_STEREO, 250);
    g_test_message("capture: %u bytes in 250 ms (nominal %u)", got, want);
    g_assert_cmpuint(got, >=, want - TICK_BYTES);
    g_assert_cmpuint(got, <=, want + TICK_BYTES);
    qtest_memread(s->qts, GUEST_PCM, pcm, sizeof(pcm));
    g_assert_cmpuint(pcm[0] | pcm[sizeof(pcm) - 1], ==, 0);
    hda_stop(s);
}

/*
 * A controller reset (CRST cleared) right after the stream stopped drops
 * what was still on its way to the backend; stopping alone does not.
 */
static void test_reset_drops(void)
{
    const uint32_t frames = 4096;
    HDA *s = hda_start_wav("");
    g_autofree char *wav = NULL;
    gsize len;
    int i;

    hda_controller_init(s);
    for (i = 0; i < 4; i++) {
        fill_buffer(s, GUEST_PCM + i * frames * FRAME_BYTES, frames,
                    i * frames);
    }
    hda_bdl_write(s, GUEST_PCM, 4, frames * FRAME_BYTES);
    hda_stream_run(s, SD_OUT0, NID_DAC, FMT_48K_S16_STEREO, 4,
               frames * FRAME_BYTES);
    qtest_clock_step(s->qts, 25 * MS + MS / 2);
    hda_stream_stop(s, SD_OUT0);
    hda_writel(s, GCTL, 0);
    qtest_clock_step(s->qts, 100 * MS);
    qtest_quit(s->qts);
    s->qts = NULL;
    g_assert_true(g_file_get_contents(s->wav_path, &wav, &len, NULL));
    /* The audio timer took what was due at 10 and 20 ms; not the rest. */
    g_test_message("reset after 25.5 ms: %" G_GSIZE_FORMAT " frames in the "
                   "wav", (len - 44) / FRAME_BYTES);
    g_assert_cmpuint((len - 44) / FRAME_BYTES, <, RATE / 40);
    hda_stop(s);
}

/*
 * QEMU stalled for 5 s (the clock jumps, the tick runs once, late): the
 * DMA owes five seconds, but what the FIFO cannot hold would only be
 * read and dropped.  Found with the pacing fuzz target's stalls: after an
 * hour's stall the tick moved 691 MB through the guest's ring in 1 KiB
 * chunks with the BQL held, and after some days the byte count
 * overflowed.  The ring is longer than what may move (1.4 s), so LPIB
 * shows it all.
 */
static void test_long_stall(void)
{
    const uint32_t bytes = 8192;
    const uint32_t cbl = BD_COUNT * bytes;
    HDA *s = hda_start("none", "hda-output", "");
    uint32_t before, moved;

    hda_controller_init(s);
    hda_bdl_write(s, GUEST_PCM, BD_COUNT, bytes);
    hda_stream_run(s, SD_OUT0, NID_DAC, FMT_48K_S16_STEREO, BD_COUNT, bytes);
    qtest_clock_step(s->qts, 10 * MS);
    before = hda_readl(s, SD_OUT0 + SD_LPIB);
    qtest_clock_stall(s->qts, 5 * NS_PER_S);
    moved = (hda_readl(s, SD_OUT0 + SD_LPIB) + cbl - before) % cbl;
    g_test_message("after a 5 s stall the DMA moved %u bytes", moved);
    g_assert_cmpuint(moved, >=, TICK_BYTES);
    g_assert_cmpuint(moved, <=, RATE * FRAME_BYTES / 2 + TICK_BYTES);

    /*
     * And it plays on at its rate, slowed by at most 1 % while what
     * waited out the stall drains.
     */
    before = hda_readl(s, SD_OUT0 + SD_LPIB);
    qtest_clock_step(s->qts, 100 * MS);
    moved = (hda_readl(s, SD_OUT0 + SD_LPIB) + cbl - before) % cbl;
    g_assert_cmpuint(moved, <=, 100 * TICK_BYTES);
    g_assert_cmpuint(moved, >=, 99 * TICK_BYTES);
    hda_stop(s);
}

/* Guests that program nonsense: QEMU runs on, and nothing hangs. */
static void test_hostile_guest(void)
{
    const uint16_t formats[] = {
        0x0011, 0x403f, 0x7f4f, 0x8011, 0x0071, 0xffff, 0x0000,
    };
    HDA *s = hda_start_wav("");
    uint32_t e[4 * 4];
    int i;

    hda_controller_init(s);
    for (i = 0; i < 64; i++) {
        hda_verb(s, i % 8, (i * 0x135) & 0xfff, i * 37);
    }
    hda_verb(s, NID_DAC, VERB_GET_PARAM, 0);

    /* Entries: outside RAM, empty, empty with IOC, and one huge. */
    e[0] = cpu_to_le32(0xfffff000);
    e[1] = cpu_to_le32(0xffffffff);
    e[2] = cpu_to_le32(4096);
    e[3] = cpu_to_le32(1);
    e[4] = cpu_to_le32(GUEST_PCM);
    e[5] = e[6] = e[7] = 0;
    e[8] = cpu_to_le32(GUEST_PCM);
    e[9] = e[10] = 0;
    e[11] = cpu_to_le32(1);
    e[12] = cpu_to_le32(GUEST_PCM);
    e[13] = 0;
    e[14] = cpu_to_le32(0xffffffff);
    e[15] = cpu_to_le32(1);
    qtest_memwrite(s->qts, GUEST_BDL, e, sizeof(e));

    for (i = 0; i < ARRAY_SIZE(formats); i++) {
        hda_stream_run(s, SD_OUT0, NID_DAC, formats[i], 4, 8192);
        qtest_clock_step(s->qts, 30 * MS);
        hda_writeb(s, SD_OUT0 + SD_STS, SD_STS_BCIS);
        hda_stream_stop(s, SD_OUT0);
        qtest_clock_step(s->qts, 20 * MS);
    }
    /* A stream number no converter has, and a reset while running. */
    hda_writel(s, SD_OUT0 + SD_CTL, 9 << 20 | SD_CTL_RUN);
    qtest_clock_step(s->qts, 20 * MS);
    hda_writel(s, GCTL, 0);
    qtest_clock_step(s->qts, 20 * MS);
    qtest_qmp_assert_success(s->qts, "{ 'execute': 'query-status' }");
    hda_stop(s);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);

    qtest_add_func("/hda/pacing/small-buffers", test_small_buffers);
    qtest_add_func("/hda/pacing/rates", test_rates);
    qtest_add_func("/hda/pacing/capture", test_capture);
    qtest_add_func("/hda/pacing/reset-drops", test_reset_drops);
    qtest_add_func("/hda/pacing/long-stall", test_long_stall);
    qtest_add_func("/hda/pacing/hostile-guest", test_hostile_guest);

    return g_test_run();
}
