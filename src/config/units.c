/* Units of config files and command lines: durations, sizes, percentages and rates, parsed strictly
 * (the whole string or nothing, no sign, no spaces, no exponent) and printed back in a form the
 * parser accepts. Numbers are read as integer + decimal fraction, not with strtod, so "1.1s" is
 * exactly 1100000 µs and "inf", "0x10" or " 5" are refused. */
#include "config/units.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define UNITS_FRAC_MAX 9 /* fraction digits kept; more are accepted but only refine nothing */

/* A decimal number "123" or "123.456": integer part, fraction scaled to 10^UNITS_FRAC_MAX. */
struct units_num {
    uint64_t ip;
    uint64_t frac; /* numerator over 10^9 */
};

static const uint64_t units_pow10[] = {1ull,         10ull,         100ull,
                                       1000ull,      10000ull,      100000ull,
                                       1000000ull,   10000000ull,   100000000ull,
                                       1000000000ull};

/* Reads a number at *<p>; advances *<p>. Requires a digit first, and digits after a dot. */
static int units__number(const char **p, struct units_num *n)
{
    const char *s = *p;
    if (*s < '0' || *s > '9')
        return -1;
    n->ip = 0;
    n->frac = 0;
    while (*s >= '0' && *s <= '9') {
        if (__builtin_mul_overflow(n->ip, 10, &n->ip) ||
            __builtin_add_overflow(n->ip, (uint64_t)(*s - '0'), &n->ip))
            return -1;
        s++;
    }
    if (*s == '.') {
        s++;
        if (*s < '0' || *s > '9')
            return -1;
        unsigned digits = 0;
        while (*s >= '0' && *s <= '9') {
            if (digits < UNITS_FRAC_MAX) {
                n->frac = n->frac * 10 + (uint64_t)(*s - '0');
                digits++;
            }
            s++;
        }
        n->frac *= units_pow10[UNITS_FRAC_MAX - digits];
    }
    *p = s;
    return 0;
}

/* <n> × <mult> with the fraction truncated; -1 on overflow. */
static int units__scale(const struct units_num *n, uint64_t mult, uint64_t *out)
{
    uint64_t whole;
    if (__builtin_mul_overflow(n->ip, mult, &whole))
        return -1;
    /* frac < 10^9 and mult ≤ 2^40 or 8.64e10: the product fits in 128 bits, not always in 64 */
    unsigned __int128 f = (unsigned __int128)n->frac * mult / units_pow10[UNITS_FRAC_MAX];
    if (__builtin_add_overflow(whole, (uint64_t)f, out))
        return -1;
    return 0;
}

static double units__to_double(const struct units_num *n)
{
    return (double)n->ip + (double)n->frac / (double)units_pow10[UNITS_FRAC_MAX];
}

struct units_suffix {
    const char *name;
    uint64_t mult;
};

static const struct units_suffix units_durations[] = {
    {"us", 1ull},           {"\xc2\xb5s", 1ull}, /* µs */
    {"ms", 1000ull},        {"s", 1000000ull},    {"m", 60000000ull},
    {"h", 3600000000ull},   {"d", 86400000000ull}, {NULL, 0},
};

/* Case-insensitive, as nginx reads "64k" and "64K" alike; "B" alone means bytes. */
static const struct units_suffix units_sizes[] = {
    {"b", 1ull},
    {"k", 1ull << 10},  {"kb", 1ull << 10}, {"kib", 1ull << 10},
    {"m", 1ull << 20},  {"mb", 1ull << 20}, {"mib", 1ull << 20},
    {"g", 1ull << 30},  {"gb", 1ull << 30}, {"gib", 1ull << 30},
    {"t", 1ull << 40},  {"tb", 1ull << 40}, {"tib", 1ull << 40},
    {NULL, 0},
};

static bool units__is_digit(char c) { return c >= '0' && c <= '9'; }

int units_parse_duration_us(const char *s, uint64_t *us)
{
    if (s == NULL || *s == '\0')
        return -1;
    uint64_t total = 0;
    bool first = true;
    /* One or more <number><unit> parts ("1h30m", as Go writes them); a bare number is seconds and
     * only allowed alone. */
    while (*s) {
        struct units_num n;
        if (units__number(&s, &n) == -1)
            return -1;
        const char *u = s;
        while (*s && !units__is_digit(*s))
            s++;
        size_t ulen = (size_t)(s - u);
        uint64_t mult = 0;
        if (ulen == 0) {
            if (!first || *s)
                return -1;
            mult = 1000000ull;
        } else {
            for (const struct units_suffix *x = units_durations; x->name; x++) {
                if (strlen(x->name) == ulen && memcmp(x->name, u, ulen) == 0) {
                    mult = x->mult;
                    break;
                }
            }
            if (mult == 0)
                return -1;
        }
        uint64_t part;
        if (units__scale(&n, mult, &part) == -1 || __builtin_add_overflow(total, part, &total))
            return -1;
        first = false;
    }
    *us = total;
    return 0;
}

