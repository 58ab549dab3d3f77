/*
 * QTest: Intel HDA programmed as a guest driver programs it
 *
 * Copyright (c) 2026 qemu-vfio-audio developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/bswap.h"
#include "hda-guest.h"
#include "pcm-counter.h"

HDA *hda_start(const char *audiodev, const char *codec,
               const char *codec_opts)
{
    HDA *s = g_new0(HDA, 1);

    QTestState *qts = qtest_initf("-M q35 -nodefaults -audiodev %s,id=snd0 "
                                  "-device ich9-intel-hda,addr=1b.0 "
                                  "-device %s,audiodev=snd0%s", audiodev,
                                  codec, codec_opts);

    hda_attach(s, qts, qpci_new_pc(qts, NULL));
    return s;
}

void hda_attach(HDA *s, QTestState *qts, QPCIBus *bus)
{
    s->qts = qts;
    s->bus = bus;
    s->dev = qpci_device_find(bus, HDA_DEVFN);
    g_assert_nonnull(s->dev);
    qpci_device_enable(s->dev);
    s->bar = qpci_iomap(s->dev, 0, NULL);
}

void hda_stop(HDA *s)
{
    g_free(s->dev);
    qpci_free_pc(s->bus);
    if (s->qts) {
        qtest_quit(s->qts);
    }
    pcm_counter_wav_remove(s->wav_path);
    g_free(s);
}

void hda_writeb(HDA *s, uint64_t reg, uint8_t v)
{
    qpci_io_writeb(s->dev, s->bar, reg, v);
}

void hda_writew(HDA *s, uint64_t reg, uint16_t v)
{
    qpci_io_writew(s->dev, s->bar, reg, v);
}

void hda_writel(HDA *s, uint64_t reg, uint32_t v)
{
    qpci_io_writel(s->dev, s->bar, reg, v);
}

uint8_t hda_readb(HDA *s, uint64_t reg)
{
    return qpci_io_readb(s->dev, s->bar, reg);
}

uint32_t hda_readl(HDA *s, uint64_t reg)
{
    return qpci_io_readl(s->dev, s->bar, reg);
}

void hda_controller_init(HDA *s)
{
    hda_writel(s, GCTL, GCTL_CRST);
    g_assert_cmphex(hda_readl(s, GCTL) & GCTL_CRST, ==, GCTL_CRST);
    hda_writel(s, CORBLBASE, GUEST_CORB);
    hda_writel(s, CORBUBASE, 0);
    hda_writel(s, RIRBLBASE, GUEST_RIRB);
    hda_writel(s, RIRBUBASE, 0);
    hda_writew(s, RINTCNT, 0xff);
    hda_writeb(s, RIRBCTL, RIRBCTL_DMA);
    hda_writeb(s, CORBCTL, CORBCTL_RUN);
    hda_writel(s, DPLBASE, GUEST_DP | 1);
    hda_writel(s, DPUBASE, 0);
}

void hda_verb(HDA *s, uint32_t nid, uint32_t verb, uint32_t payload)
{
    uint32_t cmd = nid << 20 | payload;

    cmd |= verb > 0xf ? verb << 8 : verb << 16;
    s->corb_wp++;
    qtest_writel(s->qts, GUEST_CORB + 4 * s->corb_wp, cmd);
    hda_writew(s, CORBWP, s->corb_wp);
}

void hda_bdl_write(HDA *s, uint64_t pcm, int n, uint32_t bytes)
{
    uint32_t e[BD_COUNT * 4];
    int i;

    for (i = 0; i < n; i++) {
        e[4 * i] = cpu_to_le32(pcm + i * bytes);
        e[4 * i + 1] = 0;
        e[4 * i + 2] = cpu_to_le32(bytes);
        e[4 * i + 3] = cpu_to_le32(1);
    }
    qtest_memwrite(s->qts, GUEST_BDL, e, n * 16);
}

void hda_stream_run(HDA *s, uint64_t sd, uint32_t nid, uint16_t fmt,
                    int nbufs, uint32_t bytes)
{
    hda_verb(s, nid, VERB_SET_FORMAT, fmt);
    hda_verb(s, nid, VERB_SET_STREAM, STREAM_TAG << 4);
    hda_writel(s, sd + SD_CTL, SD_CTL_SRST);
    hda_writel(s, sd + SD_CTL, 0);
    hda_writel(s, sd + SD_CBL, nbufs * bytes);
    hda_writew(s, sd + SD_LVI, nbufs - 1);
    hda_writew(s, sd + SD_FMT, fmt);
    hda_writel(s, sd + SD_BDPL, GUEST_BDL);
    hda_writel(s, sd + SD_BDPU, 0);
    hda_writel(s, sd + SD_CTL, STREAM_TAG << 20 | SD_CTL_IOCE | SD_CTL_RUN);
}

void hda_stream_stop(HDA *s, uint64_t sd)
{
    hda_writel(s, sd + SD_CTL, STREAM_TAG << 20 | SD_CTL_IOCE);
}
