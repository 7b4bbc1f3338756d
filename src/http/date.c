/* HTTP-date (RFC 9110 §5.6.7) without libc time functions: gmtime_r/timegm take locks or depend
 * on TZ and locale, and this runs per response. Calendar arithmetic is proleptic Gregorian on
 * days since 1970-01-01 (Howard Hinnant's civil-from-days), valid for any int64 year range we
 * can meet. */
#include "http/date.h"

#include <stdbool.h>
#include <string.h>
#include <time.h>

static const char wday_short[7][4] = {"Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"};
static const char *const wday_long[7] = {"Monday", "Tuesday", "Wednesday", "Thursday",
                                         "Friday", "Saturday", "Sunday"};
static const char *const wday_abbr[7] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
static const char month_name[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/* Days since the epoch of <y>-<m>-<d> (m 1..12). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static void put2(char *p, unsigned v)
{
    p[0] = (char)('0' + v / 10 % 10);
    p[1] = (char)('0' + v % 10);
}

void http_date_format(int64_t t, char out[HTTP_DATE_LEN + 1])
{
    int64_t days = t >= 0 ? t / 86400 : (t - 86399) / 86400;
    int64_t secs = t - days * 86400;
    int64_t y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    /* 1970-01-01 was a Thursday: index 0 of wday_short */
    int64_t wd = days % 7;
    if (wd < 0)
        wd += 7;
    if (y < 0)
        y = 0; /* not representable in 4 digits; HTTP has no use for such dates */
    if (y > 9999)
        y = 9999;
    memcpy(out, wday_short[wd], 3);
    memcpy(out + 3, ", ", 2);
    put2(out + 5, d);
    out[7] = ' ';
    memcpy(out + 8, month_name[m - 1], 3);
    out[11] = ' ';
    put2(out + 12, (unsigned)(y / 100));
    put2(out + 14, (unsigned)(y % 100));
    out[16] = ' ';
    put2(out + 17, (unsigned)(secs / 3600));
    out[19] = ':';
    put2(out + 20, (unsigned)(secs / 60 % 60));
    out[22] = ':';
    put2(out + 23, (unsigned)(secs % 60));
    memcpy(out + 25, " GMT", 4);
    out[29] = '\0';
}

/* ---- parsing: a small cursor over the input ---- */

struct cur {
    const char *p, *end;
};

static bool lit(struct cur *c, const char *s)
{
    size_t n = strlen(s);
    if ((size_t)(c->end - c->p) < n)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char a = (unsigned char)c->p[i], b = (unsigned char)s[i];
        if (a >= 'A' && a <= 'Z')
            a |= 0x20;
        if (b >= 'A' && b <= 'Z')
            b |= 0x20;
        if (a != b)
            return false;
    }
    c->p += n;
    return true;
}

/* Exactly <n> digits. */
static bool digits(struct cur *c, int n, unsigned *v)
{
    if (c->end - c->p < n)
        return false;
    unsigned x = 0;
    for (int i = 0; i < n; i++) {
        unsigned dg = (unsigned)((unsigned char)c->p[i] - '0');
        if (dg > 9)
            return false;
        x = x * 10 + dg;
    }
    c->p += n;
    *v = x;
    return true;
}

static bool month(struct cur *c, unsigned *m)
{
    for (unsigned i = 0; i < 12; i++)
        if (lit(c, month_name[i])) {
            *m = i + 1;
            return true;
        }
    return false;
}

/* time-of-day = hour ":" minute ":" second (second 60 for a leap second, RFC 9110 §5.6.7) */
static bool tod(struct cur *c, unsigned *h, unsigned *mi, unsigned *s)
{
    return digits(c, 2, h) && lit(c, ":") && digits(c, 2, mi) && lit(c, ":") && digits(c, 2, s) &&
           *h < 24 && *mi < 60 && *s <= 60;
}

static bool leap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

static int finish(int64_t y, unsigned m, unsigned d, unsigned h, unsigned mi, unsigned s,
                  int64_t *out)
{
    static const unsigned mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m < 1 || m > 12 || d < 1 || d > mdays[m - 1] + (m == 2 && leap(y)))
        return -1;
    *out = days_from_civil(y, m, d) * 86400 + h * 3600 + mi * 60 + s;
    return 0;
}

int http_date_parse_at(const char *s, size_t len, int64_t now, int64_t *out)
{
    struct cur c = {s, s + len};
    while (c.p < c.end && (*c.p == ' ' || *c.p == '\t'))
        c.p++;
    while (c.end > c.p && (c.end[-1] == ' ' || c.end[-1] == '\t'))
        c.end--;
    unsigned d, m, h, mi, sec, yv;
    int64_t y;
    struct cur save = c;

    /* IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT */
    for (int i = 0; i < 7; i++) {
        c = save;
        if (lit(&c, wday_abbr[i]) && lit(&c, ", ")) {
            if (digits(&c, 2, &d) && lit(&c, " ") && month(&c, &m) && lit(&c, " ") &&
                digits(&c, 4, &yv) && lit(&c, " ") && tod(&c, &h, &mi, &sec) && lit(&c, " GMT") &&
                c.p == c.end)
                return finish(yv, m, d, h, mi, sec, out);
            return -1;
        }
    }
    /* rfc850-date: Sunday, 06-Nov-94 08:49:37 GMT */
    for (int i = 0; i < 7; i++) {
        c = save;
        if (lit(&c, wday_long[i]) && lit(&c, ", ")) {
            if (!(digits(&c, 2, &d) && lit(&c, "-") && month(&c, &m) && lit(&c, "-") &&
                  digits(&c, 2, &yv) && lit(&c, " ") && tod(&c, &h, &mi, &sec) &&
                  lit(&c, " GMT") && c.p == c.end))
                return -1;
            /* the most recent year with those last two digits that is not more than 50 years
             * after now */
            int64_t ny, nd = now >= 0 ? now / 86400 : (now - 86399) / 86400;
            unsigned nm, ndd;
            civil_from_days(nd, &ny, &nm, &ndd);
            int64_t century = (ny >= 0 ? ny : ny - 99) / 100 * 100;
            y = century + yv;
            if (y > ny + 50)
                y -= 100;
            return finish(y, m, d, h, mi, sec, out);
        }
    }
    /* asctime-date: Sun Nov  6 08:49:37 1994 (day is two digits or SP and one digit) */
    for (int i = 0; i < 7; i++) {
        c = save;
        if (lit(&c, wday_abbr[i]) && lit(&c, " ")) {
            if (!(month(&c, &m) && lit(&c, " ")))
                return -1;
            if (c.p < c.end && *c.p == ' ') {
                c.p++;
                if (!digits(&c, 1, &d))
                    return -1;
            } else if (!digits(&c, 2, &d)) {
                return -1;
            }
            if (!(lit(&c, " ") && tod(&c, &h, &mi, &sec) && lit(&c, " ") && digits(&c, 4, &yv) &&
                  c.p == c.end))
                return -1;
            return finish(yv, m, d, h, mi, sec, out);
        }
    }
    return -1;
}

int http_date_parse(const char *s, size_t len, int64_t *out)
{
    return http_date_parse_at(s, len, (int64_t)time(NULL), out);
}
