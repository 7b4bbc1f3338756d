/* HTTP-date (RFC 9110 §5.6.7): format IMF-fixdate; parse IMF-fixdate, RFC 850 and asctime forms. */
#ifndef AG_HTTP_DATE_H
#define AG_HTTP_DATE_H

#include <stddef.h>
#include <stdint.h>

#define HTTP_DATE_LEN 29 /* "Sun, 06 Nov 1994 08:49:37 GMT" */

/* Writes the IMF-fixdate for <t> (seconds since the epoch) and a NUL into <out>. */
void http_date_format(int64_t t, char out[HTTP_DATE_LEN + 1]);
/* Parses <s>[0,<len>) into seconds since the epoch; returns 0, or -1 when it is not an HTTP-date.
 * Surrounding whitespace is ignored; names are matched case-insensitively; the weekday must be a
 * valid name but is not checked against the date. Two-digit RFC 850 years are resolved against
 * the current time (see http_date_parse_at). */
int http_date_parse(const char *s, size_t len, int64_t *out);
/* Same, with <now> (seconds since the epoch) deciding the century of a two-digit RFC 850 year: a
 * year that would be more than 50 years after <now> is taken 100 years earlier
 * (RFC 9110 §5.6.7). */
int http_date_parse_at(const char *s, size_t len, int64_t now, int64_t *out);

#endif
