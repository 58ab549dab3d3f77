/*
 * QTest: AC97 bus-master DMA, driven the way a guest driver drives it
 *
 * Upstream's ac97-test only instantiates the device.  These cases program
 * the codec and a buffer descriptor list in guest memory, run PCM OUT and
 * PCM IN on the deterministic qtest clock, and check the samples that reach
 * the backend, the bus-master registers, the interrupt line and the rate.
 *
 * Copyright (c) 2026 qemu-vfio-audio developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "ac97-guest.h"
#include "qemu/bswap.h"
#include "qemu/host-utils.h"

/*
 * Run a channel as an interrupt-driven guest driver would: step the clock
 * by 1 ms, check the registers against the buffers completed so far, and
 * acknowledge each buffer-completion interrupt.
 */
typedef struct RunLog {
    int completed;
    int end_ms;                     /* when the last buffer was done */
    uint64_t consumed_at[1024];     /* bytes transferred after N+1 ms */
    int steps;
} RunLog;

static void channel_watch(Channel *c, int nbufs, uint32_t samples,
                          int max_ms, RunLog *log)
{
    uint32_t irq_pin = 0;
    uint8_t last_civ = 0;
    uint16_t last_picb = samples;
    int ms;

    memset(log, 0, sizeof(*log));
    log->end_ms = -1;
    g_assert_cmpint(ac97_ch_readb(c, NABM_CIV), ==, 0);
    g_assert_cmpint(ac97_ch_readw(c, NABM_PICB), ==, samples);
    g_assert_cmpint(ac97_ch_readb(c, NABM_PIV), ==, 1);

    for (ms = 0; ms < max_ms && ms < (int)G_N_ELEMENTS(log->consumed_at);
         ms++) {
        uint16_t sr, picb;
        uint8_t civ;
        int done;

        qtest_clock_step(c->s->qts, MS);
        sr = ac97_ch_readw(c, NABM_SR);
        civ = ac97_ch_readb(c, NABM_CIV);
        picb = ac97_ch_readw(c, NABM_PICB);

        /* CIV walks the list once; it stays on LVI once that is done. */
        g_assert_cmpint(civ, >=, last_civ);
        g_assert_cmpint(civ, <, nbufs);
        g_assert_cmpint(ac97_ch_readb(c, NABM_PIV), ==, (civ + 1) % BD_COUNT);
        g_assert_cmpint(ac97_ch_readb(c, NABM_LVI), ==, nbufs - 1);
        done = civ + !!(sr & SR_CELV);
        if (civ == last_civ && !(sr & SR_CELV)) {
            g_assert_cmpint(picb, <=, last_picb);
        }

        if (done > log->completed) {
            uint32_t level = ac97_pirq_level(c->s);

            /* Every buffer asked for an interrupt: one pin, always it. */
            g_assert_cmphex(sr & SR_BCIS, ==, SR_BCIS);
            g_assert_cmpint(ctpop32(level), ==, 1);
            if (!irq_pin) {
                irq_pin = level;
            }
            g_assert_cmphex(level, ==, irq_pin);
            ac97_ch_writew(c, NABM_SR, SR_BCIS | SR_LVBCI);
            g_assert_cmphex(ac97_ch_readw(c, NABM_SR) & (SR_BCIS | SR_LVBCI),
                            ==, 0);
            g_assert_cmphex(ac97_pirq_level(c->s), ==, 0);
        } else {
            g_assert_cmphex(sr & SR_BCIS, ==, 0);
            g_assert_cmphex(ac97_pirq_level(c->s), ==, 0);
        }
        log->completed = done;
        log->consumed_at[ms] = (uint64_t)done * samples * 2 +
            ((sr & SR_CELV) ? 0 : (samples - picb) * 2);
        log->steps = ms + 1;
        last_civ = civ;
        last_picb = picb;

        if (sr & SR_DCH) {
            g_assert_cmphex(sr & SR_CELV, ==, SR_CELV);
            g_assert_cmpint(civ, ==, nbufs - 1);
            g_assert_cmpint(picb, ==, 0);
            log->end_ms = ms;
            break;
        }
    }
}

static int16_t pattern(int i)
{
    /* Distinct and never zero, so silence cannot pass for data. */
    return (i & 1) ? -(0x1000 + i / 2 % 0x6000) : 0x1000 + i / 2 % 0x6000;
}

/*
 * PCM OUT at 48 kHz: every sample queued reaches the wav file once, in
 * order; registers and the interrupt follow the buffers; the device takes
 * data at the programmed rate.
 */
