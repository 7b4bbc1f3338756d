/* Placeholder for `apigate doctor` until issue 8 lands: says so and exits 2 (never pretends). */
#include <stdio.h>
#include <string.h>

#include "doctor/doctor.h"

int doctor_main(int argc, char **argv)
{
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: apigate doctor ...\n\nnot built yet: planned in issue 8.\n");
        return 0;
    }
    fprintf(stderr, "apigate doctor: not built yet (planned, issue 8)\n");
    return 2;
}
