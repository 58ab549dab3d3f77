/*
 * Fuzzing the sound cards' pacing: clock jumps and a backend's room
 *
 * Upstream's generic-fuzz steps the virtual clock only to the next timer,
 * and with pacing on that is always the stream's 1 ms tick: QEMU never
 * stalls there, and the "none" backend always has room.  The pacing's
 * stall, late-drop, overflow and steering paths are never reached.  Here
 * the fuzzer chooses how long QEMU stalls (qtest's clock_stall: the clock
 * jumps, then each due timer runs once, late), how much the backend takes
 * or gives and whether it asks to be kept full (tests/qtest/fuzz/
 * fuzz_audio.c), on top of register accesses and guest memory as a
 * guest would write them.
 *
 * An input starts a stream or two as a driver would, with the format the
 * fuzzer picks, then runs its commands.  Each input runs in a child of
 * the fuzzer's process, as generic-fuzz's do, so no state leaks between
 * inputs.  An input that runs longer than QEMU_FUZZ_TIMEOUT (us; 10 s by
 * default) is a hang and aborts, so libFuzzer keeps it as a crash:
 * libFuzzer's own -timeout cannot fire, since QEMU blocks SIGALRM, and
 * generic-fuzz's timeout ends such an input silently.
 * QEMU_FUZZ_EXTRA_ARGS adds to QEMU's command line (-trace audio_pacing_*
 * shows which of the pacing's rules a corpus reaches).
 *
 *   header  flags (1: play, 2: capture, 4: keep full, 8: room to start
 *           with), format (2 bytes: AC97's rate or HDA's SD_FMT), buffer
 *           size (1 byte, in 64-byte units)
 *   then    an opcode and its operands, until the input runs out:
 *           WRITE  size, offset (2), value (4)   a register
 *           READ   size, offset (2)
 *           MEM    offset (2), length, bytes      guest memory by the BDL
 *           STALL  shift, count (2)               for count << shift ns
 *           STEP                                  to the next timer
 *           RUN    ms                             every timer on the way
 *           ROOM   bytes / 4 (2)                  backend takes this much
 *           AVAIL  bytes / 4 (2)                  backend has this to give
 *           FULL   on                             keep-full on or off
 *
 * Copyright (c) 2026 qemu-vfio-audio developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "tests/qtest/libqtest.h"
#include "tests/qtest/libqos/pci-pc.h"
#include "tests/qtest/ac97-guest.h"
#include "tests/qtest/hda-guest.h"
#include "fuzz.h"
#include "fork_fuzz.h"
#include "fuzz_audio.h"

enum {
    FLAG_PLAY = 1,
    FLAG_CAPTURE = 2,
    FLAG_KEEP_FULL = 4,
    FLAG_ROOM = 8,
};

enum {
    OP_WRITE,
    OP_READ,
    OP_MEM,
    OP_STALL,
    OP_STEP,
    OP_RUN,
    OP_ROOM,
    OP_AVAIL,
    OP_FULL,
    OP_COUNT
};

#define HEADER_BYTES    4
#define MEM_WINDOW      0x20000         /* from GUEST_BDL: BDLs and PCM */
#define STALL_SHIFT_MAX 36              /* up to ~26 days at once */
#define RUN_MS_MAX      64              /* a tick a ms: keeps inputs fast */
#define TIMEOUT_US      (10 * 1000 * 1000)
#define ROOM_TO_START   (256 * 1024)

typedef struct Card {
    const char *name;
    const char *args;
    void (*find)(QTestState *s, QPCIBus *bus);
    void (*start)(uint8_t flags, uint16_t format, uint32_t bytes);
    void (*write)(int size, uint16_t offset, uint32_t value);
    void (*read)(int size, uint16_t offset);
} Card;

static const Card *card;
static AC97 ac97;
static HDA hda;

/* --- AC97: codec registers (BAR0), then bus master (BAR1) --------------- */

#define AC97_NAM_SIZE   0x100
#define AC97_NABM_SIZE  0x40

static void ac97_find(QTestState *s, QPCIBus *bus)
{
    ac97_attach(&ac97, s, bus);
}

static void ac97_run(uint64_t base, uint16_t rate_reg, uint16_t rate,
                     uint64_t bdl, uint64_t pcm, uint32_t bytes)
{
    Channel c = { &ac97, base };

    ac97_nam_write(&ac97, rate_reg, rate);
    ac97_bdl_write(&ac97, bdl, pcm, BD_COUNT, bytes / 2);
    ac97_channel_run(&c, bdl, BD_COUNT - 1);
}