static void test_playback(void)
{
    const int nbufs = BD_COUNT;
    const uint32_t samples = RATE / 100 * 2;    /* 10 ms, stereo */
    const size_t total = nbufs * samples;
    g_autofree int16_t *pcm = g_new(int16_t, total);
    g_autofree char *wav = NULL;
    g_autofree RunLog *log = g_new0(RunLog, 1);
    Channel po;
    AC97 *s = ac97_start_wav("");
    uint64_t rate_lo, rate_hi, measured;
    const int from_ms = 50, to_ms = 250;
    gsize len;
    size_t i;

    for (i = 0; i < total; i++) {
        pcm[i] = cpu_to_le16(pattern(i));
    }
    ac97_codec_init(s, NAM_FRONT_DAC_RATE, RATE);
    qtest_memwrite(s->qts, GUEST_PCM, pcm, total * 2);
    ac97_bdl_write(s, GUEST_BDL, GUEST_PCM, nbufs, samples);

    po = (Channel) { s, NABM_PO };
    ac97_channel_run(&po, GUEST_BDL, nbufs - 1);
    channel_watch(&po, nbufs, samples, 1000, log);

    g_assert_cmpint(log->end_ms, >=, 0);
    g_assert_cmpint(log->completed, ==, nbufs);
    g_assert_cmphex(ac97_ch_readw(&po, NABM_SR) & (SR_DCH | SR_CELV), ==,
                    SR_DCH | SR_CELV);

    /*
     * Rate, after the first fill of the backend's buffer: what the device
     * took over 200 ms matches 48 kHz within one audio timer period.
     */
    g_assert_cmpint(log->steps, >, to_ms);
    measured = log->consumed_at[to_ms] - log->consumed_at[from_ms];
    rate_lo = (uint64_t)(to_ms - from_ms - TIMER_PERIOD_MS) * BYTES_PER_MS;
    rate_hi = (uint64_t)(to_ms - from_ms + TIMER_PERIOD_MS) * BYTES_PER_MS;
    if (g_test_verbose()) {
        g_test_message("took %" PRIu64 " bytes in %d ms (nominal %d)",
                       measured, to_ms - from_ms,
                       (to_ms - from_ms) * BYTES_PER_MS);
    }
    g_assert_cmpuint(measured, >=, rate_lo);
    g_assert_cmpuint(measured, <=, rate_hi);

    /* Let the backend drain what it holds, then close the file. */
    qtest_clock_step(s->qts, 200 * MS);
    qtest_quit(s->qts);
    s->qts = NULL;

    g_assert_true(g_file_get_contents(s->wav_path, &wav, &len, NULL));
    g_assert_cmpuint(len, >=, 44 + total * 2);
    g_assert_cmpmem(wav, 4, "RIFF", 4);
    g_assert_cmpmem(wav + 8, 8, "WAVEfmt ", 8);
    g_assert_cmpint(le16_to_cpu(*(uint16_t *)(wav + 22)), ==, 2);
    g_assert_cmpint(le32_to_cpu(*(uint32_t *)(wav + 24)), ==, RATE);
    g_assert_cmpint(le16_to_cpu(*(uint16_t *)(wav + 34)), ==, 16);
    g_assert_cmpmem(wav + 36, 4, "data", 4);
    g_assert_cmpuint(le32_to_cpu(*(uint32_t *)(wav + 40)), ==, len - 44);

    /* Exactly the queued samples, then the silence of a stopped DMA. */
    g_assert_cmpmem(wav + 44, total * 2, pcm, total * 2);
    for (i = 44 + total * 2; i < len; i++) {
        g_assert_cmpint(wav[i], ==, 0);
    }
    ac97_stop(s);
}

/* PCM IN: the device writes what the backend captured into the buffers. */
static void test_capture(void)
{
    const int nbufs = 4;
    const uint32_t samples = RATE / 100 * 2;
    const size_t bytes = nbufs * samples * 2;
    g_autofree uint8_t *mem = g_malloc(bytes);
    g_autofree RunLog *log = g_new0(RunLog, 1);
    Channel pi;
    AC97 *s;
    size_t i;

    /* "none" captures silence at the nominal rate. */
    s = ac97_start("none", "");
    ac97_codec_init(s, NAM_LR_ADC_RATE, RATE);
    memset(mem, 0xa5, bytes);
    qtest_memwrite(s->qts, GUEST_PCM, mem, bytes);
    ac97_bdl_write(s, GUEST_BDL, GUEST_PCM, nbufs, samples);

    pi = (Channel) { s, NABM_PI };
    ac97_channel_run(&pi, GUEST_BDL, nbufs - 1);
    channel_watch(&pi, nbufs, samples, 500, log);
    g_assert_cmpint(log->completed, ==, nbufs);
    g_assert_cmpint(log->end_ms, >=, 0);

    qtest_memread(s->qts, GUEST_PCM, mem, bytes);
    for (i = 0; i < bytes; i++) {
        g_assert_cmpint(mem[i], ==, 0);
    }
    ac97_stop(s);
}

