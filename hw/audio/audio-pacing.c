/*
 * Sound cards: pacing DMA and interrupts by the sample clock
 *
 * Upstream's AC97 has no clock of its own: it copies guest memory when the
 * audio layer's timer (10 ms by default) asks for data, as much as the
 * backend has room for.  Buffer-completion interrupts then come in bursts,
 * at most 100 times a second, and a guest with 128-frame periods (2.7 ms)
 * glitches (GitLab #1076).  Upstream's HDA codec has a 1 ms timer, but
 * keeps an 8 KiB ring half full between the guest and the backend (21 ms
 * at 48 kHz) and steers that fill by jumping its clock a whole millisecond.
 *
 * Here each running stream has a timer of its own (1 ms by default) that
 * moves exactly the bytes due at the stream's sample rate, so the guest's
 * position falls or rises steadily and every interrupt comes within one
 * period of its ideal time.  A small FIFO per stream sits between the DMA
 * and the backend, which runs on its own timer; its fill level, and the
 * room the backend has left, steer the DMA pace by up to 1 % (2 % while a
 * backlog is long: see PPM_LATE_LIMIT), so a backend clock that drifts
 * neither starves nor floods the guest, nor lets the backend's buffer run
 * dry, and what waited out a stall drains.  The
 * devices (ac97.c, hda-codec.c) only say when a stream's format and state
 * change, do the DMA when asked, and call here instead of
 * AUD_write/AUD_read.
 *
 * Copyright (c) 2026 qemu-vfio-audio developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "hw/audio/audio-pacing.h"
#include "trace.h"

#define FIFO_MIN_BYTES          (64 * 1024)
#define PPM_LIMIT               10000
/*
 * A backlog longer than LATE_STEER_NS is what waited out a stall of QEMU
 * or the server.  At PPM_LIMIT, 90 ms of it take 9 s to drain, and a
 * loaded host stalls again every few seconds: the backlog reaches
 * LATE_MAX_NS and a piece is cut (bench, PulseAudio at normal priority).
 * Past LATE_STEER_NS the limit grows with the backlog, up to
 * PPM_LATE_LIMIT.  The pitch stays: the server plays the guest's own
 * samples at their rate.  What runs up to 2 % slow, and only while the
 * sound is that late, is the card's clock as the guest sees it (a player
 * that times its video by it slows down as much).
 */
#define LATE_STEER_NS           (30 * SCALE_MS)
#define PPM_LATE_LIMIT          20000
#define PPM_PER_TICK_OF_ERROR   1000
#define PPM_PER_TICK_OF_ROOM    2000
#define PERIOD_MIN_US           100
#define PERIOD_MAX_US           10000
/*
 * A backend that has taken nothing for this long (virtual time) is not
 * playing what the guest gives: a server that restarted with its sink
 * rendered ahead, a stream accepted but never started.  What waited for
 * it that long is not worth playing late when it comes back.
 */
#define IDLE_NS                 (100 * SCALE_MS)
/*
 * What waits for a backend that does take, but late (QEMU or the server
 * stalled; pipewire-pulse's graph pauses some 40 ms right after a stream
 * starts), plays late rather than not at all, and steering drains it at up
 * to PPM_LIMIT: 100 ms in 10 s.  Beyond that, it is not worth playing.
 */
#define LATE_MAX_NS             (100 * SCALE_MS)
/*
 * What is over LATE_MAX_NS goes, and a tenth of it with it, so that a
 * backlog that keeps growing is cut again only some 10 ms later, not at
 * every tick: a loaded host's backlogs come back every few seconds, and
 * each cut is a hole in the sound.
 */
#define LATE_KEEP_NS            (LATE_MAX_NS - LATE_MAX_NS / 10)
/*
 * PipeWire's graph, through pipewire-pulse or straight, takes a quantum of
 * a new stream and then nothing for some 40-60 ms (traced in the bench).
 * A clock that ran on meanwhile left all of that in the FIFO, to play late
 * until steering drained it over seconds (53 ms at the peak, 28 ms still
 * 2 s later).  So a playback stream's clock starts as the backend does:
 * until a backend that asks to be kept full has taken START_NS of sound,
 * the clock waits while that backend leaves a tick in the FIFO, as a card
 * waits for its codec's first frame.  A backend that does not take keeps
 * the guest waiting HOLD_MAX_NS at most, and then is idle (IDLE_NS):
 * longer than the graph's pause, and short enough that with a late tick
 * on top the guest's DMA does not stand still for 100 ms (at 100 ms, a
 * stream that never started stood still 106 ms under ASan).
 */