static void ac97_fuzz_start(uint8_t flags, uint16_t format, uint32_t bytes)
{
    ac97_codec_init(&ac97, NAM_FRONT_DAC_RATE, RATE);
    if (flags & FLAG_PLAY) {
        ac97_run(NABM_PO, NAM_FRONT_DAC_RATE, format, GUEST_BDL, GUEST_PCM,
                 bytes);
    }
    if (flags & FLAG_CAPTURE) {
        ac97_run(NABM_PI, NAM_LR_ADC_RATE, format, GUEST_BDL + 0x400,
                 GUEST_PCM, bytes);
    }
}

/* Offsets with the top bit set are the bus master's (BAR1). */
static QPCIBar ac97_fuzz_bar(uint16_t *offset)
{
    bool nabm = *offset & 0x8000;

    *offset %= nabm ? AC97_NABM_SIZE : AC97_NAM_SIZE;
    return nabm ? ac97.nabm : ac97.nam;
}

static void ac97_fuzz_write(int size, uint16_t offset, uint32_t value)
{
    QPCIBar bar = ac97_fuzz_bar(&offset);

    switch (size) {
    case 0:
        qpci_io_writeb(ac97.dev, bar, offset, value);
        break;
    case 1:
        qpci_io_writew(ac97.dev, bar, offset, value);
        break;
    default:
        qpci_io_writel(ac97.dev, bar, offset, value);
        break;
    }
}

static void ac97_fuzz_read(int size, uint16_t offset)
{
    QPCIBar bar = ac97_fuzz_bar(&offset);

    switch (size) {
    case 0:
        qpci_io_readb(ac97.dev, bar, offset);
        break;
    case 1:
        qpci_io_readw(ac97.dev, bar, offset);
        break;
    default:
        qpci_io_readl(ac97.dev, bar, offset);
        break;
    }
}

/* --- Intel HDA: the controller's MMIO (BAR0), streams through its codec */

#define HDA_MMIO_SIZE   0x4000

static void hda_find(QTestState *s, QPCIBus *bus)
{
    hda_attach(&hda, s, bus);
}

static void hda_fuzz_start(uint8_t flags, uint16_t format, uint32_t bytes)
{
    hda_controller_init(&hda);
    hda_bdl_write(&hda, GUEST_PCM, BD_COUNT, bytes);
    if (flags & FLAG_PLAY) {
        hda_stream_run(&hda, SD_OUT0, NID_DAC, format, BD_COUNT, bytes);
    }
    if (flags & FLAG_CAPTURE) {
        hda_stream_run(&hda, SD_IN0, NID_ADC, format, BD_COUNT, bytes);
    }
}

static void hda_fuzz_write(int size, uint16_t offset, uint32_t value)
{
    offset %= HDA_MMIO_SIZE;
    switch (size) {
    case 0:
        hda_writeb(&hda, offset, value);
        break;
    case 1:
        hda_writew(&hda, offset, value);
        break;
    default:
        hda_writel(&hda, offset, value);
        break;
    }
}

static void hda_fuzz_read(int size, uint16_t offset)
{
    offset %= HDA_MMIO_SIZE;
    if (size == 0) {
        hda_readb(&hda, offset);
    } else {
        hda_readl(&hda, offset);
    }
}

static const Card cards[] = {
    {
        .name = "audio-pacing-ac97",
        .args = "-device AC97,audiodev=snd0,addr=04.0",
        .find = ac97_find,
        .start = ac97_fuzz_start,
        .write = ac97_fuzz_write,
        .read = ac97_fuzz_read,
    }, {
        .name = "audio-pacing-hda",
        .args = "-device ich9-intel-hda,addr=1b.0 "
                "-device hda-duplex,audiodev=snd0",
        .find = hda_find,
        .start = hda_fuzz_start,
        .write = hda_fuzz_write,
        .read = hda_fuzz_read,
    },
};

/* --- the commands ------------------------------------------------------- */

static uint16_t get16(const uint8_t *p)
{
    return p[0] | p[1] << 8;
}

static uint32_t get32(const uint8_t *p)
{
    return get16(p) | (uint32_t)get16(p + 2) << 16;
}