int units_parse_duration_ms(const char *s, uint64_t *ms)
{
    uint64_t us;
    if (units_parse_duration_us(s, &us) == -1)
        return -1;
    /* "100us" as a millisecond timeout means "very short", never "no timeout" (0). */
    *ms = us / 1000 + (us % 1000 != 0);
    return 0;
}

int units_parse_size(const char *s, uint64_t *bytes)
{
    if (s == NULL)
        return -1;
    struct units_num n;
    if (units__number(&s, &n) == -1)
        return -1;
    uint64_t mult = 0;
    if (*s == '\0') {
        mult = 1;
    } else {
        for (const struct units_suffix *x = units_sizes; x->name; x++) {
            if (strcasecmp(x->name, s) == 0) {
                mult = x->mult;
                break;
            }
        }
        if (mult == 0)
            return -1;
    }
    return units__scale(&n, mult, bytes);
}

int units_parse_percent(const char *s, double *fraction)
{
    if (s == NULL)
        return -1;
    struct units_num n;
    if (units__number(&s, &n) == -1)
        return -1;
    double v = units__to_double(&n);
    if (*s == '%' && s[1] == '\0') {
        *fraction = v / 100.0;
        return 0;
    }
    /* A bare "50" is a typo for "50%" (or a fraction out of range): refuse it. */
    if (*s != '\0' || v > 1.0)
        return -1;
    *fraction = v;
    return 0;
}

int units_parse_rate(const char *s, double *per_second)
{
    if (s == NULL)
        return -1;
    struct units_num n;
    if (units__number(&s, &n) == -1)
        return -1;
    double v = units__to_double(&n);
    if (*s == '\0') {
        *per_second = v;
        return 0;
    }
    if (*s++ != '/')
        return -1;
    static const struct {
        const char *name;
        double secs;
    } per[] = {{"s", 1},  {"sec", 1},   {"m", 60}, {"min", 60},
               {"h", 3600}, {"ms", 0.001}, {NULL, 0}};
    for (size_t i = 0; per[i].name; i++) {
        if (strcmp(per[i].name, s) == 0) {
            *per_second = v / per[i].secs;
            return 0;
        }
    }
    return -1;
}

/* Prints <v>/<div> with up to 3 decimals, trailing zeros dropped: 1500/1000 -> "1.5". */
static int units__decimal(char *out, size_t outlen, uint64_t v, uint64_t div, const char *unit)
{
    uint64_t whole = v / div;
    uint64_t milli = (uint64_t)(((unsigned __int128)(v % div) * 1000 + div / 2) / div);
    if (milli == 1000) {
        whole++;
        milli = 0;
    }
    if (milli == 0)
        return snprintf(out, outlen, "%llu%s", (unsigned long long)whole, unit);
    /* milli < 1000 here; the compiler cannot see it, so spell out the three digits. */
    char frac[4] = {(char)('0' + milli / 100 % 10), (char)('0' + milli / 10 % 10),
                    (char)('0' + milli % 10), '\0'};
    for (int i = 2; i > 0 && frac[i] == '0'; i--)
        frac[i] = '\0';
    return snprintf(out, outlen, "%llu.%s%s", (unsigned long long)whole, frac, unit);
}

const char *units_format_duration_us(uint64_t us, char *out, size_t outlen)
{
    if (outlen == 0)
        return out;
    if (us == 0)
        snprintf(out, outlen, "0s");
    else if (us % 3600000000ull == 0)
        snprintf(out, outlen, "%lluh", (unsigned long long)(us / 3600000000ull));
    else if (us % 60000000ull == 0)
        snprintf(out, outlen, "%llum", (unsigned long long)(us / 60000000ull));
    else if (us >= 1000000ull)
        units__decimal(out, outlen, us, 1000000ull, "s");
    else if (us >= 1000ull)
        units__decimal(out, outlen, us, 1000ull, "ms");
    else
        snprintf(out, outlen, "%llu\xc2\xb5s", (unsigned long long)us);
    return out;
}

const char *units_format_size(uint64_t bytes, char *out, size_t outlen)
{
    static const char *const names[] = {"B", "KB", "MB", "GB", "TB"};
    if (outlen == 0)
        return out;
    size_t i = 0;
    uint64_t div = 1;
    while (i + 1 < sizeof(names) / sizeof(names[0]) && bytes >= (div << 10)) {
        div <<= 10;
        i++;
    }
    if (bytes % div == 0) {
        snprintf(out, outlen, "%llu%s", (unsigned long long)(bytes / div), names[i]);
        return out;
    }
    /* One decimal is enough for people ("1.2MB"); exact values are printed exactly above. */
    uint64_t tenths = (uint64_t)(((unsigned __int128)bytes * 10 + div / 2) / div);
    if (tenths % 10 == 0)
        snprintf(out, outlen, "%llu%s", (unsigned long long)(tenths / 10), names[i]);
    else
        snprintf(out, outlen, "%llu.%u%s", (unsigned long long)(tenths / 10),
                 (unsigned)(tenths % 10), names[i]);
    return out;
}
