/* Units in config files and on command lines, parsed and printed in one place: durations
 * ("250ms", "30s", "2m", "1h", "1.5s", "100us"; a bare number is seconds), sizes ("512", "64KB",
 * "256MB", "1GiB"; KB = 1024, as nginx), percentages ("50%", "0.5"), rates ("500/s", "30/m"). */
#ifndef AG_CONFIG_UNITS_H
#define AG_CONFIG_UNITS_H

#include <stddef.h>
#include <stdint.h>

/* Each returns 0, or -1 when <s> is not a valid value (no partial parses). */
int units_parse_duration_us(const char *s, uint64_t *us);
int units_parse_duration_ms(const char *s, uint64_t *ms); /* rounds sub-ms values up to 1 ms */
int units_parse_size(const char *s, uint64_t *bytes);
int units_parse_percent(const char *s, double *fraction); /* "50%" and "0.5" -> 0.5 */
int units_parse_rate(const char *s, double *per_second);   /* "500/s", "30/m", "500" */

/* Human forms: "1.5s", "250ms", "12µs"; "64KB", "1.2MB". Return <out>. */
const char *units_format_duration_us(uint64_t us, char *out, size_t outlen);
const char *units_format_size(uint64_t bytes, char *out, size_t outlen);

#endif
