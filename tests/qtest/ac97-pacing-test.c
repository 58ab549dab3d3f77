/*
 * QTest: AC97's DMA and interrupts paced by the sample clock
 *
 * A guest with 128-frame buffers (2.67 ms at 48 kHz) needs its buffer
 * interrupts on time; upstream delivers them in bursts at the audio
 * timer's 10 ms ticks.  On the deterministic qtest clock this measures
 * every interrupt against its ideal time, with the fork's pacing and with
 * use-timer=off (upstream) beside it, and checks PICB, the samples that
 * reach the wav backend, VRA rates, and stopping or resetting a stream in
 * the middle of a buffer.
 *
 * Copyright (c) 2026 qemu-vfio-audio developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "ac97-guest.h"
#include "pcm-counter.h"

#define NS_PER_S            1000000000LL
#define SMALL_FRAMES        128
#define SAMPLES_PER_TICK    (RATE / 1000 * 2)   /* 1 ms, both channels */

static void fill_buffer(AC97 *s, int idx, uint32_t frames, uint32_t first)
{
    g_autofree int16_t *buf = g_new(int16_t, frames * 2);

    pcm_counter_fill(buf, frames, first);
    qtest_memwrite(s->qts, GUEST_PCM + idx * frames * FRAME_BYTES, buf,
                   frames * FRAME_BYTES);
}

typedef struct Timing {
    int irqs;
    int64_t max_late_ns;        /* worst interrupt after its ideal time */
    int64_t max_early_ns;       /* worst interrupt before it */
    int bursts;                 /* steps in which PICB fell by > 1 tick */
} Timing;

/*
 * Play @nbufs buffers of @frames through a 32-entry ring, refilling each
 * buffer as the guest driver would, stepping the clock from one timer to
 * the next and timing every buffer-completion interrupt.
 */
static void play_ring(AC97 *s, uint32_t frames, int nbufs, Timing *t)
{
    Channel po = { s, NABM_PO };
    int64_t start, now;
    int queued = 0, done = 0;
    uint8_t civ = 0;
    uint64_t pos, last_pos = 0;
    int i;

    memset(t, 0, sizeof(*t));
    t->max_early_ns = 0;
    for (i = 0; i < BD_COUNT; i++) {
        fill_buffer(s, i, frames, queued++ * frames);
    }
    ac97_bdl_write(s, GUEST_BDL, GUEST_PCM, BD_COUNT, frames * 2);
    /* the time now: QEMU 10.0's clock_step refuses a step of 0 */
    start = qtest_clock_stall(s->qts, 0);
    ac97_channel_run(&po, GUEST_BDL, BD_COUNT - 1);

    while (done < nbufs) {
        uint16_t sr, picb;
        uint8_t new_civ;

        now = qtest_clock_step_next(s->qts);
        g_assert_cmpint(now - start, <, (int64_t)(nbufs + 40) *
                        frames * NS_PER_S / RATE);
        sr = ac97_ch_readw(&po, NABM_SR);
        new_civ = ac97_ch_readb(&po, NABM_CIV);
        picb = ac97_ch_readw(&po, NABM_PICB);
        /*
         * Where the DMA is, in samples; no step may move it by more
         * than a tick's worth.
         */
        pos = (uint64_t)(done + (new_civ + BD_COUNT - civ) % BD_COUNT) *
              frames * 2 + frames * 2 - picb;
        if (pos - last_pos > SAMPLES_PER_TICK + 2) {
            t->bursts++;
        }
        last_pos = pos;
        if (!(sr & SR_BCIS)) {
            continue;
        }

        /* Each buffer that completed since the last interrupt. */
        g_assert_cmphex(ac97_pirq_level(s), !=, 0);
        while (civ != new_civ) {
            int64_t ideal = start + (int64_t)(done + 1) * frames *
                            NS_PER_S / RATE;

            t->max_late_ns = MAX(t->max_late_ns, now - ideal);
            t->max_early_ns = MAX(t->max_early_ns, ideal - now);
            fill_buffer(s, civ, frames, queued++ * frames);
            ac97_ch_writeb(&po, NABM_LVI, civ);
            civ = (civ + 1) % BD_COUNT;
            done++;
        }
        t->irqs++;
        ac97_ch_writew(&po, NABM_SR, SR_BCIS | SR_LVBCI);
        g_assert_cmphex(ac97_pirq_level(s), ==, 0);
    }
}