static void assert_alive(AC97 *s)
{
    g_assert_true(qtest_probe_child(s->qts));
    g_assert_cmphex(ac97_nam_read(s, NAM_VENDOR_ID1), ==, AC97_VENDOR_SIGMATEL);
}

/* All 32 descriptors empty: the device walks them and stops, no spin. */
static void test_bad_zero_length(void)
{
    AC97 *s = ac97_start_wav("");
    Channel po = { s, NABM_PO };

    ac97_codec_init(s, NAM_FRONT_DAC_RATE, RATE);
    ac97_bdl_write(s, GUEST_BDL, GUEST_PCM, BD_COUNT, 0);
    ac97_channel_run(&po, GUEST_BDL, BD_COUNT - 1);
    qtest_clock_step(s->qts, 1000 * MS);
    assert_alive(s);
    g_assert_cmpint(ac97_ch_readb(&po, NABM_CIV), ==, BD_COUNT - 1);
    g_assert_cmphex(ac97_ch_readw(&po, NABM_SR) & SR_DCH, ==, SR_DCH);
    ac97_stop(s);
}

/* LVI = CIV from the start: one buffer, then the end-of-list state. */
static void test_bad_lvi_equals_civ(void)
{
    AC97 *s = ac97_start_wav("");
    Channel po = { s, NABM_PO };
    uint16_t sr;

    ac97_codec_init(s, NAM_FRONT_DAC_RATE, RATE);
    ac97_bdl_write(s, GUEST_BDL, GUEST_PCM, 1, 480 * 2);
    ac97_channel_run(&po, GUEST_BDL, 0);
    qtest_clock_step(s->qts, 100 * MS);
    assert_alive(s);
    sr = ac97_ch_readw(&po, NABM_SR);
    g_assert_cmphex(sr & (SR_DCH | SR_CELV | SR_LVBCI), ==,
                    SR_DCH | SR_CELV | SR_LVBCI);
    g_assert_cmpint(ac97_ch_readb(&po, NABM_CIV), ==, 0);

    /* Restarting with the list still exhausted changes nothing. */
    ac97_ch_writew(&po, NABM_SR, SR_LVBCI | SR_BCIS);
    ac97_ch_writeb(&po, NABM_LVI, 0);
    qtest_clock_step(s->qts, 100 * MS);
    assert_alive(s);
    ac97_stop(s);
}

/* Descriptor list and PCM buffers outside guest RAM: no crash, no hang. */
static void test_bad_outside_ram(void)
{
    const uint64_t nowhere = 0x7fff0000;   /* above -m 128M, below PCI */
    AC97 *s = ac97_start_wav("");
    Channel po = { s, NABM_PO };
    Channel pi = { s, NABM_PI };

    ac97_codec_init(s, NAM_FRONT_DAC_RATE, RATE);
    ac97_bdl_write(s, GUEST_BDL, nowhere, BD_COUNT, 480 * 2);
    ac97_channel_run(&po, GUEST_BDL, BD_COUNT - 1);
    ac97_channel_run(&pi, nowhere, BD_COUNT - 1);
    qtest_clock_step(s->qts, 500 * MS);
    assert_alive(s);
    g_assert_cmpint(ac97_ch_readb(&po, NABM_CIV), >, 0);

    ac97_ch_writeb(&po, NABM_CR, CR_RR);
    ac97_ch_writeb(&pi, NABM_CR, CR_RR);
    g_assert_cmpint(ac97_ch_readb(&po, NABM_CIV), ==, 0);
    assert_alive(s);
    ac97_stop(s);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);

    qtest_add_func("/ac97/dma/playback", test_playback);
    qtest_add_func("/ac97/dma/capture", test_capture);
    qtest_add_func("/ac97/dma/bad-guest/zero-length", test_bad_zero_length);
    qtest_add_func("/ac97/dma/bad-guest/lvi-equals-civ",
                   test_bad_lvi_equals_civ);
    qtest_add_func("/ac97/dma/bad-guest/outside-ram", test_bad_outside_ram);

    return g_test_run();
}
