/* Redis L2 glue (placeholder until l2redis lands): every function is a no-op. */
#include "gateway/cachehook_priv.h"

struct chl2 *chl2_create(struct cachehook *ch)
{
    (void)ch;
    return NULL;
}
void chl2_destroy(struct chl2 *l2) { (void)l2; }
void chl2_thread_start(struct cachehook *ch, struct gwthread *th)
{
    (void)ch;
    (void)th;
}
void chl2_thread_stop(struct cachehook *ch, struct gwthread *th)
{
    (void)ch;
    (void)th;
}
bool chl2_lookup(struct cachehook *ch, struct conn *c, struct chreq *cr)
{
    (void)ch;
    (void)c;
    (void)cr;
    return false;
}
void chl2_request_end(struct cachehook *ch, struct conn *c, struct chreq *cr)
{
    (void)ch;
    (void)c;
    (void)cr;
}
void chl2_fill_copy(struct cachehook *ch, struct conn *c, struct chreq *cr, struct cache_fill *f)
{
    (void)ch;
    (void)c;
    (void)cr;
    (void)f;
}
void chl2_store(struct cachehook *ch, struct conn *c, struct chreq *cr, struct store_obj *o)
{
    (void)ch;
    (void)c;
    (void)cr;
    (void)o;
}
void chl2_publish(struct cachehook *ch, struct gwthread *th, const char *path, size_t len,
                  bool prefix)
{
    (void)ch;
    (void)th;
    (void)path;
    (void)len;
    (void)prefix;
}
