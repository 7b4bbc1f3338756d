/* Request arena: alignment, the byte limit (NULL, never abort; no wrap-around), reuse of the first
 * chunk across resets, and large blocks that do not waste the current chunk. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/arena.h"

static void test_alloc_aligned(void **state)
{
    (void)state;
    struct arena a;
    arena_init(&a, 1024, 0);
    for (size_t n = 1; n < 200; n++) {
        char *p = arena_alloc(&a, n);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % 16, 0);
        memset(p, 0xab, n); /* valgrind checks the bounds */
    }
    assert_true(arena_used(&a) >= 199 * 200 / 2);
    char *s = arena_strndup(&a, "hello world", 5);
    assert_string_equal(s, "hello");
    assert_non_null(arena_alloc(&a, 0));
    arena_deinit(&a);
    assert_int_equal(arena_used(&a), 0);
}

static void test_limit(void **state)
{
    (void)state;
    struct arena a;
    arena_init(&a, 256, 1000);
    size_t got = 0;
    while (arena_alloc(&a, 100) != NULL)
        got++;
    assert_int_equal(got, 8); /* 112 bytes each after alignment: 8 * 112 = 896, a 9th is over */
    assert_true(arena_used(&a) <= 1000);
    assert_non_null(arena_alloc(&a, 100 - 16)); /* 96 still fits: 992 */
    assert_null(arena_alloc(&a, 16));
    assert_null(arena_strndup(&a, "x", 1));
    /* sizes that would wrap around a sum or the chunk header size */
    assert_null(arena_alloc(&a, SIZE_MAX));
    assert_null(arena_alloc(&a, SIZE_MAX - 8));
    arena_reset(&a);
    assert_int_equal(arena_used(&a), 0);
    assert_non_null(arena_alloc(&a, 100)); /* the limit counts from the reset */
    arena_deinit(&a);

    arena_init(&a, 256, 0); /* no limit still refuses impossible sizes instead of aborting */
    assert_null(arena_alloc(&a, SIZE_MAX - 20));
    arena_deinit(&a);
}

static void test_reset_reuses(void **state)
{
    (void)state;
    struct arena a;
    arena_init(&a, 4096, 0);
    void *first = arena_alloc(&a, 64);
    for (int i = 0; i < 200; i++) /* several chunks */
        assert_non_null(arena_alloc(&a, 100));
    assert_non_null(arena_alloc(&a, 100000)); /* and a big one */
    arena_reset(&a);
    /* one chunk of the configured size is kept: the next request starts at its beginning */
    void *again = arena_alloc(&a, 64);
    assert_non_null(again);
    for (int i = 0; i < 10; i++) {
        arena_reset(&a);
        assert_ptr_equal(arena_alloc(&a, 64), again);
    }
    (void)first;
    arena_deinit(&a);

    /* a first allocation larger than a chunk does not get kept as "the" chunk */
    arena_init(&a, 256, 0);
    assert_non_null(arena_alloc(&a, 10000));
    arena_reset(&a);
    assert_non_null(arena_alloc(&a, 16));
    arena_deinit(&a);
}

static void test_large_keeps_current_chunk(void **state)
{
    (void)state;
    struct arena a;
    arena_init(&a, 4096, 0);
    char *p1 = arena_alloc(&a, 2000);
    char *big = arena_alloc(&a, 3000); /* does not fit the 2096 bytes left: a chunk of its own */
    char *p2 = arena_alloc(&a, 32);
    assert_non_null(big);
    memset(big, 1, 3000);
    /* the small ones are neighbours in the first chunk */
    assert_ptr_equal(p2, p1 + 2000);
    assert_true(big < p1 || big > p1 + 4096);
    arena_deinit(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alloc_aligned),
        cmocka_unit_test(test_limit),
        cmocka_unit_test(test_reset_reuses),
        cmocka_unit_test(test_large_keeps_current_chunk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