/*
 * The wav file's sound, leading silence skipped, is the counter: frames
 * 0 to @min_frames - 1, or, with @jump_at, up to there and then from
 * @jump_to on.
 */
static void check_wav_counter_jump(AC97 *s, uint32_t min_frames,
                                   uint32_t jump_at, uint32_t jump_to)
{
    g_autofree char *wav = NULL;
    const int16_t *pcm;
    uint32_t i, n;

    qtest_quit(s->qts);
    s->qts = NULL;
    wav = pcm_counter_wav(s->wav_path, &pcm, &n);
    g_assert_cmpuint(n, >=, min_frames);
    for (i = 0; i < min_frames; i++) {
        g_assert_true(pcm_counter_frame_is(pcm, i, i < jump_at ? i :
                                           i - jump_at + jump_to));
    }
}

static void check_wav_counter(AC97 *s, uint32_t min_frames)
{
    check_wav_counter_jump(s, min_frames, UINT32_MAX, 0);
}

static void run_small_buffers(const char *device_opts, Timing *t, bool wav)
{
    AC97 *s = ac97_start_wav(device_opts);

    ac97_codec_init(s, NAM_FRONT_DAC_RATE, RATE);
    play_ring(s, SMALL_FRAMES, 1000, t);
    if (wav) {
        /* The last buffers are still on their way to the backend. */
        check_wav_counter(s, 1000 * SMALL_FRAMES - 40 * SMALL_FRAMES);
    }
    ac97_stop(s);
}

static void test_small_buffer_irq_timing(void)
{
    Timing ours, upstream;

    run_small_buffers("", &ours, true);
    run_small_buffers(",use-timer=off", &upstream, false);

    g_test_message("128-frame buffers at 48 kHz, 1000 buffers: paced: "
                   "%d interrupts, latest +%.3f ms, earliest -%.3f ms, "
                   "%d PICB bursts; use-timer=off (upstream): %d "
                   "interrupts, latest +%.3f ms, earliest -%.3f ms, "
                   "%d PICB bursts",
                   ours.irqs, ours.max_late_ns / 1e6,
                   ours.max_early_ns / 1e6, ours.bursts, upstream.irqs,
                   upstream.max_late_ns / 1e6, upstream.max_early_ns / 1e6,
                   upstream.bursts);

    /* Every interrupt within 1 ms of its time, one per buffer. */
    g_assert_cmpint(ours.max_late_ns, <=, 1000 * 1000);
    g_assert_cmpint(ours.max_early_ns, <=, 0);
    g_assert_cmpint(ours.irqs, ==, 1000);
    g_assert_cmpint(ours.bursts, ==, 0);

    /* What the pacing is for: upstream is off by far more. */
    g_assert_cmpint(MAX(upstream.max_late_ns, upstream.max_early_ns), >,
                    2 * 1000 * 1000);
}

/* Bytes the device took in @ms of virtual time at @rate. */
static uint64_t consumed_in(AC97 *s, int rate, int ms)
{
    const uint32_t frames = 4096;
    Channel po = { s, NABM_PO };
    uint64_t before, after;

    ac97_codec_init(s, NAM_FRONT_DAC_RATE, rate);
    ac97_bdl_write(s, GUEST_BDL, GUEST_PCM, BD_COUNT, frames * 2);
    ac97_channel_run(&po, GUEST_BDL, BD_COUNT - 1);
    qtest_clock_step(s->qts, 100 * MS);
    before = ac97_ch_readb(&po, NABM_CIV) * frames * 2 +
             (frames * 2 - ac97_ch_readw(&po, NABM_PICB));
    qtest_clock_step(s->qts, (int64_t)ms * MS);
    after = ac97_ch_readb(&po, NABM_CIV) * frames * 2 +
            (frames * 2 - ac97_ch_readw(&po, NABM_PICB));
    ac97_ch_writeb(&po, NABM_CR, CR_RR);
    return (after - before) * 2;
}

