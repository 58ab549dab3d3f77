/*
 * query-audio-streams and "info audio": how the pa streams are doing
 *
 * Copyright (c) 2026 qemu-vfio-audio developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "monitor/hmp.h"
#include "monitor/monitor.h"
#include "qapi/qapi-commands-audio.h"
#include "pa-voice.h"

static void add_info(const PAStreamInfo *in, void *opaque)
{
    AudioStreamInfoList ***tail = opaque;
    AudioStreamInfo *out = g_new0(AudioStreamInfo, 1);

    out->audiodev = g_strdup(in->audiodev);
    out->stream = g_strdup(in->stream);
    out->direction = g_strdup(in->playback ? "playback" : "capture");
    out->server = g_strdup(in->server);
    out->connected = in->connected;
    out->configured_latency = in->latency_us;
    out->latency = in->target_us;
    out->max_latency = in->max_latency_us;
    out->has_measured_latency = in->has_measured;
    out->measured_latency = in->measured_us;
    if (in->has_attr) {
        out->has_tlength = out->has_prebuf = out->has_minreq = true;
        out->has_fragsize = out->has_maxlength = true;
        out->tlength = in->attr.tlength;
        out->prebuf = in->attr.prebuf;
        out->minreq = in->attr.minreq;
        out->fragsize = in->attr.fragsize;
        out->maxlength = in->attr.maxlength;
    }
    out->underruns = in->stats.underruns;
    out->overruns = in->stats.overruns;
    out->lost = in->stats.lost;
    out->drops = in->stats.drops;
    out->adjustments = in->stats.adjustments;
    out->reconnects = in->reconnects;
    out->streams = in->stats.streams;
    out->bytes = in->stats.bytes;
    out->has_rescues = in->has_rescues;
    out->rescues = in->rescues;
    QAPI_LIST_APPEND(*tail, out);
}

AudioStreamInfoList *qmp_query_audio_streams(Error **errp)
{
    AudioStreamInfoList *head = NULL, **tail = &head;

    pa_stream_stats_foreach(add_info, &tail);
    return head;
}

void hmp_info_audio(Monitor *mon, const QDict *qdict)
{
    g_autoptr(AudioStreamInfoList) list = qmp_query_audio_streams(NULL);
    AudioStreamInfoList *e;

    if (!list) {
        monitor_printf(mon, "no pa audio streams\n");
        return;
    }
    for (e = list; e; e = e->next) {
        AudioStreamInfo *i = e->value;

        monitor_printf(mon, "%s: %s stream %s on %s, %s\n", i->audiodev,
                       i->direction, i->stream, i->server,
                       i->connected ? "connected" : "not connected");
        monitor_printf(mon, "  latency: configured %u us, in force %u us "
                       "(max %u us)", i->configured_latency, i->latency,
                       i->max_latency);
        if (i->has_measured_latency) {
            monitor_printf(mon, ", measured %" PRIu64 " us",
                           i->measured_latency);
        }
        monitor_printf(mon, "\n  underruns %" PRIu64 ", overruns %" PRIu64
                       ", lost %" PRIu64 " bytes in %" PRIu64 " drops, "
                       "adjustments %" PRIu64 ", reconnects %u, streams %"
                       PRIu64 ", bytes %" PRIu64 "\n", i->underruns,
                       i->overruns, i->lost, i->drops, i->adjustments,
                       i->reconnects, i->streams, i->bytes);
        if (i->has_rescues) {
            monitor_printf(mon, "  short cycles filled from PipeWire's "
                           "thread: %" PRIu64 "\n", i->rescues);
        }
    }
}