#define START_NS                (100 * SCALE_MS)
#define HOLD_MAX_NS             (75 * SCALE_MS)
/*
 * After a longer stall of QEMU (a frozen cgroup, a debugger, a host that
 * swapped) the DMA owes more than its FIFO holds: a card's DMA would have
 * run on through the guest's ring, and the FIFO keeps only its newest
 * third of a second anyway.  Moving more only holds the BQL (an hour is
 * 691 MB at 48 kHz stereo, moved in 1 KiB chunks), and a long enough
 * stall overflows the transfer's byte count.
 */
#define STALL_MAX_NS            (NANOSECONDS_PER_SECOND / 2)

/* --- the FIFO ------------------------------------------------------------- */

static uint32_t fifo_push(AudioPacingFifo *f, const uint8_t *buf, uint32_t n)
{
    uint32_t done = 0;

    n = MIN(n, f->size - f->len);
    while (done < n) {
        uint32_t tail = (f->head + f->len) % f->size;
        uint32_t chunk = MIN(n - done, f->size - tail);

        memcpy(f->data + tail, buf + done, chunk);
        f->len += chunk;
        done += chunk;
    }
    return done;
}

/* Contiguous bytes at the head, at most @n. */
static uint32_t fifo_peek(AudioPacingFifo *f, uint8_t **buf, uint32_t n)
{
    *buf = f->data + f->head;
    return MIN(MIN(n, f->len), f->size - f->head);
}

static void fifo_drop(AudioPacingFifo *f, uint32_t n)
{
    f->head = (f->head + n) % f->size;
    f->len -= n;
}

static uint32_t fifo_pop(AudioPacingFifo *f, uint8_t *buf, uint32_t n)
{
    uint32_t done = 0;

    while (done < n && f->len) {
        uint8_t *src;
        uint32_t chunk = fifo_peek(f, &src, n - done);

        memcpy(buf + done, src, chunk);
        fifo_drop(f, chunk);
        done += chunk;
    }
    return done;
}

/* --- the clock ------------------------------------------------------------ */

static uint32_t tick_bytes(AudioPacingStream *st)
{
    uint64_t frames = (uint64_t)st->rate * st->pacing->period_us / 1000000;

    return MAX(frames, 1) * st->frame;
}

/* Whole frames, at least @n bytes, at most what the FIFO holds. */
static uint32_t whole_frames(AudioPacingStream *st, uint32_t n)
{
    return MIN(QEMU_ALIGN_UP(n, st->frame), st->fifo.len);
}

/* @ns of the stream's format, in bytes. */
static uint32_t ns_bytes(AudioPacingStream *st, int64_t ns)
{
    return muldiv64(st->rate, ns, NANOSECONDS_PER_SECOND) * st->frame;
}

static uint32_t late_bytes(AudioPacingStream *st)
{
    return ns_bytes(st, LATE_MAX_NS);
}

/* At least a tick. */
static uint32_t late_keep_bytes(AudioPacingStream *st)
{
    return MAX(ns_bytes(st, LATE_KEEP_NS), tick_bytes(st));
}

/* At least a frame: steer() divides by it. */
static uint32_t late_steer_bytes(AudioPacingStream *st)
{
    return MAX(ns_bytes(st, LATE_STEER_NS), st->frame);
}

/* The oldest @n bytes of a playback stream are lost: the backend counts. */
static void fifo_lose(AudioPacingStream *st, SWVoiceOut *voice, uint32_t n)
{
    fifo_drop(&st->fifo, n);
    AUD_lost_out(voice, n);
}

/*
 * After each exchange with the backend the FIFO is at its lowest and the
 * backend as full as the DMA could make it.  If the FIFO's low mark stays
 * above a tick's worth, the backend takes less than the guest gives
 * (playback: slow the guest down) or gives more than the guest takes
 * (capture: speed it up).
 *
 * If, for playback, the backend asks to be kept full (pa: its buffer is
 * its latency) and the room it still had stays above a tick's worth, its
 * clock runs faster than ours and its buffer drains towards an underrun:
 * speed the guest up.  That happens with any sound card's crystal, and
 * with PulseAudio's null sink, which rounds each chunk it plays down to a
 * whole microsecond and so runs some 500 ppm fast.  Other backends' room
 * is their whole buffer (wav, none) or one with no latency target:
 * filling those would only add latency.
 *
 * Corrections are proportional, within PPM_LIMIT (a long backlog's
 * within PPM_LATE_LIMIT).  A capture FIFO that runs dry needs nothing:
 * the missing part is padded with silence.
 */
