/*
 * QTest: AC97 programmed as a guest driver programs it
 *
 * Copyright (c) 2026 qemu-vfio-audio developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/bswap.h"
#include "ac97-guest.h"
#include "pcm-counter.h"

AC97 *ac97_start(const char *audiodev, const char *device_opts)
{
    AC97 *s = g_new0(AC97, 1);

    QTestState *qts = qtest_initf("-M q35 -nodefaults -audiodev %s,id=snd0 "
                                  "-device AC97,audiodev=snd0,addr=04.0%s",
                                  audiodev, device_opts);

    ac97_attach(s, qts, qpci_new_pc(qts, NULL));
    qtest_irq_intercept_in(s->qts, "ioapic");
    return s;
}

void ac97_attach(AC97 *s, QTestState *qts, QPCIBus *bus)
{
    s->qts = qts;
    s->bus = bus;
    s->dev = qpci_device_find(bus, AC97_DEVFN);
    g_assert_nonnull(s->dev);
    qpci_device_enable(s->dev);
    s->nam = qpci_iomap(s->dev, 0, NULL);
    s->nabm = qpci_iomap(s->dev, 1, NULL);
}

AC97 *ac97_start_wav(const char *device_opts)
{
    char *path = NULL;
    g_autofree char *opts = pcm_counter_wav_backend("ac97-dma-test", RATE,
                                                    &path);
    AC97 *s = ac97_start(opts, device_opts);

    s->wav_path = path;
    return s;
}

void ac97_stop(AC97 *s)
{
    g_free(s->dev);
    qpci_free_pc(s->bus);
    if (s->qts) {
        qtest_quit(s->qts);
    }
    pcm_counter_wav_remove(s->wav_path);
    g_free(s);
}

void ac97_nam_write(AC97 *s, uint64_t reg, uint16_t val)
{
    qpci_io_writew(s->dev, s->nam, reg, val);
}

uint16_t ac97_nam_read(AC97 *s, uint64_t reg)
{
    return qpci_io_readw(s->dev, s->nam, reg);
}

/* Codec reset, full volume (no attenuation in the mixer), VRA at @rate. */
void ac97_codec_init(AC97 *s, uint16_t rate_reg, int rate)
{
    ac97_nam_write(s, NAM_RESET, 0);
    g_assert_cmphex(ac97_nam_read(s, NAM_VENDOR_ID1), ==, AC97_VENDOR_SIGMATEL);
    ac97_nam_write(s, NAM_MASTER_VOL, 0x0000);
    ac97_nam_write(s, NAM_PCM_OUT_VOL, 0x0000);
    ac97_nam_write(s, NAM_EXT_AUDIO_CTRL,
              ac97_nam_read(s, NAM_EXT_AUDIO_CTRL) | EACS_VRA);
    ac97_nam_write(s, rate_reg, rate);
    g_assert_cmpint(ac97_nam_read(s, rate_reg), ==, rate);
}


uint8_t ac97_ch_readb(Channel *c, uint64_t reg)
{
    return qpci_io_readb(c->s->dev, c->s->nabm, c->base + reg);
}

uint16_t ac97_ch_readw(Channel *c, uint64_t reg)
{
    return qpci_io_readw(c->s->dev, c->s->nabm, c->base + reg);
}

void ac97_ch_writeb(Channel *c, uint64_t reg, uint8_t val)
{
    qpci_io_writeb(c->s->dev, c->s->nabm, c->base + reg, val);
}

void ac97_ch_writew(Channel *c, uint64_t reg, uint16_t val)
{
    qpci_io_writew(c->s->dev, c->s->nabm, c->base + reg, val);
}

/*
 * Fill the descriptor list: @n buffers of @samples 16-bit samples each,
 * back to back from @pcm, every one asking for a completion interrupt.
 */
void ac97_bdl_write(AC97 *s, uint64_t bdl, uint64_t pcm, int n,
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

void ac97_channel_run(Channel *c, uint64_t bdl, uint8_t lvi)
{
    qpci_io_writel(c->s->dev, c->s->nabm, c->base + NABM_BDBAR, bdl);
    ac97_ch_writeb(c, NABM_LVI, lvi);
    ac97_ch_writeb(c, NABM_CR, CR_RPBM | CR_IOCE | CR_LVBIE);
}

/* Bit mask of the asserted IOAPIC pins that PCI INTx can reach. */
uint32_t ac97_pirq_level(AC97 *s)
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
