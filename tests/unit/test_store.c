/* Unit tests for cache/store.c: lookup/insert/replace, variants and purges, the byte limit,
 * SIEVE's scan resistance, expiry, and reference counts outliving eviction. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cache/store.h"

static int freed;
static void count_free(void *p)
{
    freed++;
    free(p);
}

static struct store_obj *put_n(struct store *s, uint64_t now, const char *key, size_t key_len,
                               size_t primary_len, size_t size, uint64_t expire)
{
    char *payload = malloc(8);
    struct store_obj *o = store_insert(s, now, key, key_len, primary_len ? primary_len : key_len,
                                       payload, size, count_free, expire);
    if (o == NULL)
        free(payload);
    return o;
}

static struct store_obj *put(struct store *s, uint64_t now, const char *key, size_t primary_len,
                             size_t size, uint64_t expire)
{
    return put_n(s, now, key, strlen(key), primary_len, size, expire);
}

static bool has(struct store *s, uint64_t now, const char *key, size_t primary_len)
{
    struct store_obj *o =
        store_lookup(s, now, key, strlen(key), primary_len ? primary_len : strlen(key));
    if (o == NULL)
        return false;
    store_unref(s, o);
    return true;
}

static void test_insert_lookup_replace(void **state)
{
    (void)state;
    freed = 0;
    struct store *s = store_create(1 << 20, 4);
    struct store_obj *a = put(s, 0, "GET example/a", 0, 100, 1000);
    assert_non_null(a);
    store_unref(s, a);
    assert_true(has(s, 1, "GET example/a", 0));
    assert_false(has(s, 1, "GET example/b", 0));
    /* Same key replaces: the old payload is freed, the new one is found. */
    struct store_obj *a2 = put(s, 2, "GET example/a", 0, 100, 1000);
    assert_int_equal(freed, 1);
    struct store_obj *got = store_lookup(s, 3, "GET example/a", 13, 13);
    assert_ptr_equal(got, a2);
    store_unref(s, got);
    store_unref(s, a2);
    struct store_stats st;
    store_stats(s, &st);
    assert_int_equal(st.objects, 1);
    store_destroy(s);
    assert_int_equal(freed, 2);
}

static void test_expiry(void **state)
{
    (void)state;
    struct store *s = store_create(1 << 20, 1);
    store_unref(s, put(s, 0, "k", 0, 10, 100));
    assert_true(has(s, 99, "k", 0));
    assert_false(has(s, 100, "k", 0));
    struct store_stats st;
    store_stats(s, &st);
    assert_int_equal(st.objects, 0);
    assert_int_equal(st.expired, 1);
    store_destroy(s);
}

static void test_variants_and_purges(void **state)
{
    (void)state;
    struct store *s = store_create(1 << 20, 8);
    /* Primary "/u/7", two variants; "/u/70" shares a prefix but is another primary. */
    store_unref(s, put_n(s, 0, "/u/7\0ua=a", 9, 4, 10, 1000));
    store_unref(s, put_n(s, 0, "/u/7\0ua=b", 9, 4, 10, 1000));
    store_unref(s, put(s, 0, "/u/70", 0, 10, 1000));
    store_unref(s, put(s, 0, "/v/1", 0, 10, 1000));
    /* Keys with NULs: lookups compare lengths and bytes, not C strings. */
    struct store_obj *o = store_lookup(s, 1, "/u/7\0ua=b", 9, 4);
    assert_non_null(o);
    store_unref(s, o);
    assert_int_equal(store_purge_primary(s, "/u/7", 4), 2);
    assert_null(store_lookup(s, 1, "/u/7\0ua=a", 9, 4));
    assert_true(has(s, 1, "/u/70", 0));
    assert_int_equal(store_purge_prefix(s, "/u/", 3), 1);
    assert_true(has(s, 1, "/v/1", 0));
    assert_int_equal(store_purge_all(s), 1);
    store_destroy(s);
}

static void test_byte_limit(void **state)
{
    (void)state;
    struct store *s = store_create(100 * 1024, 1);
    char key[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        struct store_obj *o = put(s, 0, key, 0, 1000, 1000000);
        assert_non_null(o);
        store_unref(s, o);
    }
    struct store_stats st;
    store_stats(s, &st);
    assert_true(st.bytes <= 100 * 1024);
    assert_true(st.objects > 50);
    assert_true(st.evictions > 800);
    /* Larger than the whole store: refused, payload stays the caller's. */
    assert_null(put(s, 0, "huge", 0, 200 * 1024, 1000));
    store_stats(s, &st);
    assert_int_equal(st.rejected, 1);
    store_destroy(s);
}

static void test_sieve_scan_resistance(void **state)
{
    (void)state;
    /* 100 slots. A hot set of 50 keys is read repeatedly while a scan of 1000 one-off keys passes
     * through: SIEVE keeps the hot set (plain FIFO or LRU with the same interleaving loses it). */
    struct store *s = store_create(100 * (1000 + 128 + 8), 1);
    char key[32];
    for (int i = 0; i < 50; i++) {
        snprintf(key, sizeof(key), "hot%d", i);
        store_unref(s, put(s, 0, key, 0, 1000, 1u << 30));
    }
    int hot_hits = 0, hot_reads = 0;
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof(key), "scan%d", i);
        store_unref(s, put(s, 0, key, 0, 1000, 1u << 30));
        snprintf(key, sizeof(key), "hot%d", i % 50);
        hot_reads++;
        if (has(s, 0, key, 0))
            hot_hits++;
        else
            store_unref(s, put(s, 0, key, 0, 1000, 1u << 30));
    }
    /* After warm-up nearly every hot read hits. */
    assert_true(hot_hits > hot_reads * 9 / 10);
    store_destroy(s);
}

static void test_ref_outlives_eviction(void **state)
{
    (void)state;
    freed = 0;
    struct store *s = store_create(4096, 1);
    struct store_obj *held = put(s, 0, "held", 0, 1000, 1000000);
    assert_non_null(held);
    for (int i = 0; i < 20; i++) {
        char key[16];
        snprintf(key, sizeof(key), "x%d", i);
        store_unref(s, put(s, 0, key, 0, 1000, 1000000));
    }
    assert_false(has(s, 0, "held", 0));
    /* Evicted but still referenced: payload alive until the reader lets go. */
    int before = freed;
    assert_non_null(held->payload);
    store_unref(s, held);
    assert_int_equal(freed, before + 1);
    store_destroy(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_insert_lookup_replace), cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_variants_and_purges),   cmocka_unit_test(test_byte_limit),
        cmocka_unit_test(test_sieve_scan_resistance), cmocka_unit_test(test_ref_outlives_eviction),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
