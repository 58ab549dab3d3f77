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
#include "libqtest.h"
#include "libqos/pci-pc.h"
#include "qemu/bswap.h"
#include "qemu/host-utils.h"

/* Native audio mixer (BAR0) */
#define NAM_RESET           0x00
#define NAM_MASTER_VOL      0x02
#define NAM_PCM_OUT_VOL     0x18
#define NAM_EXT_AUDIO_CTRL  0x2a
#define NAM_FRONT_DAC_RATE  0x2c
#define NAM_LR_ADC_RATE     0x32
#define NAM_VENDOR_ID1      0x7c

#define EACS_VRA            0x01

/* Native audio bus master (BAR1), per channel */
#define NABM_PI             0x00
#define NABM_PO             0x10
#define NABM_BDBAR          0x00
#define NABM_CIV            0x04
#define NABM_LVI            0x05
#define NABM_SR             0x06
#define NABM_PICB           0x08
#define NABM_PIV            0x0a
#define NABM_CR             0x0b

#define SR_DCH              0x01
#define SR_CELV             0x02
#define SR_LVBCI            0x04
#define SR_BCIS             0x08

#define CR_RPBM             0x01
#define CR_RR               0x02
#define CR_LVBIE            0x04
#define CR_IOCE             0x10

#define BD_IOC              (1u << 31)
#define BD_COUNT            32

#define AC97_DEVFN          QPCI_DEVFN(4, 0)
#define AC97_VENDOR_SIGMATEL 0x8384

/* q35's ICH9 wires PCI INTx to IOAPIC pins 16..23 (PIRQA..H) */
#define IOAPIC_PIRQ_FIRST   16
#define IOAPIC_PIRQ_LAST    23

/* Guest memory layout: descriptor list, then the PCM buffers */
#define GUEST_BDL           0x100000
#define GUEST_PCM           0x110000

#define RATE                48000
#define FRAME_BYTES         4                       /* s16 stereo */
#define MS                  (1000 * 1000)           /* ns */
#define TIMER_PERIOD_MS     10                      /* audio layer default */
#define BYTES_PER_MS        (RATE / 1000 * FRAME_BYTES)

typedef struct AC97 {
    QTestState *qts;
    QPCIBus *bus;
    QPCIDevice *dev;
    QPCIBar nam;
    QPCIBar nabm;
    char *wav_path;
} AC97;

static AC97 *ac97_start(const char *audiodev)
{
    AC97 *s = g_new0(AC97, 1);

    s->qts = qtest_initf("-M q35 -nodefaults -audiodev %s,id=snd0 "
                         "-device AC97,audiodev=snd0,addr=04.0", audiodev);
    s->bus = qpci_new_pc(s->qts, NULL);
    s->dev = qpci_device_find(s->bus, AC97_DEVFN);
    g_assert_nonnull(s->dev);
    qpci_device_enable(s->dev);
    s->nam = qpci_iomap(s->dev, 0, NULL);
    s->nabm = qpci_iomap(s->dev, 1, NULL);
    qtest_irq_intercept_in(s->qts, "ioapic");
    return s;
}

static AC97 *ac97_start_wav(void)
{
    g_autofree char *opts = NULL;
    char *path = NULL;
    int fd = g_file_open_tmp("ac97-dma-test-XXXXXX.wav", &path, NULL);
    AC97 *s;

    g_assert_cmpint(fd, >=, 0);
    close(fd);
    /* The wav backend at the guest's rate: no resampling in the way. */
    opts = g_strdup_printf("wav,path=%s,out.frequency=%d", path, RATE);
    s = ac97_start(opts);
    s->wav_path = path;
    return s;
}

static void ac97_stop(AC97 *s)
{
    g_free(s->dev);
    qpci_free_pc(s->bus);
    if (s->qts) {
        qtest_quit(s->qts);
    }
    if (s->wav_path) {
        unlink(s->wav_path);
        g_free(s->wav_path);
    }
    g_free(s);
}

static void nam_write(AC97 *s, uint64_t reg, uint16_t val)
{
    qpci_io_writew(s->dev, s->nam, reg, val);
}

static uint16_t nam_read(AC97 *s, uint64_t reg)
{
    return qpci_io_readw(s->dev, s->nam, reg);
}

/* Codec reset, full volume (no attenuation in the mixer), VRA at @rate. */
static void codec_init(AC97 *s, uint16_t rate_reg, int rate)
{
    nam_write(s, NAM_RESET, 0);
    g_assert_cmphex(nam_read(s, NAM_VENDOR_ID1), ==, AC97_VENDOR_SIGMATEL);
    nam_write(s, NAM_MASTER_VOL, 0x0000);
    nam_write(s, NAM_PCM_OUT_VOL, 0x0000);
    nam_write(s, NAM_EXT_AUDIO_CTRL,
              nam_read(s, NAM_EXT_AUDIO_CTRL) | EACS_VRA);
    nam_write(s, rate_reg, rate);
    g_assert_cmpint(nam_read(s, rate_reg), ==, rate);
}

