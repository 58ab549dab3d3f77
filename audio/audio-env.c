/*
 * QEMU_AUDIO_DRV and the other audio variables of QEMU before 8.2
 *
 * 2019-era VFIO scripts set up sound with "QEMU_AUDIO_DRV=pa
 * QEMU_PA_SAMPLES=8192 QEMU_AUDIO_TIMER_PERIOD=99 ...".  Upstream dropped
 * the variables in 8.2 (audio/audio_legacy.c), so QEMU 10.0 ignores them
 * and picks a driver of its own, without a word.  Here they become one
 * Audiodev, with the meaning QEMU 7.2 gave them, and that is the default
 * audiodev.
 *
 * Read: QEMU_AUDIO_DRV, QEMU_AUDIO_TIMER_PERIOD, QEMU_AUDIO_{DAC,ADC}_*
 * and, for pa, QEMU_PA_*: what the scripts we know set.  QEMU_ALSA_*,
 * QEMU_OSS_*, QEMU_COREAUDIO_*, QEMU_DSOUND_*, QEMU_SDL_* and QEMU_WAV_*
 * are not: those drivers take the generic variables only, and the rest is
 * written as -audiodev.
 *
 * Copyright (c) 2026 qemu-vfio-audio developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/cutils.h"
#include "qapi/error.h"
#include "qapi/qapi-types-audio.h"
#include "audio.h"
#include "audio_int.h"
#include "audio-env.h"

/* QEMU 7.2's defaults, which the sizes given in samples were taken at. */
#define ENV_FREQUENCY 44100
#define ENV_CHANNELS 2

/* A bad value names its variable: the user may have set it years ago. */
static bool env_uint(const char *name, uint32_t *dst, bool *has_dst,
                     Error **errp)
{
    const char *val = getenv(name);
    uint64_t n;

    if (!val) {
        return true;
    }
    if (parse_uint_full(val, 10, &n) < 0 || n > UINT32_MAX) {
        error_setg(errp, "%s=%s is not valid; it takes an integer from 0 to %"
                   PRIu32, name, val, UINT32_MAX);
        return false;
    }
    *dst = n;
    *has_dst = true;
    return true;
}

/* Any number but 0 was "on" in QEMU 7.2; "yes" or "on" never was. */
static bool env_bool(const char *name, bool *dst, bool *has_dst,
                     Error **errp)
{
    uint32_t n;
    bool has = false;

    if (!env_uint(name, &n, &has, errp)) {
        return false;
    }
    if (has) {
        *dst = n != 0;
        *has_dst = true;
    }
    return true;
}

/* An empty value counts: QEMU_PA_SERVER= asked for no server. */
static void env_str(const char *name, char **dst)
{
    const char *val = getenv(name);

    if (val) {
        g_free(*dst);
        *dst = g_strdup(val);
    }
}

/* QEMU 7.2 took the format names in any case ("S16" too). */
static bool env_format(const char *name, AudioFormat *dst, bool *has_dst,
                       Error **errp)
{
    const char *val = getenv(name);
    g_autoptr(GString) names = NULL;
    int i;

    if (!val) {
        return true;
    }
    for (i = 0; i < AUDIO_FORMAT__MAX; i++) {
        if (!g_ascii_strcasecmp(val, AudioFormat_str(i))) {
            *dst = i;
            *has_dst = true;
            return true;
        }
    }
    names = g_string_new(NULL);
    for (i = 0; i < AUDIO_FORMAT__MAX; i++) {
        g_string_append_printf(names, "%s%s", i ? ", " : "",
                               AudioFormat_str(i));
    }
    error_setg(errp, "%s=%s is not an audio format; accepted: %s", name, val,
               names->str);
    return false;
}

/* QEMU_AUDIO_DAC_* for playback (out), QEMU_AUDIO_ADC_* for capture (in) */
static bool env_direction(AudiodevPerDirectionOptions *pdo, const char *dir,
                          Error **errp)
{
    g_autofree char *fixed = g_strdup_printf("QEMU_AUDIO_%s_FIXED_SETTINGS",
                                             dir);
    g_autofree char *freq = g_strdup_printf("QEMU_AUDIO_%s_FIXED_FREQ", dir);
    g_autofree char *fmt = g_strdup_printf("QEMU_AUDIO_%s_FIXED_FMT", dir);
    g_autofree char *chans = g_strdup_printf("QEMU_AUDIO_%s_FIXED_CHANNELS",
                                             dir);
    g_autofree char *voices = g_strdup_printf("QEMU_AUDIO_%s_VOICES", dir);

    if (!env_bool(fixed, &pdo->fixed_settings, &pdo->has_fixed_settings,
                  errp) ||
        !env_uint(freq, &pdo->frequency, &pdo->has_frequency, errp) ||
        !env_format(fmt, &pdo->format, &pdo->has_format, errp) ||
        !env_uint(chans, &pdo->channels, &pdo->has_channels, errp) ||
        !env_uint(voices, &pdo->voices, &pdo->has_voices, errp)) {
        return false;
    }
    /*
     * Upstream's check says "fixed-settings=off", an option the user never
     * wrote; name the variables instead (the words QEMU 7.2 used).
     */
    if (pdo->has_fixed_settings && !pdo->fixed_settings &&
        (pdo->has_frequency || pdo->has_format || pdo->has_channels)) {
        error_setg(errp, "%s=0 cannot go with %s, %s or %s; unset one or the "
                   "other", fixed, freq, fmt, chans);
        return false;
    }
    return true;
}

/*
 * The period was given as a rate in Hz, 0 for the shortest period; a
 * rate above 1 MHz is the shortest period too.
 */
