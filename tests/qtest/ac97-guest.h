/*
 * QTest: AC97 programmed as a guest driver programs it
 *
 * Shared by the AC97 qtests: the device on q35 at 00:04.0, its codec and
 * bus-master registers, descriptor lists in guest memory, and the IOAPIC
 * pins PCI INTx reaches.
 *
 * Copyright (c) 2026 qemu-vfio-audio developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef QTEST_AC97_GUEST_H
#define QTEST_AC97_GUEST_H

#include "libqtest.h"
#include "libqos/pci-pc.h"

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

typedef struct Channel {
    AC97 *s;
    uint64_t base;
} Channel;

/* q35 with AC97 at 00:04.0 on @audiodev (without id=), plus @device_opts. */
AC97 *ac97_start(const char *audiodev, const char *device_opts);
/* The same on a wav backend at 48 kHz, writing to s->wav_path. */
AC97 *ac97_start_wav(const char *device_opts);
void ac97_stop(AC97 *s);
/* The card at 00:04.0 of @bus, enabled, its BARs mapped (no qtest_init). */
void ac97_attach(AC97 *s, QTestState *qts, QPCIBus *bus);

void ac97_nam_write(AC97 *s, uint64_t reg, uint16_t val);
uint16_t ac97_nam_read(AC97 *s, uint64_t reg);
/* Codec reset, full volume (no attenuation in the mixer), VRA at @rate. */
void ac97_codec_init(AC97 *s, uint16_t rate_reg, int rate);

uint8_t ac97_ch_readb(Channel *c, uint64_t reg);
uint16_t ac97_ch_readw(Channel *c, uint64_t reg);
void ac97_ch_writeb(Channel *c, uint64_t reg, uint8_t val);
void ac97_ch_writew(Channel *c, uint64_t reg, uint16_t val);

/* @n descriptors of @samples 16-bit samples from @pcm, each with IOC. */
void ac97_bdl_write(AC97 *s, uint64_t bdl, uint64_t pcm, int n,
                    uint32_t samples);
/* BDBAR, LVI, then run with every interrupt enabled. */
void ac97_channel_run(Channel *c, uint64_t bdl, uint8_t lvi);
/* Bit mask of the asserted IOAPIC pins that PCI INTx can reach. */
uint32_t ac97_pirq_level(AC97 *s);

#endif