static void test_vra_rates(void)
{
    const int rates[] = { 48000, 44100, 22050 };
    int i;

    for (i = 0; i < ARRAY_SIZE(rates); i++) {
        AC97 *s = ac97_start_wav("");
        uint64_t got = consumed_in(s, rates[i], 500);
        uint64_t want = (uint64_t)rates[i] / 2 * FRAME_BYTES;
        uint64_t tick = rates[i] / 1000 * FRAME_BYTES + FRAME_BYTES;

        g_test_message("%d Hz: %" PRIu64 " bytes in 500 ms (nominal %"
                       PRIu64 ")", rates[i], got, want);
        g_assert_cmpuint(got, >=, want - tick);
        g_assert_cmpuint(got, <=, want + tick);
        ac97_stop(s);
    }
}

/*
 * Stopping (RPBM off) in the middle of a buffer freezes the stream; what
 * the DMA had taken is not lost.  Starting again resumes, as upstream's
 * register model does, with the next buffer.  A reset (RR) mid-buffer
 * stops the clock for good.
 */
static void test_stop_start_reset_mid_buffer(void)
{
    const uint32_t frames = 2048;
    AC97 *s = ac97_start_wav("");
    Channel po = { s, NABM_PO };
    uint16_t paused, picb;
    uint32_t played;
    int i;

    ac97_codec_init(s, NAM_FRONT_DAC_RATE, RATE);
    for (i = 0; i < BD_COUNT; i++) {
        fill_buffer(s, i, frames, i * frames);
    }
    ac97_bdl_write(s, GUEST_BDL, GUEST_PCM, BD_COUNT, frames * 2);
    ac97_channel_run(&po, GUEST_BDL, BD_COUNT - 1);
    qtest_clock_step(s->qts, 10 * MS + MS / 2);
    g_assert_cmpint(ac97_ch_readb(&po, NABM_CIV), ==, 0);

    ac97_ch_writeb(&po, NABM_CR, CR_IOCE | CR_LVBIE);     /* RPBM off */
    g_assert_cmphex(ac97_ch_readw(&po, NABM_SR) & SR_DCH, ==, SR_DCH);
    paused = ac97_ch_readw(&po, NABM_PICB);
    g_assert_cmpint(paused, <, frames * 2);
    qtest_clock_step(s->qts, 100 * MS);
    g_assert_cmpint(ac97_ch_readw(&po, NABM_PICB), ==, paused);
    g_assert_cmphex(ac97_pirq_level(s), ==, 0);

    ac97_ch_writeb(&po, NABM_CR, CR_RPBM | CR_IOCE | CR_LVBIE);
    g_assert_cmpint(ac97_ch_readb(&po, NABM_CIV), ==, 1);
    qtest_clock_step(s->qts, 2 * MS);
    picb = ac97_ch_readw(&po, NABM_PICB);
    g_assert_cmpint(picb, <, frames * 2);
    g_assert_cmpint(picb, >=, frames * 2 - 2 * SAMPLES_PER_TICK - 2);
    qtest_clock_step(s->qts, 20 * MS);
    picb = ac97_ch_readw(&po, NABM_PICB);
    played = (frames * 2 - paused) / 2 + (frames * 2 - picb) / 2;

    ac97_ch_writeb(&po, NABM_CR, CR_RR);
    g_assert_cmpint(ac97_ch_readb(&po, NABM_CIV), ==, 0);
    g_assert_cmpint(ac97_ch_readw(&po, NABM_PICB), ==, 0);
    qtest_clock_step(s->qts, 100 * MS);
    g_assert_cmpint(ac97_ch_readw(&po, NABM_PICB), ==, 0);
    g_assert_cmphex(ac97_pirq_level(s), ==, 0);

    /*
     * Buffer 0 up to the pause, then buffer 1: nothing lost or repeated
     * but what the reset dropped on its way out (what waited for the
     * backend's next 10 ms tick, and the tick in progress).
     */
    check_wav_counter_jump(s, played - RATE / 100 - RATE / 1000,
                           (frames * 2 - paused) / 2, frames);
    ac97_stop(s);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);

    qtest_add_func("/ac97/pacing/small-buffers-irq-timing",
                   test_small_buffer_irq_timing);
    qtest_add_func("/ac97/pacing/vra-rates", test_vra_rates);
    qtest_add_func("/ac97/pacing/stop-start-reset-mid-buffer",
                   test_stop_start_reset_mid_buffer);

    return g_test_run();
}
