/* The failure path of AG_ASSERT: one line to stderr, then abort(). Kept out of line so each
 * assertion costs a compare and a call that is never taken. */
#include "core/assert.h"

#include <stdio.h>
#include <stdlib.h>

_Noreturn void ag_assert_fail(const char *expr, const char *file, int line, const char *func)
{
    /* stderr directly, not ag_log: the logger may be the broken part, and this line must not be
     * throttled or filtered by level. */
    fprintf(stderr, "bug: %s:%d: %s: assertion failed: %s\n", file, line, func, expr);
    fflush(stderr);
    abort();
}
