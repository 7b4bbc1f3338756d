/* Private to the gateway config files (gwconf*.c): the descriptor tables shared by the loader
 * (gwconf.c) and the reference/dump printers (gwconf_doc.c). Nothing outside gwconf*.c includes
 * it. */
#ifndef AG_GATEWAY_GWCONF_PRIV_H
#define AG_GATEWAY_GWCONF_PRIV_H

#include "config/cfg.h"

/* Tables of each section; a CFG_SECTION entry has offset 0 and its sub-table holds offsets into
 * the same outer struct. The *_manual lists name the keys of a map that the loader parses by
 * hand (they are not in the table). */
extern const struct cfg_desc gwconf__admin_desc[];
extern const struct cfg_desc gwconf__breaker_desc[];
extern const struct cfg_desc gwconf__cache_desc[];
extern const struct cfg_desc gwconf__fallback_desc[];
extern const char *const gwconf__fallback_manual[];
extern const struct cfg_desc gwconf__compress_desc[];
extern const struct cfg_desc gwconf__health_desc[];
extern const struct cfg_desc gwconf__limit_desc[];
extern const struct cfg_desc gwconf__listen_tls_desc[];
extern const char *const gwconf__listen_tls_manual[];
extern const struct cfg_desc gwconf__logging_desc[];
extern const struct cfg_desc gwconf__path_norm_desc[];
extern const struct cfg_desc gwconf__http2_desc[];
extern const struct cfg_desc gwconf__headers_desc[];
extern const struct cfg_desc gwconf__route_headers_desc[];
extern const struct cfg_desc gwconf__pool_desc[];
extern const struct cfg_desc gwconf__outlier_desc[];
extern const struct cfg_desc gwconf__rcache_desc[];
extern const struct cfg_desc gwconf__rinvalidate_desc[];
extern const struct cfg_desc gwconf__ratelimit_desc[];
extern const struct cfg_desc gwconf__retry_desc[];
extern const struct cfg_desc gwconf__root_desc[];
extern const char *const gwconf__root_manual[];
extern const struct cfg_desc gwconf__route_desc[];
extern const char *const gwconf__route_manual[];
extern const struct cfg_desc gwconf__server_desc[];
extern const struct cfg_desc gwconf__timeout_desc[];
extern const struct cfg_desc gwconf__tunnel_desc[];
extern const struct cfg_desc gwconf__tls_desc[];
extern const struct cfg_desc gwconf__upstream_desc[];
extern const char *const gwconf__upstream_manual[];
extern const struct cfg_desc gwconf__workers_desc[];

#endif
