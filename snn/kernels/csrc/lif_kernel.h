/* The LIF time loop for one floating-point type REAL; lif.c includes it once per type.

   The algorithm is snn/kernels/fused.py's (its docstring has the equations): forward keeps the potential
   at the start of every chunk of `chunk` steps; backward recomputes a chunk's pre-spike potentials
   from it into a buffer that stays in cache, then runs the reverse recurrence over the chunk.
   Neurons are independent, so the caller splits [0, n) into ranges [i0, i1) and runs them on
   threads. A range is walked in tiles of TILE neurons; within a tile every step is a contiguous
   loop the compiler vectorizes.

   Built with -ffp-contract=off: each operation rounds as lif_step's PyTorch operations do (no
   fused multiply-add), so spikes and potentials equal the reference loop's bit for bit.

   Arrays are row-major [steps, n]. beta, v_th and jump (= v_th - v_reset) are [n]: the caller
   expands scalars. Optional arrays are NULL when absent. */

static inline REAL NAME(surrogate)(int kind, REAL c1, REAL c2, REAL u) {
    switch (kind) {
    case SG_ATAN: { /* c1 = alpha / 2, c2 = pi * alpha / 2 */
        const REAL z = c2 * u;
        return c1 / (1 + z * z);
    }
    case SG_FAST_SIGMOID: { /* c2 = slope */
        const REAL d = 1 + c2 * FABS(u);
        return 1 / (d * d);
    }
    case SG_SIGMOID: { /* c2 = slope */
        const REAL sig = 1 / (1 + EXP(-c2 * u));
        return c2 * sig * (1 - sig);
    }
    case SG_TRIANGLE: { /* c2 = width */
        const REAL r = 1 - FABS(u) / c2;
        return (r > 0 ? r : 0) / c2;
    }
    case SG_RECTANGULAR: /* c1 = width / 2, c2 = width */
        return FABS(u) < c1 ? 1 / c2 : 0;
    default:
        return 1;
    }
}

/* Ask for a tile's row of a [steps, n] array ahead of use: rows are n elements apart, and each
   is one short run, which the hardware prefetchers do not see coming. */
static inline void NAME(prefetch)(const REAL *row, int64_t m) {
    for (int64_t i = 0; i < m; i += 64 / sizeof(REAL)) __builtin_prefetch(row + i);
}

static inline REAL NAME(pre_spike)(REAL v, REAL beta, REAL x, REAL v_rest, int has_rest) {
    /* beta * v is rounded before x is added, as lif_step does */
    const REAL leak = has_rest ? (v - v_rest) * beta + v_rest : beta * v;
    return leak + x;
}

static inline REAL NAME(after_reset)(int reset, REAL h, REAL s, REAL jump, REAL v_reset) {
    if (reset == RESET_SUBTRACT) return h - s * jump;
    if (reset == RESET_ZERO) return h - s * (h - v_reset);
    return h;
}

void NAME(lif_forward)(const REAL *x, const REAL *v0, REAL *spikes, REAL *membrane, REAL *starts,
                       REAL *v_last, const REAL *beta, const REAL *v_th, const REAL *jump,
                       double v_rest_d, double v_reset_d, int reset, int64_t steps, int64_t n,
                       int64_t chunk, int64_t i0, int64_t i1) {
    const REAL v_rest = (REAL)v_rest_d, v_reset = (REAL)v_reset_d;
    const int has_rest = v_rest != 0;
    REAL v[TILE];
    for (int64_t a = i0; a < i1; a += TILE) {
        const int64_t m = (i1 - a < TILE) ? i1 - a : TILE;
        const REAL *b = beta + a, *th = v_th + a, *jp = jump + a;
        memcpy(v, v0 + a, m * sizeof(REAL));
        for (int64_t t = 0; t < steps; t++) {
            if (t > 0 && t % chunk == 0)
                memcpy(starts + (t / chunk - 1) * n + a, v, m * sizeof(REAL));
            const REAL *xt = x + t * n + a;
            REAL *st = spikes + t * n + a;
            if (t + AHEAD < steps) NAME(prefetch)(xt + AHEAD * n, m);
            for (int64_t i = 0; i < m; i++) {
                const REAL h = NAME(pre_spike)(v[i], b[i], xt[i], v_rest, has_rest);
                const REAL s = h >= th[i] ? 1 : 0;
                st[i] = s;
                v[i] = NAME(after_reset)(reset, h, s, jp[i], v_reset);
            }
            if (membrane) memcpy(membrane + t * n + a, v, m * sizeof(REAL));
        }
        memcpy(v_last + a, v, m * sizeof(REAL));
    }
}