static void steer(AudioPacingStream *st, int room)
{
    int64_t target = tick_bytes(st);
    int64_t excess, shortfall;

    st->low_fill += ((int64_t)st->fifo.len * 256 - st->low_fill) / 16;
    st->low_room += ((int64_t)room * 256 - st->low_room) / 16;
    excess = st->low_fill / 256 - target;
    shortfall = st->low_room / 256 - target;
    if (excess > 0) {
        int64_t limit = excess * PPM_LIMIT / late_steer_bytes(st);

        limit = MIN(MAX(limit, PPM_LIMIT), PPM_LATE_LIMIT);
        st->ppm = MIN(excess * PPM_PER_TICK_OF_ERROR / target, limit);
        if (st->output) {
            st->ppm = -st->ppm;
        }
    } else if (shortfall > 0) {
        st->ppm = MIN(shortfall * PPM_PER_TICK_OF_ROOM / target, PPM_LIMIT);
    } else {
        st->ppm = 0;
    }
}

static void start_over(AudioPacingStream *st)
{
    if (st->start_left) {
        st->start_left = 0;
        trace_audio_pacing_started(st->pacing->device, st->index,
                                   st->held_ns);
    }
}

/* Move the frames due by now; returns now. */
static int64_t clock_advance(AudioPacingStream *st)
{
    AudioPacing *p = st->pacing;
    int64_t now = qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL);
    uint64_t elapsed = now - st->last_ns;
    uint64_t frames;

    st->last_ns = now;
    if (elapsed > STALL_MAX_NS) {
        trace_audio_pacing_stall(p->device, st->index, elapsed);
        elapsed = STALL_MAX_NS;
    }
    if (st->start_left && st->backlogged) {
        trace_audio_pacing_held(p->device, st->index, elapsed,
                                st->fifo.len);
        st->held_ns += elapsed;
        if (st->held_ns >= HOLD_MAX_NS) {
            start_over(st);
        }
        return now;
    }
    st->frac += muldiv64(elapsed * st->rate, 1000000 + st->ppm, 1000000);
    frames = st->frac / NANOSECONDS_PER_SECOND;
    st->frac %= NANOSECONDS_PER_SECOND;
    if (frames) {
        trace_audio_pacing_tick(p->device, st->index, frames, st->fifo.len,
                                st->ppm);
        p->transfer(p->opaque, st->index, frames * st->frame);
    }
    return now;
}

static void tick(void *opaque)
{
    AudioPacingStream *st = opaque;
    int64_t now = clock_advance(st);

    if (st->running) {
        timer_mod(st->timer, now + st->pacing->period_us * SCALE_US);
    }
}

static void stream_stop(AudioPacingStream *st)
{
    timer_del(st->timer);
    st->running = false;
}

static void stream_reset(AudioPacingStream *st)
{
    stream_stop(st);
    st->active = false;
    st->frac = 0;
    st->ppm = 0;
    st->low_fill = 0;
    st->low_room = 0;
    st->start_left = 0;
    st->fifo.head = st->fifo.len = 0;
}

static void stream_start(AudioPacingStream *st)
{
    int64_t now = qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL);

    if (st->running || st->rate == 0) {
        return;
    }
    st->running = true;
    st->last_ns = now;
    /* While the stream was stopped the backend had nothing to take. */
    st->last_take_ns = now;
    st->start_left = st->output ? ns_bytes(st, START_NS) : 0;
    st->held_ns = 0;
    st->backlogged = false;
    timer_mod(st->timer, now + st->pacing->period_us * SCALE_US);
}

/*
 * A third of a second of the format; AC97's 48 kHz stereo gets the 64 KiB
 * it always had.  An HDA guest may ask for 16 channels of 32 bits at
 * 192 kHz: that is 4 MiB, allocated once per format change.
 */
