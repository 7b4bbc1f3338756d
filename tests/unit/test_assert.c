/* AG_ASSERT: a true expression costs nothing and evaluates once; a false one prints file:line,
 * the function and the expression, then aborts (SIGABRT), in every build type. The failing case
 * runs in a child process with stderr on a pipe. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/assert.h"

static void test_true_passes_once(void **state)
{
    (void)state;
    int n = 0;
    AG_ASSERT(++n == 1);
    assert_int_equal(n, 1); /* evaluated exactly once */
    AG_ASSERT(n);
}

#define BAD_MAGIC 0xdeadu
struct thing {
    unsigned magic;
};

static void assert__child(const struct thing *t)
{
    AG_ASSERT(t->magic == BAD_MAGIC + 1); /* the line the test looks for */
}

static void test_false_aborts_with_location(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        /* No core file from the expected abort. */
        signal(SIGABRT, SIG_DFL);
        struct thing t = {BAD_MAGIC};
        assert__child(&t);
        _exit(0); /* not reached when AG_ASSERT works */
    }
    close(fds[1]);
    char out[512] = {0};
    size_t len = 0;
    ssize_t n;
    while (len < sizeof(out) - 1 && (n = read(fds[0], out + len, sizeof(out) - 1 - len)) > 0)
        len += (size_t)n;
    close(fds[0]);
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGABRT);
    assert_non_null(strstr(out, "bug: "));
    assert_non_null(strstr(out, "test_assert.c:35: assert__child: assertion failed: "
                                "t->magic == BAD_MAGIC + 1"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_true_passes_once),
        cmocka_unit_test(test_false_aborts_with_location),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