/* Runs one command from @d; returns the bytes it used, 0 at the end. */
static size_t run_command(QTestState *s, const uint8_t *d, size_t len)
{
    static const uint8_t operands[OP_COUNT] = {
        [OP_WRITE] = 7, [OP_READ] = 3, [OP_MEM] = 3, [OP_STALL] = 3,
        [OP_STEP] = 0, [OP_RUN] = 1, [OP_ROOM] = 2, [OP_AVAIL] = 2,
        [OP_FULL] = 1,
    };
    int op = d[0] % OP_COUNT;
    const uint8_t *a = d + 1;
    size_t used = 1 + operands[op];

    if (len < used) {
        return 0;
    }
    switch (op) {
    case OP_WRITE:
        card->write(a[0] % 3, get16(a + 1), get32(a + 3));
        break;
    case OP_READ:
        card->read(a[0] % 3, get16(a + 1));
        break;
    case OP_MEM: {
        uint32_t offset = get16(a) * 2 % MEM_WINDOW;
        size_t n = MIN(MIN(a[2], len - used), MEM_WINDOW - offset);

        qtest_memwrite(s, GUEST_BDL + offset, a + 3, n);
        used += n;
        break;
    }
    case OP_STALL:
        qtest_clock_stall(s, (int64_t)get16(a + 1) <<
                             (a[0] % (STALL_SHIFT_MAX + 1)));
        break;
    case OP_STEP:
        qtest_clock_step_next(s);
        break;
    case OP_RUN:
        qtest_clock_step(s, (int64_t)(a[0] % RUN_MS_MAX + 1) * 1000000);
        break;
    case OP_ROOM:
        fuzz_audio_set_room(get16(a) * 4);
        break;
    case OP_AVAIL:
        fuzz_audio_set_avail(get16(a) * 4);
        break;
    case OP_FULL:
        fuzz_audio_set_keep_full(a[0] & 1);
        break;
    }
    return used;
}

static void input_timeout(int sig)
{
    static const char msg[] = "audio-pacing-fuzz: the input hangs\n";

    if (write(STDERR_FILENO, msg, sizeof(msg) - 1)) {
        /* reported or not, the abort is what counts */
    }
    abort();
}

static void arm_timeout(void)
{
    const char *env = getenv("QEMU_FUZZ_TIMEOUT");
    int64_t us = env ? g_ascii_strtoll(env, NULL, 0) : TIMEOUT_US;
    struct itimerval timer = {
        .it_value = { us / G_USEC_PER_SEC, us % G_USEC_PER_SEC },
    };
    struct sigaction sa = { .sa_handler = input_timeout };
    sigset_t set;

    if (us <= 0) {
        return;
    }
    sigaction(SIGALRM, &sa, NULL);
    sigemptyset(&set);
    sigaddset(&set, SIGALRM);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    setitimer(ITIMER_REAL, &timer, NULL);
}

static void audio_pacing_fuzz(QTestState *s, const unsigned char *data,
                              size_t size)
{
    size_t used;

    if (size < HEADER_BYTES) {
        return;
    }
    if (fork() == 0) {
        uint8_t flags = data[0];

        arm_timeout();
        fuzz_audio_set_keep_full(flags & FLAG_KEEP_FULL);
        fuzz_audio_set_room(flags & FLAG_ROOM ? ROOM_TO_START : 0);
        card->start(flags, get16(data + 1), (data[3] + 1) * 64);
        flush_events(s);
        data += HEADER_BYTES;
        size -= HEADER_BYTES;
        while (size && (used = run_command(s, data, size))) {
            flush_events(s);
            data += used;
            size -= used;
        }
        _Exit(0);
    } else {
        flush_events(s);
        wait(NULL);
    }
}

/* Called first, with the target chosen: the card is this run's. */
static GString *audio_pacing_cmdline(FuzzTarget *t)
{
    GString *cmdline = g_string_new(TARGET_NAME);

    /*
     * No PIT or HPET: after a stall their timers catch up every period
     * they missed (18 Hz for a day is 1.6 million runs), which says
     * nothing about the sound card and takes minutes.
     */
    card = t->opaque;
    g_string_append_printf(cmdline, " -display none -machine q35,accel=qtest,"
                           "pit=off,hpet=off -m 64M -nodefaults "
                           "-audiodev fuzz,id=snd0 %s %s ", card->args,
                           getenv("QEMU_FUZZ_EXTRA_ARGS") ?: "");
    return cmdline;
}

static void audio_pacing_pre_fuzz(QTestState *s)
{
    QPCIBus *bus = qpci_new_pc(s, NULL);

    card->find(s, bus);
    counter_shm_init();
}

static void register_audio_pacing_targets(void)
{
    int i;

    for (i = 0; i < ARRAY_SIZE(cards); i++) {
        fuzz_add_target(&(FuzzTarget){
            .name = cards[i].name,
            .description = "The sound card's pacing, with clock jumps and "
                           "a backend whose room the fuzzer sets",
            .get_init_cmdline = audio_pacing_cmdline,
            .pre_fuzz = audio_pacing_pre_fuzz,
            .fuzz = audio_pacing_fuzz,
            .opaque = (void *)&cards[i],
        });
    }
}

fuzz_target_init(register_audio_pacing_targets);
