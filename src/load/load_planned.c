/* Placeholder for `apigate load` until issue 5 lands: says so and exits 2 (never pretends). */
#include <stdio.h>
#include <string.h>

#include "load/load.h"

int load_main(int argc, char **argv)
{
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: apigate load ...\n\nnot built yet: planned in issue 5.\n");
        return 0;
    }
    fprintf(stderr, "apigate load: not built yet (planned, issue 5)\n");
    return 2;
}
