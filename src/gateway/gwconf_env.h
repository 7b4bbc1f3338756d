/* `${NAME}` / `${NAME:-default}` substitution in gateway config text (see gwconf_env.c). */
#ifndef AG_GATEWAY_GWCONF_ENV_H
#define AG_GATEWAY_GWCONF_ENV_H

#include <stddef.h>

#include "config/cfg.h"

/* Returns a malloc'd copy of <text> with the references replaced (length in <outlen>, NUL
 * terminated), or NULL with "name:line:col: ..." errors added to <errs> for each unset variable
 * or bad reference. <name> is the file name used in messages. */
char *gwconf_env_expand(const char *text, size_t len, const char *name, size_t *outlen,
                        struct cfg_errors *errs);

#endif