/* sigma[i] = surrogate'(h[i] - v_th[i]) for a tile; `kind` is a constant where this is inlined,
   so each surrogate gets its own branch-free, vectorizable loop. */
static inline __attribute__((always_inline)) void NAME(sigma_tile)(
    int kind, REAL c1, REAL c2, const REAL *h, const REAL *th, REAL *sigma, int64_t m) {
    for (int64_t i = 0; i < m; i++) sigma[i] = NAME(surrogate)(kind, c1, c2, h[i] - th[i]);
}

/* One reverse step for a tile: dL/dh into gx, dL/dv_th's term into dth (see snn/kernels/fused.py's
   table), and delta <- dL/dh * beta. `reset` and `detach` are constants where this is inlined. */
static inline __attribute__((always_inline)) void NAME(reverse_tile)(
    int reset, int detach, const REAL *h, const REAL *th, const REAL *jp, const REAL *b,
    const REAL *sigma, const REAL *gs, const REAL *gm, REAL v_reset, REAL *delta, REAL *gx,
    REAL *dth, int64_t m) {
    for (int64_t i = 0; i < m; i++) {
        const REAL d = delta[i] + gm[i]; /* dL/dv_t */
        const REAL s = h[i] >= th[i] ? 1 : 0;
        REAL dv_dh = 1, dv_dth = 0;
        if (reset == RESET_SUBTRACT) {
            dv_dh = detach ? 1 : 1 - jp[i] * sigma[i];
            dv_dth = detach ? -s : jp[i] * sigma[i] - s;
        } else if (reset == RESET_ZERO) {
            dv_dh = detach ? 1 - s : (1 - s) + (v_reset - h[i]) * sigma[i];
            dv_dth = detach ? 0 : (h[i] - v_reset) * sigma[i];
        }
        const REAL through_spike = gs[i] * sigma[i];
        const REAL grad_h = d * dv_dh + through_spike;
        gx[i] = grad_h;
        dth[i] = d * dv_dth - through_spike;
        delta[i] = grad_h * b[i];
    }
}

/* Reverse the steps. grad_spikes, grad_membrane, grad_v_last may be NULL (no gradient flows in
   through them); grad_spikes and grad_membrane advance by gs_step and gm_step elements per time
   step (n, or 0 for a gradient that is the same at every step, as after a sum over time).
   grad_beta and grad_v_th (per neuron, summed over time) are NULL when not needed. Writes dL/dI
   into grad_x and dL/dv0 into grad_v0. Returns 0, or -1 if out of memory. */