static uint32_t fifo_bytes(uint32_t rate, uint32_t frame)
{
    return QEMU_ALIGN_UP(MAX((uint64_t)rate * frame / 3, FIFO_MIN_BYTES),
                         frame);
}

void audio_pacing_set_format(AudioPacing *p, int index, bool output,
                             int rate, int frame)
{
    AudioPacingStream *st = &p->st[index];
    uint32_t size;
    bool active;

    if (!p->enabled) {
        return;
    }
    rate = MAX(rate, 0);
    frame = MAX(frame, 1);
    if (st->rate == rate && st->frame == frame && st->output == output &&
        st->fifo.data) {
        return;
    }
    active = st->active;
    stream_reset(st);
    st->output = output;
    st->rate = rate;
    st->frame = frame;
    size = fifo_bytes(rate, frame);
    if (size != st->fifo.size) {
        g_free(st->fifo.data);
        st->fifo.data = g_malloc(size);
        st->fifo.size = size;
    }
    st->active = active;
    if (active) {
        stream_start(st);
    }
}

void audio_pacing_reset(AudioPacing *p, int index)
{
    if (p->enabled) {
        stream_reset(&p->st[index]);
    }
}

/*
 * What the guest gave a playback stream before it stopped is the end of
 * its sound: it plays out (a real card's FIFO would), and the voice goes
 * off after it (audio_pacing_backend_out).  Capture taken for a stream
 * that stopped is old by the time it starts again.
 */
bool audio_pacing_set_active(AudioPacing *p, int index, bool on)
{
    AudioPacingStream *st = &p->st[index];

    if (!p->enabled) {
        return on;
    }
    st->active = on;
    if (on) {
        stream_start(st);
        return true;
    }
    stream_stop(st);
    if (!st->output) {
        st->fifo.head = st->fifo.len = 0;
    }
    return st->fifo.len > 0;
}

/* --- the data path -------------------------------------------------------- */

/*
 * Once started (START_NS), the guest's clock never waits for the
 * backend: a real card's DMA runs on whatever the host does with the
 * sound.  When the backend has taken nothing for so long that the FIFO
 * is full, the oldest bytes give way.
 */
int audio_pacing_write(AudioPacing *p, int index, SWVoiceOut *voice,
                       const void *buf, int len)
{
    AudioPacingStream *st = &p->st[index];
    uint32_t over;

    if (!p->enabled) {
        return AUD_write(voice, (void *)buf, len);
    }
    len = MIN(len, st->fifo.size);
    over = st->fifo.len + len > st->fifo.size ?
           whole_frames(st, st->fifo.len + len - st->fifo.size) : 0;
    if (over) {
        trace_audio_pacing_overflow(p->device, st->index, over);
        fifo_lose(st, voice, over);
    }
    return fifo_push(&st->fifo, buf, len);
}

/*
 * Capture is paced by the guest's clock: what the backend has not
 * delivered yet is silence, so the guest's interrupts stay on time.
 */
int audio_pacing_read(AudioPacing *p, int index, SWVoiceIn *voice, void *buf,
                      int len)
{
    AudioPacingStream *st = &p->st[index];
    uint32_t got;

    if (!p->enabled) {
        return AUD_read(voice, buf, len);
    }
    got = fifo_pop(&st->fifo, buf, len);
    if (got < len) {
        trace_audio_pacing_starved(p->device, index, len - got);
        memset((uint8_t *)buf + got, 0, len - got);
    }
    return len;
}

