/* A guard page for parser tests (picohttpparser test.c): guard_place() copies an input so that its
 * last byte is the last readable byte before a PROT_NONE page, so a parser that reads one byte too
 * far crashes the test instead of passing by luck. One mapping per test program, grown on demand;
 * guard_release() unmaps it (a group teardown). Include after <cmocka.h>. */
#ifndef AG_TESTS_UNIT_GUARD_PAGE_H
#define AG_TESTS_UNIT_GUARD_PAGE_H

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static char *guard__base;
static size_t guard__size; /* readable bytes before the guard page */

/* Copies <s>[0, <n>) to end at the guard page; returns the copy (valid until the next call). */
static inline const char *guard_place(const char *s, size_t n)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t usable = (n + page) / page * page;
    if (!guard__base || guard__size < usable) {
        if (guard__base)
            munmap(guard__base, guard__size + page);
        guard__base = mmap(NULL, usable + page, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        assert_true(guard__base != MAP_FAILED);
        assert_int_equal(mprotect(guard__base + usable, page, PROT_NONE), 0);
        guard__size = usable;
    }
    char *p = guard__base + guard__size - n;
    memcpy(p, s, n);
    return p;
}

static inline void guard_release(void)
{
    if (guard__base)
        munmap(guard__base, guard__size + (size_t)sysconf(_SC_PAGESIZE));
    guard__base = NULL;
    guard__size = 0;
}

#endif
