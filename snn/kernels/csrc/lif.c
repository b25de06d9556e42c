/* The fused LIF's native CPU executor, instantiated for float and double (see lif_kernel.h). */

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { RESET_SUBTRACT = 0, RESET_ZERO = 1, RESET_NONE = 2 };
enum {
    SG_ATAN = 0,
    SG_FAST_SIGMOID = 1,
    SG_SIGMOID = 2,
    SG_TRIANGLE = 3,
    SG_RECTANGULAR = 4,
    SG_STRAIGHT_THROUGH = 5
};

/* Neurons per tile: a tile's state and a chunk of its potentials stay in the L1/L2 caches. */
#ifndef TILE
#define TILE 256
#endif

/* How many steps ahead to prefetch a tile's row (see lif_kernel.h). */
#ifndef AHEAD
#define AHEAD 2
#endif

/* The ABI version the Python loader checks, bumped with any change of a signature below. */
int snn_lif_abi(void) { return 2; }

#define REAL float
#define NAME(f) f##_f32
#define EXP expf
#define FABS fabsf
#include "lif_kernel.h"
#undef REAL
#undef NAME
#undef EXP
#undef FABS

#define REAL double
#define NAME(f) f##_f64
#define EXP exp
#define FABS fabs
#include "lif_kernel.h"