typedef struct Channel {
    AC97 *s;
    uint64_t base;
} Channel;

static uint8_t ch_readb(Channel *c, uint64_t reg)
{
    return qpci_io_readb(c->s->dev, c->s->nabm, c->base + reg);
}

static uint16_t ch_readw(Channel *c, uint64_t reg)
{
    return qpci_io_readw(c->s->dev, c->s->nabm, c->base + reg);
}

static void ch_writeb(Channel *c, uint64_t reg, uint8_t val)
{
    qpci_io_writeb(c->s->dev, c->s->nabm, c->base + reg, val);
}

static void ch_writew(Channel *c, uint64_t reg, uint16_t val)
{
    qpci_io_writew(c->s->dev, c->s->nabm, c->base + reg, val);
}

/*
 * Fill the descriptor list: @n buffers of @samples 16-bit samples each,
 * back to back from @pcm, every one asking for a completion interrupt.
 */
static void bdl_write(AC97 *s, uint64_t bdl, uint64_t pcm, int n,
                      uint32_t samples)
{
    uint32_t desc[BD_COUNT * 2];
    int i;

    g_assert_cmpint(n, <=, BD_COUNT);
    for (i = 0; i < n; i++) {
        desc[i * 2] = cpu_to_le32(pcm + i * samples * 2);
        desc[i * 2 + 1] = cpu_to_le32(BD_IOC | samples);
    }
    qtest_memwrite(s->qts, bdl, desc, n * 8);
}

static void channel_run(Channel *c, uint64_t bdl, uint8_t lvi)
{
    qpci_io_writel(c->s->dev, c->s->nabm, c->base + NABM_BDBAR, bdl);
    ch_writeb(c, NABM_LVI, lvi);
    ch_writeb(c, NABM_CR, CR_RPBM | CR_IOCE | CR_LVBIE);
}

