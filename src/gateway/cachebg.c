/* Background refresh for stale-while-revalidate (placeholder: no refresh yet). */
#include "gateway/cachehook_priv.h"

void chbg_refresh(struct cachehook *ch, struct conn *c, struct chreq *cr, struct store_obj *o)
{
    (void)ch;
    (void)c;
    (void)cr;
    (void)o;
}