void audio_pacing_backend_out(AudioPacing *p, int index, SWVoiceOut *voice,
                              int free)
{
    AudioPacingStream *st = &p->st[index];
    int64_t now = qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL);
    bool full, idle;

    /* What is due goes out now, not a tick later. */
    if (st->running) {
        now = clock_advance(st);
    }
    /*
     * More than the backend takes is what the guest played while QEMU or
     * the sound server stalled.  The server filled that time with silence
     * already; dropping it as well would cut into the sound the guest
     * played, so it plays late (see LATE_MAX_NS, IDLE_NS).  What is
     * dropped is the oldest.  After a backend that took nothing, all but
     * a tick's worth goes, as from a card whose DMA ran on.  From a
     * backend that takes, but late, only what is over LATE_KEEP_NS goes:
     * cut down to a tick, each of a loaded host's backlogs was a hole of
     * over 100 ms; cut to LATE_KEEP_NS, one of 10-20 ms (bench, both
     * cores busy).
     */
    full = AUD_wants_full_out(voice);
    idle = now - st->last_take_ns > IDLE_NS;
    if (free >= 0 &&
        st->fifo.len > free + (idle ? tick_bytes(st) : late_bytes(st))) {
        uint32_t keep = idle ? tick_bytes(st) : late_keep_bytes(st);
        uint32_t n = whole_frames(st, st->fifo.len - free - keep);

        trace_audio_pacing_late(p->device, st->index, n, idle);
        fifo_lose(st, voice, n);
    }
    while (free > 0 && st->fifo.len) {
        uint8_t *src;
        uint32_t n = fifo_peek(&st->fifo, &src, free);
        int done = AUD_write(voice, src, n);

        if (done <= 0) {
            break;
        }
        fifo_drop(&st->fifo, done);
        free -= done;
        st->last_take_ns = now;
        if (done >= st->start_left) {
            start_over(st);
        } else {
            st->start_left -= done;
        }
    }
    st->backlogged = full && st->fifo.len >= tick_bytes(st);
    if (!st->active && !st->fifo.len) {
        /* The stream stopped and has played out. */
        trace_audio_pacing_played_out(p->device, st->index);
        AUD_set_active_out(voice, false);
        return;
    }
    /* Room left says something only while the clock runs. */
    steer(st, st->running && !st->fifo.len && full ? MAX(free, 0) : 0);
}

void audio_pacing_backend_in(AudioPacing *p, int index, SWVoiceIn *voice,
                             int avail)
{
    AudioPacingStream *st = &p->st[index];
    uint8_t buf[4096];

    steer(st, 0);
    while (avail > 0) {
        int want = MIN(MIN(avail, sizeof(buf)),
                       st->fifo.size - st->fifo.len);
        int got = want > 0 ? AUD_read(voice, buf, want) : 0;

        if (got <= 0) {
            break;
        }
        fifo_push(&st->fifo, buf, got);
        avail -= got;
    }
}

/* --- life cycle ----------------------------------------------------------- */

bool audio_pacing_check(const AudioPacing *p, const char *device,
                        Error **errp)
{
    if (p->period_us < PERIOD_MIN_US || p->period_us > PERIOD_MAX_US) {
        error_setg(errp, "%s timer-period=%u is out of range; accepted "
                   "values are %u to %u (microseconds)", device,
                   p->period_us, PERIOD_MIN_US, PERIOD_MAX_US);
        return false;
    }
    return true;
}

bool audio_pacing_init(AudioPacing *p, const char *device,
                       AudioPacingTransfer *transfer, void *opaque,
                       Error **errp)
{
    int i;

    if (!audio_pacing_check(p, device, errp)) {
        return false;
    }
    p->device = device;
    p->transfer = transfer;
    p->opaque = opaque;
    for (i = 0; i < AUDIO_PACING_STREAMS; i++) {
        AudioPacingStream *st = &p->st[i];

        st->pacing = p;
        st->index = i;
        st->frame = 1;
        st->timer = timer_new_ns(QEMU_CLOCK_VIRTUAL, tick, st);
    }
    return true;
}

void audio_pacing_fini(AudioPacing *p)
{
    int i;

    for (i = 0; i < AUDIO_PACING_STREAMS; i++) {
        AudioPacingStream *st = &p->st[i];

        if (st->timer) {
            timer_free(st->timer);
            st->timer = NULL;
        }
        g_free(st->fifo.data);
        st->fifo.data = NULL;
        st->fifo.size = 0;
    }
}

/* --- migration ------------------------------------------------------------ */

bool audio_pacing_running(AudioPacing *p)
{
    int i;

    for (i = 0; p->enabled && i < AUDIO_PACING_STREAMS; i++) {
        if (p->st[i].running) {
            return true;
        }
    }
    return false;
}

/*
 * Only the clock's fractions: the FIFOs hold a few milliseconds that the
 * destination's backend does not have yet anyway.  A stream that runs is
 * restarted by the device's post_load.
 */
const VMStateDescription vmstate_audio_pacing_stream = {
    .name = "audio-pacing-stream",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = (VMStateField[]) {
        VMSTATE_UINT64(frac, AudioPacingStream),
        VMSTATE_INT32(ppm, AudioPacingStream),
        VMSTATE_END_OF_LIST()
    }
};