/* Bit mask of the asserted IOAPIC pins that PCI INTx can reach. */
static uint32_t pirq_level(AC97 *s)
{
    uint32_t mask = 0;
    int pin;

    for (pin = IOAPIC_PIRQ_FIRST; pin <= IOAPIC_PIRQ_LAST; pin++) {
        if (qtest_get_irq(s->qts, pin)) {
            mask |= 1u << pin;
        }
    }
    return mask;
}

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
    g_assert_cmpint(ch_readb(c, NABM_CIV), ==, 0);
    g_assert_cmpint(ch_readw(c, NABM_PICB), ==, samples);
    g_assert_cmpint(ch_readb(c, NABM_PIV), ==, 1);

    for (ms = 0; ms < max_ms && ms < (int)G_N_ELEMENTS(log->consumed_at);
         ms++) {
        uint16_t sr, picb;
        uint8_t civ;
        int done;

        qtest_clock_step(c->s->qts, MS);
        sr = ch_readw(c, NABM_SR);
        civ = ch_readb(c, NABM_CIV);
        picb = ch_readw(c, NABM_PICB);

        /* CIV walks the list once; it stays on LVI once that is done. */
        g_assert_cmpint(civ, >=, last_civ);
        g_assert_cmpint(civ, <, nbufs);
        g_assert_cmpint(ch_readb(c, NABM_PIV), ==, (civ + 1) % BD_COUNT);
        g_assert_cmpint(ch_readb(c, NABM_LVI), ==, nbufs - 1);
        done = civ + !!(sr & SR_CELV);
        if (civ == last_civ && !(sr & SR_CELV)) {
            g_assert_cmpint(picb, <=, last_picb);
        }

        if (done > log->completed) {
            uint32_t level = pirq_level(c->s);

            /* Every buffer asked for an interrupt: one pin, always it. */
            g_assert_cmphex(sr & SR_BCIS, ==, SR_BCIS);
            g_assert_cmpint(ctpop32(level), ==, 1);
            if (!irq_pin) {
                irq_pin = level;
            }
            g_assert_cmphex(level, ==, irq_pin);
            ch_writew(c, NABM_SR, SR_BCIS | SR_LVBCI);
            g_assert_cmphex(ch_readw(c, NABM_SR) & (SR_BCIS | SR_LVBCI),
                            ==, 0);
            g_assert_cmphex(pirq_level(c->s), ==, 0);
        } else {
            g_assert_cmphex(sr & SR_BCIS, ==, 0);
            g_assert_cmphex(pirq_level(c->s), ==, 0);
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
    AC97 *s = ac97_start_wav();
    uint64_t rate_lo, rate_hi, measured;
    const int from_ms = 50, to_ms = 250;
    gsize len;
    size_t i;

    for (i = 0; i < total; i++) {
        pcm[i] = cpu_to_le16(pattern(i));
    }
    codec_init(s, NAM_FRONT_DAC_RATE, RATE);
    qtest_memwrite(s->qts, GUEST_PCM, pcm, total * 2);
    bdl_write(s, GUEST_BDL, GUEST_PCM, nbufs, samples);

    po = (Channel) { s, NABM_PO };
    channel_run(&po, GUEST_BDL, nbufs - 1);
    channel_watch(&po, nbufs, samples, 1000, log);

    g_assert_cmpint(log->end_ms, >=, 0);
    g_assert_cmpint(log->completed, ==, nbufs);
    g_assert_cmphex(ch_readw(&po, NABM_SR) & (SR_DCH | SR_CELV), ==,
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
    s = ac97_start("none");
    codec_init(s, NAM_LR_ADC_RATE, RATE);
    memset(mem, 0xa5, bytes);
    qtest_memwrite(s->qts, GUEST_PCM, mem, bytes);
    bdl_write(s, GUEST_BDL, GUEST_PCM, nbufs, samples);

    pi = (Channel) { s, NABM_PI };
    channel_run(&pi, GUEST_BDL, nbufs - 1);
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
    g_assert_cmphex(nam_read(s, NAM_VENDOR_ID1), ==, AC97_VENDOR_SIGMATEL);
}

/* All 32 descriptors empty: the device walks them and stops, no spin. */
static void test_bad_zero_length(void)
{
    AC97 *s = ac97_start_wav();
    Channel po = { s, NABM_PO };

    codec_init(s, NAM_FRONT_DAC_RATE, RATE);
    bdl_write(s, GUEST_BDL, GUEST_PCM, BD_COUNT, 0);
    channel_run(&po, GUEST_BDL, BD_COUNT - 1);
    qtest_clock_step(s->qts, 1000 * MS);
    assert_alive(s);
    g_assert_cmpint(ch_readb(&po, NABM_CIV), ==, BD_COUNT - 1);
    g_assert_cmphex(ch_readw(&po, NABM_SR) & SR_DCH, ==, SR_DCH);
    ac97_stop(s);
}

/* LVI = CIV from the start: one buffer, then the end-of-list state. */
static void test_bad_lvi_equals_civ(void)
{
    AC97 *s = ac97_start_wav();
    Channel po = { s, NABM_PO };
    uint16_t sr;

    codec_init(s, NAM_FRONT_DAC_RATE, RATE);
    bdl_write(s, GUEST_BDL, GUEST_PCM, 1, 480 * 2);
    channel_run(&po, GUEST_BDL, 0);
    qtest_clock_step(s->qts, 100 * MS);
    assert_alive(s);
    sr = ch_readw(&po, NABM_SR);
    g_assert_cmphex(sr & (SR_DCH | SR_CELV | SR_LVBCI), ==,
                    SR_DCH | SR_CELV | SR_LVBCI);
    g_assert_cmpint(ch_readb(&po, NABM_CIV), ==, 0);

    /* Restarting with the list still exhausted changes nothing. */
    ch_writew(&po, NABM_SR, SR_LVBCI | SR_BCIS);
    ch_writeb(&po, NABM_LVI, 0);
    qtest_clock_step(s->qts, 100 * MS);
    assert_alive(s);
    ac97_stop(s);
}

/* Descriptor list and PCM buffers outside guest RAM: no crash, no hang. */
static void test_bad_outside_ram(void)
{
    const uint64_t nowhere = 0x7fff0000;   /* above -m 128M, below PCI */
    AC97 *s = ac97_start_wav();
    Channel po = { s, NABM_PO };
    Channel pi = { s, NABM_PI };

    codec_init(s, NAM_FRONT_DAC_RATE, RATE);
    bdl_write(s, GUEST_BDL, nowhere, BD_COUNT, 480 * 2);
    channel_run(&po, GUEST_BDL, BD_COUNT - 1);
    channel_run(&pi, nowhere, BD_COUNT - 1);
    qtest_clock_step(s->qts, 500 * MS);
    assert_alive(s);
    g_assert_cmpint(ch_readb(&po, NABM_CIV), >, 0);

    ch_writeb(&po, NABM_CR, CR_RR);
    ch_writeb(&pi, NABM_CR, CR_RR);
    g_assert_cmpint(ch_readb(&po, NABM_CIV), ==, 0);
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
