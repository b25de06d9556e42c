/* The native CPU executor of the LIF family's fused nodes (LIF, CubaLIF, ALIF), instantiated
   for float and double (see lif_kernel.h), and the loop that runs its neuron ranges side by
   side. */

#include <math.h>
#include <pthread.h>
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

/* The family's parameters and states, as indices into the arrays its entry points take (see
   lif_kernel.h); snn/kernels/native.py lists them in this order. */
enum {
    P_BETA, P_V_TH, P_JUMP, P_ALPHA, P_G_CUR, P_G_IN, P_RHO, P_ONE_MINUS_RHO, P_ADAPT, P_COUNT
};
enum { S_V, S_I, S_A, S_COUNT };

/* Neurons per tile: a tile's state and a chunk of its potentials stay in the L1/L2 caches. */
#ifndef TILE
#define TILE 256
#endif

/* How many steps ahead to prefetch a tile's row (see lif_kernel.h). */
#ifndef AHEAD
#define AHEAD 2
#endif

/* The ABI version the Python loader checks, bumped with any change of a signature below. */
int snn_lif_abi(void) { return 6; }

/* ---------------------------------------------------------------------------------------------
   Running neuron ranges side by side. Neurons are independent, so a kernel's work over [0, n) is
   cut into `parts` ranges of `step` neurons (the caller picks both), one per thread.

   The threads are PyTorch's own: the OpenMP runtime that torch loaded runs its intra-op
   parallelism as OpenMP parallel regions, and snn_lif_use_openmp() hands this file that
   runtime's entry points (GOMP_parallel, the call a `#pragma omp parallel` compiles to, is
   exported by libgomp and by LLVM's and Intel's runtimes alike). A range then runs on the same
   team of threads as torch's matmuls, which are still spinning from the last one: no second pool
   competes with them for the cores. Without those entry points (a torch without OpenMP) each
   call starts its threads and joins them; either way nothing is left running when a call
   returns. */

typedef void (*parallel_fn)(void (*)(void *), void *, unsigned, unsigned);
static parallel_fn omp_parallel;
static int (*omp_thread_num)(void);
static int (*omp_team_size)(void);

void snn_lif_use_openmp(void *parallel, void *thread_num, void *team_size) {
    omp_parallel = (parallel_fn)parallel;
    omp_thread_num = (int (*)(void))thread_num;
    omp_team_size = (int (*)(void))team_size;
}

/* Which runner snn_lif_run uses: 1 OpenMP, 0 threads of its own (for tests and benchmarks). */
int snn_lif_uses_openmp(void) { return omp_parallel != NULL; }

struct job {
    int (*range)(const void *args, int64_t i0, int64_t i1); /* returns 0, or -1: out of memory */
    const void *args;
    int64_t n, step;
    int parts;
    int failed;
};

static void run_part(struct job *job, int k) {
    const int64_t i0 = k * job->step;
    const int64_t i1 = i0 + job->step < job->n ? i0 + job->step : job->n;
    if (i0 < i1 && job->range(job->args, i0, i1) != 0)
        __atomic_store_n(&job->failed, 1, __ATOMIC_RELAXED);
}

static void openmp_task(void *p) {
    struct job *job = p;
    /* the runtime may give a smaller team than asked (OMP_THREAD_LIMIT, nesting) */
    for (int k = omp_thread_num(); k < job->parts; k += omp_team_size()) run_part(job, k);
}

struct part {
    struct job *job;
    int k;
};

static void *thread_main(void *p) {
    struct part *part = p;
    run_part(part->job, part->k);
    return NULL;
}

static int run(struct job *job) {
    if (job->parts <= 1) {
        run_part(job, 0);
    } else if (omp_parallel) {
        omp_parallel(openmp_task, job, (unsigned)job->parts, 0);
    } else {
        pthread_t threads[job->parts];
        struct part parts[job->parts];
        int started[job->parts];
        for (int k = 1; k < job->parts; k++) {
            parts[k] = (struct part){job, k};
            started[k] = pthread_create(&threads[k], NULL, thread_main, &parts[k]) == 0;
        }
        run_part(job, 0);
        for (int k = 1; k < job->parts; k++) {
            if (started[k])
                pthread_join(threads[k], NULL);
            else
                run_part(job, k); /* no thread to be had: this one does the range */
        }
    }
    return job->failed ? -1 : 0;
}

#define REAL float
#define NAME(f) f##_f32
#define EXP expf
#define FABS fabsf
#define FMA fmaf
#include "lif_kernel.h"
#undef REAL
#undef NAME
#undef EXP
#undef FABS
#undef FMA

#define REAL double
#define NAME(f) f##_f64
#define EXP exp
#define FABS fabs
#define FMA fma
#include "lif_kernel.h"
