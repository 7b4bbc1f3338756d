/* Latency distributions of the mock: fixed, uniform, normal, log-normal and Pareto, drawn from a
 * caller-owned splitmix64 state (one per loop thread, so no lock and no shared cache line).
 * Pure functions: the unit tests seed the state and check means and quantiles. */
#include <math.h>
#include <string.h>

#include "mock/internal.h"

/* splitmix64 (Steele, Lea, Flood 2014): one add and three xor-shift-multiplies. */
uint64_t mock_rng_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

double mock_rng_unit(uint64_t *state)
{
    /* 53 random bits, shifted by half a step so neither 0 nor 1 comes out: log(0) and the Pareto
     * division by U^(1/alpha) both need an open interval. */
    return ((double)(mock_rng_next(state) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

/* Box-Muller; one of the pair is dropped to keep the state a single integer. */
double mock_rng_normal(uint64_t *state)
{
    double u1 = mock_rng_unit(state);
    double u2 = mock_rng_unit(state);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

/* One latency sample in ms; negative draws become 0 and <cap> bounds the tail. */
double mock_dist_sample(const struct mock_latency *l, uint64_t *rng)
{
    double v = 0;
    switch (l->dist) {
    case MOCK_DIST_NONE:
        return 0;
    case MOCK_DIST_FIXED:
        v = l->ms;
        break;
    case MOCK_DIST_UNIFORM:
        v = l->min + (l->max - l->min) * mock_rng_unit(rng);
        break;
    case MOCK_DIST_NORMAL:
        v = l->mean + l->stddev * mock_rng_normal(rng);
        break;
    case MOCK_DIST_LOGNORMAL:
        v = l->median * exp(l->sigma * mock_rng_normal(rng));
        break;
    case MOCK_DIST_PARETO:
        v = l->min / pow(mock_rng_unit(rng), 1.0 / l->alpha);
        break;
    }
    if (v < 0)
        v = 0; /* a normal tail below zero means "as fast as possible", not a time machine */
    if (l->cap > 0 && v > l->cap)
        v = l->cap;
    return v;
}

static const char *const mock_dist_names[] = {"none",   "fixed",     "uniform",
                                              "normal", "lognormal", "pareto"};

/* For GET /_mock/profile and messages. */
const char *mock_dist_name(enum mock_dist d)
{
    if ((size_t)d >= sizeof(mock_dist_names) / sizeof(mock_dist_names[0]))
        return "?";
    return mock_dist_names[d];
}

/* Names as in profiles; "log-normal" is accepted too. */
int mock_dist_parse(const char *s, enum mock_dist *out)
{
    for (size_t i = 0; i < sizeof(mock_dist_names) / sizeof(mock_dist_names[0]); i++) {
        if (strcmp(s, mock_dist_names[i]) == 0) {
            *out = (enum mock_dist)i;
            return 0;
        }
    }
    if (strcmp(s, "log-normal") == 0) {
        *out = MOCK_DIST_LOGNORMAL;
        return 0;
    }
    return -1;
}
