/* Bearer tokens of the admin listener: parsing the Authorization header and comparing the token
 * in constant time. Pure functions; admin.c decides which requests need them. */
#ifndef AG_GATEWAY_ADMINAUTH_H
#define AG_GATEWAY_ADMINAUTH_H

#include <stdbool.h>
#include <stddef.h>

/* True when <a> and <b> are the same bytes. Its time depends on <alen> (the configured token's
 * length) only: every byte is compared whatever the first difference, and a <b> of another length
 * costs the same as one of the right length. */
bool adminauth_equal(const char *a, size_t alen, const char *b, size_t blen);

/* True when Authorization header value <v> is "Bearer <token>" (scheme case-insensitive, spaces
 * around the token allowed) with the token <want>. */
bool adminauth_bearer_ok(const char *want, size_t wlen, const char *v, size_t vlen);

#endif
