/*
 * QTest: Intel HDA programmed as a guest driver programs it
 *
 * Shared by the HDA qtest and the pacing fuzz target: ich9-intel-hda on
 * q35 at 00:1b.0, its controller and stream registers, CORB verbs to the
 * codec, and where the rings and buffers sit in guest memory.
 *
 * Copyright (c) 2026 qemu-vfio-audio developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef QTEST_HDA_GUEST_H
#define QTEST_HDA_GUEST_H

#include "libqtest.h"
#include "libqos/pci-pc.h"

#define HDA_DEVFN           QPCI_DEVFN(0x1b, 0)

#define GCTL                0x08
#define GCTL_CRST           0x01
#define CORBLBASE           0x40
#define CORBUBASE           0x44
#define CORBWP              0x48
#define CORBCTL             0x4c
#define CORBCTL_RUN         0x02
#define RIRBLBASE           0x50
#define RIRBUBASE           0x54
#define RINTCNT             0x5a
#define RIRBCTL             0x5c
#define RIRBCTL_DMA         0x02
#define DPLBASE             0x70
#define DPUBASE             0x74

/* Stream descriptors: ICH9 has 4 input streams, then 4 output streams. */
#define SD_IN0              0x80
#define SD_OUT0             (0x80 + 4 * 0x20)
#define SD_CTL              0x00
#define SD_STS              0x03
#define SD_LPIB             0x04
#define SD_CBL              0x08
#define SD_LVI              0x0c
#define SD_FMT              0x12
#define SD_BDPL             0x18
#define SD_BDPU             0x1c
#define SD_CTL_SRST         0x01
#define SD_CTL_RUN          0x02
#define SD_CTL_IOCE         0x04
#define SD_STS_BCIS         0x04

/* The codec's widgets (hda-codec-common.h) and verbs */
#define NID_DAC             2
#define NID_ADC             4
#define VERB_SET_STREAM     0x706
#define VERB_SET_FORMAT     0x2
#define VERB_GET_PARAM      0xf00
#define FMT_48K_S16_STEREO  0x0011
#define FMT_44K_S16_STEREO  0x4011
#define STREAM_TAG          1

/* Guest memory; the BDL and PCM where AC97's tests have theirs */
#define GUEST_BDL           0x100000
#define GUEST_CORB          0x101000
#define GUEST_RIRB          0x102000
#define GUEST_DP            0x103000
#define GUEST_PCM           0x110000

#define BD_COUNT            32

typedef struct HDA {
    QTestState *qts;
    QPCIBus *bus;
    QPCIDevice *dev;
    QPCIBar bar;
    uint8_t corb_wp;
    char *wav_path;
} HDA;

/* q35 with ich9-intel-hda at 00:1b.0 and @codec (@codec_opts) on it. */
HDA *hda_start(const char *audiodev, const char *codec,
               const char *codec_opts);
void hda_stop(HDA *s);
/* The controller at 00:1b.0 of @bus, enabled, BAR0 mapped. */
void hda_attach(HDA *s, QTestState *qts, QPCIBus *bus);

void hda_writeb(HDA *s, uint64_t reg, uint8_t v);
void hda_writew(HDA *s, uint64_t reg, uint16_t v);
void hda_writel(HDA *s, uint64_t reg, uint32_t v);
uint8_t hda_readb(HDA *s, uint64_t reg);
uint32_t hda_readl(HDA *s, uint64_t reg);

/* Controller out of reset, CORB and RIRB running, position buffer on. */
void hda_controller_init(HDA *s);
/* One verb through the CORB, for codec 0. */
void hda_verb(HDA *s, uint32_t nid, uint32_t verb, uint32_t payload);
/* @n BDL entries of @bytes each from @pcm, every one with IOC. */
void hda_bdl_write(HDA *s, uint64_t pcm, int n, uint32_t bytes);
/* Codec converter @nid and stream @sd on @fmt; run it. */
void hda_stream_run(HDA *s, uint64_t sd, uint32_t nid, uint16_t fmt,
                    int nbufs, uint32_t bytes);
void hda_stream_stop(HDA *s, uint64_t sd);

#endif