static bool env_timer_period(Audiodev *dev, Error **errp)
{
    if (!env_uint("QEMU_AUDIO_TIMER_PERIOD", &dev->timer_period,
                  &dev->has_timer_period, errp)) {
        return false;
    }
    if (dev->has_timer_period && dev->timer_period) {
        dev->timer_period = G_USEC_PER_SEC / dev->timer_period;
    }
    return true;
}

#ifdef CONFIG_AUDIO_OSS
/* Only OSS ever read these: ALSA had QEMU_ALSA_*_TRY_POLL of its own. */
static bool env_oss(Audiodev *dev, Error **errp)
{
    AudiodevOssPerDirectionOptions *in = dev->u.oss.in;
    AudiodevOssPerDirectionOptions *out = dev->u.oss.out;

    return env_bool("QEMU_AUDIO_ADC_TRY_POLL", &in->try_poll,
                    &in->has_try_poll, errp) &&
           env_bool("QEMU_AUDIO_DAC_TRY_POLL", &out->try_poll,
                    &out->has_try_poll, errp);
}
#endif

#ifdef CONFIG_AUDIO_PA
/*
 * QEMU_PA_SAMPLES counted samples of all channels, at the fixed rate or
 * QEMU 7.2's default one (not the pa driver's, which comes later): 8192
 * samples are 4096 frames, 92880 us at 44100 Hz.  Without a rate or
 * channels, there is no length; the driver's check names the zero.
 */
static void env_pa_samples(AudiodevPerDirectionOptions *pdo, uint32_t samples)
{
    uint32_t channels = pdo->has_channels ? pdo->channels : ENV_CHANNELS;
    uint32_t freq = pdo->has_frequency ? pdo->frequency : ENV_FREQUENCY;
    uint64_t frames, us;

    if (!channels || !freq) {
        return;
    }
    frames = samples / channels;
    us = (frames * G_USEC_PER_SEC + freq / 2) / freq;
    pdo->buffer_length = MIN(us, UINT32_MAX);
    pdo->has_buffer_length = true;
}

/* QEMU_PA_DIVISOR is not read, as QEMU 7.2 did not read it. */
static bool env_pa(Audiodev *dev, Error **errp)
{
    AudiodevPaOptions *pa = &dev->u.pa;
    uint32_t samples;
    bool has_samples = false;

    env_str("QEMU_PA_SERVER", &pa->server);
    env_str("QEMU_PA_SINK", &pa->out->name);
    env_str("QEMU_PA_SOURCE", &pa->in->name);
    if (!env_uint("QEMU_PA_SAMPLES", &samples, &has_samples, errp)) {
        return false;
    }
    if (has_samples) {
        env_pa_samples(qapi_AudiodevPaPerDirectionOptions_base(pa->in),
                       samples);
        env_pa_samples(qapi_AudiodevPaPerDirectionOptions_base(pa->out),
                       samples);
    }
    return true;
}
#endif

/* Only the drivers this binary has, or can load as a module, are listed. */
static bool env_driver(const char *val, AudiodevDriver *driver, Error **errp)
{
    g_autoptr(GString) names = NULL;
    int i = qapi_enum_parse(&AudiodevDriver_lookup, val, -1, NULL);

    if (i >= 0 && audio_driver_lookup(val)) {
        *driver = i;
        return true;
    }
    names = g_string_new(NULL);
    for (i = 0; i < AUDIODEV_DRIVER__MAX; i++) {
        const char *name = AudiodevDriver_str(i);

        if (audio_driver_lookup(name)) {
            g_string_append_printf(names, "%s%s", names->len ? ", " : "",
                                   name);
        }
    }
    error_setg(errp, "QEMU_AUDIO_DRV=%s is not an audio driver of this QEMU; "
               "accepted: %s", val, names->str);
    return false;
}

/* The variables read for @driver, as a user would look for them */
static const char *env_names(AudiodevDriver driver)
{
#ifdef CONFIG_AUDIO_PA
    if (driver == AUDIODEV_DRIVER_PA) {
        return "QEMU_AUDIO_* or QEMU_PA_* variables";
    }
#endif
    return "QEMU_AUDIO_* variables";
}

static bool env_read(Audiodev *dev, Error **errp)
{
    if (!env_direction(audio_get_pdo_in(dev), "ADC", errp) ||
        !env_direction(audio_get_pdo_out(dev), "DAC", errp) ||
        !env_timer_period(dev, errp)) {
        return false;
    }
    switch (dev->driver) {
#ifdef CONFIG_AUDIO_OSS
    case AUDIODEV_DRIVER_OSS:
        return env_oss(dev, errp);
#endif
#ifdef CONFIG_AUDIO_PA
    case AUDIODEV_DRIVER_PA:
        return env_pa(dev, errp);
#endif
    default:
        return true;
    }
}

bool audio_env_define_default(Error **errp)
{
    ERRP_GUARD();
    const char *drv = getenv("QEMU_AUDIO_DRV");
    Audiodev *dev;

    if (!drv) {
        return false;
    }
    dev = g_new0(Audiodev, 1);
    /* As in QEMU 7.2, so messages say "audiodev pa:" as they did then. */
    dev->id = g_strdup(drv);
    if (!env_driver(drv, &dev->driver, errp)) {
        goto fail;
    }
    audio_create_pdos(dev);
    if (!env_read(dev, errp)) {
        goto fail;
    }
    /*
     * Upstream's and the driver's checks name options such as out.channels,
     * which the user did not write; say where they came from.  Checked
     * here, as audio_define_default() keeps even a device it refuses.
     */
    audio_validate_opts(dev, errp);
    if (*errp) {
        error_prepend(errp, "%s: ", env_names(dev->driver));
        goto fail;
    }
    audio_define_default(dev, errp);
    return true;

fail:
    qapi_free_Audiodev(dev);
    return true;
}