int NAME(lif_backward)(const REAL *x, const REAL *v0, const REAL *starts, const REAL *grad_spikes,
                       const REAL *grad_membrane, const REAL *grad_v_last, REAL *grad_x,
                       REAL *grad_v0, REAL *grad_beta, REAL *grad_v_th, const REAL *beta,
                       const REAL *v_th, const REAL *jump, double v_rest_d, double v_reset_d,
                       int reset, int detach_reset, int surrogate, double c1_d, double c2_d,
                       int64_t gs_step, int64_t gm_step, int64_t steps, int64_t n,
                       int64_t chunk, int64_t i0, int64_t i1) {
    const REAL v_rest = (REAL)v_rest_d, v_reset = (REAL)v_reset_d;
    const REAL c1 = (REAL)c1_d, c2 = (REAL)c2_d;
    const int has_rest = v_rest != 0;
    /* per chunk step: the pre-spike potential h, and (for dL/dbeta) the potential before it */
    REAL *pre = malloc((size_t)chunk * TILE * sizeof(REAL));
    REAL *before = grad_beta ? malloc((size_t)chunk * TILE * sizeof(REAL)) : NULL;
    if (!pre || (grad_beta && !before)) {
        free(pre);
        free(before);
        return -1;
    }
    REAL v[TILE], delta[TILE], sigma[TILE], dth[TILE];
    REAL zeros[TILE] = {0}; /* stands in for an absent incoming gradient */
    double acc_beta[TILE], acc_v_th[TILE]; /* sums over time, in double */
    const int64_t chunks = (steps + chunk - 1) / chunk;
    const int mode = reset == RESET_NONE ? 4 : 2 * reset + (detach_reset != 0);
    for (int64_t a = i0; a < i1; a += TILE) {
        const int64_t m = (i1 - a < TILE) ? i1 - a : TILE;
        const REAL *b = beta + a, *th = v_th + a, *jp = jump + a;
        for (int64_t i = 0; i < m; i++) {
            delta[i] = grad_v_last ? grad_v_last[a + i] : 0;
            acc_beta[i] = 0;
            acc_v_th[i] = 0;
        }
        for (int64_t c = chunks - 1; c >= 0; c--) {
            const int64_t t0 = c * chunk, t1 = (t0 + chunk < steps) ? t0 + chunk : steps;
            memcpy(v, c == 0 ? v0 + a : starts + (c - 1) * n + a, m * sizeof(REAL));
            for (int64_t t = t0; t < t1; t++) { /* recompute h exactly as the forward did */
                REAL *ht = pre + (t - t0) * TILE;
                if (before) memcpy(before + (t - t0) * TILE, v, m * sizeof(REAL));
                const REAL *xt = x + t * n + a;
                if (t + AHEAD < t1) NAME(prefetch)(xt + AHEAD * n, m);
                for (int64_t i = 0; i < m; i++) {
                    const REAL h = NAME(pre_spike)(v[i], b[i], xt[i], v_rest, has_rest);
                    ht[i] = h;
                    v[i] = NAME(after_reset)(reset, h, h >= th[i] ? 1 : 0, jp[i], v_reset);
                }
            }
            for (int64_t t = t1 - 1; t >= t0; t--) {
                const REAL *ht = pre + (t - t0) * TILE;
                const REAL *gs = grad_spikes ? grad_spikes + t * gs_step + a : zeros;
                const REAL *gm = grad_membrane ? grad_membrane + t * gm_step + a : zeros;
                REAL *gx = grad_x + t * n + a;
                if (t >= AHEAD) { /* rows a few steps back, which the hardware does not foresee */
                    if (grad_spikes && gs_step) NAME(prefetch)(gs - AHEAD * gs_step, m);
                    if (grad_membrane && gm_step) NAME(prefetch)(gm - AHEAD * gm_step, m);
                }
                if (t - t0 < AHEAD && t0 > 0) /* the start of the previous chunk's recompute */
                    NAME(prefetch)(x + (t0 - chunk + (t - t0)) * n + a, m);
                switch (surrogate) {
                case SG_ATAN: NAME(sigma_tile)(SG_ATAN, c1, c2, ht, th, sigma, m); break;
                case SG_FAST_SIGMOID:
                    NAME(sigma_tile)(SG_FAST_SIGMOID, c1, c2, ht, th, sigma, m);
                    break;
                case SG_SIGMOID: NAME(sigma_tile)(SG_SIGMOID, c1, c2, ht, th, sigma, m); break;
                case SG_TRIANGLE: NAME(sigma_tile)(SG_TRIANGLE, c1, c2, ht, th, sigma, m); break;
                case SG_RECTANGULAR:
                    NAME(sigma_tile)(SG_RECTANGULAR, c1, c2, ht, th, sigma, m);
                    break;
                default: NAME(sigma_tile)(SG_STRAIGHT_THROUGH, c1, c2, ht, th, sigma, m);
                }
#define REVERSE(R, D) \
    NAME(reverse_tile)(R, D, ht, th, jp, b, sigma, gs, gm, v_reset, delta, gx, dth, m)
                switch (mode) {
                case 0: REVERSE(RESET_SUBTRACT, 0); break;
                case 1: REVERSE(RESET_SUBTRACT, 1); break;
                case 2: REVERSE(RESET_ZERO, 0); break;
                case 3: REVERSE(RESET_ZERO, 1); break;
                default: REVERSE(RESET_NONE, 0);
                }
#undef REVERSE
                if (grad_v_th)
                    for (int64_t i = 0; i < m; i++) acc_v_th[i] += (double)dth[i];
                if (before) {
                    const REAL *bt = before + (t - t0) * TILE;
                    for (int64_t i = 0; i < m; i++)
                        acc_beta[i] += (double)(gx[i] * (bt[i] - v_rest));
                }
            }
        }
        for (int64_t i = 0; i < m; i++) {
            grad_v0[a + i] = delta[i];
            if (grad_beta) grad_beta[a + i] = (REAL)acc_beta[i];
            if (grad_v_th) grad_v_th[a + i] = (REAL)acc_v_th[i];
        }
    }
    free(pre);
    free(before);
    return 0;
}
