/* Placeholder for `apigate mock` until issue 2 lands: says so and exits 2 (never pretends). */
#include <stdio.h>
#include <string.h>

#include "mock/mock.h"

int mock_main(int argc, char **argv)
{
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: apigate mock ...\n\nnot built yet: planned in issue 2.\n");
        return 0;
    }
    fprintf(stderr, "apigate mock: not built yet (planned, issue 2)\n");
    return 2;
}
