/* AG_ASSERT(expr): an invariant of the program, checked in every build type (release included, so
 * not tied to NDEBUG). A false invariant is a bug, never an error: it prints file:line, the
 * function and the expression to stderr and aborts, so a core dump or ASan report points at it
 * (Varnish include/vas.h AN()/AZ(), Redis serverAssert). Never assert on bytes that come from the
 * network or the config: those are errors with a message and a status (STYLE.md §5). */
#ifndef AG_CORE_ASSERT_H
#define AG_CORE_ASSERT_H

/* Prints "bug: FILE:LINE: FUNC: assertion failed: EXPR" and aborts. Use AG_ASSERT. */
_Noreturn void ag_assert_fail(const char *expr, const char *file, int line, const char *func);

/* Aborts with the location and the text of <expr> when <expr> is false. <expr> is evaluated once. */
#define AG_ASSERT(expr)                                                                            \
    ((expr) ? (void)0 : ag_assert_fail(#expr, __FILE__, __LINE__, __func__))

#endif
