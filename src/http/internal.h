/* Declarations shared by the files of src/http only (no other folder includes this): the
 * character-class tables of RFC 9110/9112 that the parser, the chunked decoder and the
 * Cache-Control parser all need, and the h1 parser's field and target checks that the
 * field-by-field head builder (reqhead.c) applies too, so both protocols refuse the same
 * things. Defined in h1parse.c. */
#ifndef AG_HTTP_INTERNAL_H
#define AG_HTTP_INTERNAL_H

/* tchar (RFC 9110 §5.6.2): method and field-name characters. */
extern const unsigned char h1__tchar[256];
/* field-value and reason-phrase bytes: HTAB, SP, VCHAR, obs-text (no CTL, no DEL). */
extern const unsigned char h1__vchar[256];
/* request-target bytes: VCHAR but '#', obs-text tolerated. */
extern const unsigned char h1__target[256];

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http/h1parse.h"

/* Content-Length (a list of identical values allowed). 0 with *<out>, -1 if invalid. */
int h1__parse_content_length(const unsigned char *v, size_t len, uint64_t *out);
/* uri-host [":" port] without userinfo; see h1parse.c. */
bool h1__authority_valid(const unsigned char *v, size_t len, bool allow_empty, bool need_port);
/* r->target classified (origin, asterisk, absolute, authority form); path and query filled.
 * 0 or -1. */
int h1__classify_target(struct h1_request *r, const char **abs_host, size_t *abs_host_len);
enum h1_method h1__method_id(const char *m, size_t len);
/* <lim> with h1parse's defaults for zero fields; <hdrs> no more than <max_headers>. */
void h1__limits_of(const struct h1_limits *lim, size_t max_headers, size_t *line, size_t *head,
                   size_t *hdrs);

#endif
