/* The LIF time loop for one floating-point type REAL; lif.c includes it once per type.

   The algorithm is snn/kernels/fused.py's (its docstring has the equations): forward keeps the
   potential at the start of every chunk of `chunk` steps; backward recomputes a chunk's pre-spike
   potentials from it into a buffer that stays in cache, then runs the reverse recurrence over the
   chunk. Neurons are independent: lif.c's run() cuts [0, n) into ranges [i0, i1), one per
   thread. A range is walked in tiles of TILE neurons; within a tile every step is a contiguous
   loop the compiler vectorizes.

   Built with -ffp-contract=off: each operation rounds as lif_step's PyTorch operations do (no
   fused multiply-add), so spikes and potentials equal the reference loop's bit for bit.

   Arrays are row-major [steps, n], except the incoming gradients (see grad_row). beta, v_th and
   jump (= v_th - v_reset) are [n]: the caller expands scalars. Optional arrays are NULL when
   absent. */

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

struct NAME(forward_args) {
    const REAL *x, *v0;
    REAL *spikes, *membrane, *starts, *v_last;
    const REAL *beta, *v_th, *jump;
    REAL v_rest, v_reset;
    int reset;
    int64_t steps, n, chunk;
};

static int NAME(forward_range)(const void *args, int64_t i0, int64_t i1) {
    const struct NAME(forward_args) *p = args;
    const REAL *x = p->x;
    REAL *spikes = p->spikes, *membrane = p->membrane, *starts = p->starts;
    const int64_t steps = p->steps, n = p->n, chunk = p->chunk;
    const REAL v_rest = p->v_rest, v_reset = p->v_reset;
    const int reset = p->reset, has_rest = v_rest != 0;
    REAL v[TILE];
    for (int64_t a = i0; a < i1; a += TILE) {
        const int64_t m = (i1 - a < TILE) ? i1 - a : TILE;
        const REAL *b = p->beta + a, *th = p->v_th + a, *jp = p->jump + a;
        memcpy(v, p->v0 + a, m * sizeof(REAL));
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
        memcpy(p->v_last + a, v, m * sizeof(REAL));
    }
    return 0;
}

/* Run the forward time loop over neurons [0, n), in `parts` ranges of `step` neurons. */
void NAME(lif_forward)(const REAL *x, const REAL *v0, REAL *spikes, REAL *membrane, REAL *starts,
                       REAL *v_last, const REAL *beta, const REAL *v_th, const REAL *jump,
                       double v_rest, double v_reset, int reset, int64_t steps, int64_t n,
                       int64_t chunk, int parts, int64_t step) {
    const struct NAME(forward_args) args = {
        x, v0, spikes, membrane, starts, v_last, beta, v_th, jump,
        (REAL)v_rest, (REAL)v_reset, reset, steps, n, chunk,
    };
    struct job job = {NAME(forward_range), &args, n, step, parts, 0};
    run(&job);
}

/* An incoming [steps, ...] gradient, read where autograd left it: step t's value for neuron i is
   data[t * step + i], or data[t * step + offsets[i]] when one step is not laid out contiguously
   (a gradient broadcast over the batch, say, has stride 0 there). step is 0 for a gradient that
   is the same at every step, as after a sum over time. NULL data: no gradient flows in. */
struct NAME(grad) {
    const REAL *data;
    int64_t step;
    const int64_t *offsets;
};

/* The tile's row of a gradient at step t: in place where it is contiguous, else gathered into
   buf; `zeros` for an absent gradient. */
static inline const REAL *NAME(grad_row)(const struct NAME(grad) *g, int64_t t, int64_t a,
                                         int64_t m, REAL *buf, const REAL *zeros) {
    if (!g->data) return zeros;
    const REAL *row = g->data + t * g->step;
    if (!g->offsets) return row + a;
    for (int64_t i = 0; i < m; i++) buf[i] = row[g->offsets[a + i]];
    return buf;
}

/* One reverse step for a tile: dL/dh into gx, dL/dv_th's term into dth (see
   snn/kernels/fused.py's table), and delta <- dL/dh * beta. `kind`, `reset` and `detach` are
   constants where this is inlined, so each combination is one branch-free, vectorized loop that
   keeps its intermediates in registers. */
static inline __attribute__((always_inline)) void NAME(reverse_tile)(
    int kind, int reset, int detach, REAL c1, REAL c2, const REAL *restrict h,
    const REAL *restrict th, const REAL *restrict jp, const REAL *restrict b,
    const REAL *restrict gs, const REAL *restrict gm, REAL v_reset, REAL *restrict delta,
    REAL *restrict gx, REAL *restrict dth, int64_t m) {
    for (int64_t i = 0; i < m; i++) {
        const REAL sigma = NAME(surrogate)(kind, c1, c2, h[i] - th[i]);
        const REAL d = delta[i] + gm[i]; /* dL/dv_t */
        const REAL s = h[i] >= th[i] ? 1 : 0;
        REAL dv_dh = 1, dv_dth = 0;
        if (reset == RESET_SUBTRACT) {
            dv_dh = detach ? 1 : 1 - jp[i] * sigma;
            dv_dth = detach ? -s : jp[i] * sigma - s;
        } else if (reset == RESET_ZERO) {
            dv_dh = detach ? 1 - s : (1 - s) + (v_reset - h[i]) * sigma;
            dv_dth = detach ? 0 : (h[i] - v_reset) * sigma;
        }
        const REAL through_spike = gs[i] * sigma;
        const REAL grad_h = d * dv_dh + through_spike;
        gx[i] = grad_h;
        dth[i] = d * dv_dth - through_spike;
        delta[i] = grad_h * b[i];
    }
}

/* reverse_tile with its constants: one case per surrogate and reset mode */
#define REVERSE_MODES(KIND)                                                                    \
    switch (mode) {                                                                            \
    case 0: NAME(reverse_tile)(KIND, RESET_SUBTRACT, 0, REVERSE_ARGS); break;                 \
    case 1: NAME(reverse_tile)(KIND, RESET_SUBTRACT, 1, REVERSE_ARGS); break;                 \
    case 2: NAME(reverse_tile)(KIND, RESET_ZERO, 0, REVERSE_ARGS); break;                     \
    case 3: NAME(reverse_tile)(KIND, RESET_ZERO, 1, REVERSE_ARGS); break;                     \
    default: NAME(reverse_tile)(KIND, RESET_NONE, 0, REVERSE_ARGS);                           \
    }

struct NAME(backward_args) {
    const REAL *x, *v0, *starts;
    struct NAME(grad) grad_spikes, grad_membrane;
    const REAL *grad_v_last;
    REAL *grad_x, *grad_v0, *grad_beta, *grad_v_th;
    const REAL *beta, *v_th, *jump;
    REAL v_rest, v_reset, c1, c2;
    int reset, detach_reset, surrogate;
    int64_t steps, n, chunk;
};

static int NAME(backward_range)(const void *args, int64_t i0, int64_t i1) {
    const struct NAME(backward_args) *p = args;
    const REAL *x = p->x, *v0 = p->v0, *starts = p->starts;
    const int64_t steps = p->steps, n = p->n, chunk = p->chunk;
    const REAL v_rest = p->v_rest, v_reset = p->v_reset, c1 = p->c1, c2 = p->c2;
    const int reset = p->reset, has_rest = v_rest != 0, surrogate = p->surrogate;
    const struct NAME(grad) *grad_spikes = &p->grad_spikes, *grad_membrane = &p->grad_membrane;
    REAL *grad_beta = p->grad_beta, *grad_v_th = p->grad_v_th;
    /* per chunk step: the pre-spike potential h, and (for dL/dbeta) the potential before it */
    REAL *pre = malloc((size_t)chunk * TILE * sizeof(REAL));
    REAL *before = grad_beta ? malloc((size_t)chunk * TILE * sizeof(REAL)) : NULL;
    if (!pre || (grad_beta && !before)) {
        free(pre);
        free(before);
        return -1;
    }
    REAL v[TILE], delta[TILE], dth[TILE], gs_buf[TILE], gm_buf[TILE];
    REAL zeros[TILE] = {0}; /* stands in for an absent incoming gradient */
    double acc_beta[TILE], acc_v_th[TILE]; /* sums over time, in double */
    const int64_t chunks = (steps + chunk - 1) / chunk;
    const int mode = reset == RESET_NONE ? 4 : 2 * reset + (p->detach_reset != 0);
    /* rows a few steps back are prefetched where they lie in place and change with the step */
    const int64_t gs_ahead = grad_spikes->offsets ? 0 : AHEAD * grad_spikes->step;
    const int64_t gm_ahead = grad_membrane->offsets ? 0 : AHEAD * grad_membrane->step;
    for (int64_t a = i0; a < i1; a += TILE) {
        const int64_t m = (i1 - a < TILE) ? i1 - a : TILE;
        const REAL *b = p->beta + a, *th = p->v_th + a, *jp = p->jump + a;
        for (int64_t i = 0; i < m; i++) {
            delta[i] = p->grad_v_last ? p->grad_v_last[a + i] : 0;
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
                const REAL *gs = NAME(grad_row)(grad_spikes, t, a, m, gs_buf, zeros);
                const REAL *gm = NAME(grad_row)(grad_membrane, t, a, m, gm_buf, zeros);
                REAL *gx = p->grad_x + t * n + a;
                if (t >= AHEAD) { /* rows a few steps back, which the hardware does not foresee */
                    if (gs_ahead) NAME(prefetch)(gs - gs_ahead, m);
                    if (gm_ahead) NAME(prefetch)(gm - gm_ahead, m);
                }
                if (t - t0 < AHEAD && t0 > 0) /* the start of the previous chunk's recompute */
                    NAME(prefetch)(x + (t0 - chunk + (t - t0)) * n + a, m);
#define REVERSE_ARGS c1, c2, ht, th, jp, b, gs, gm, v_reset, delta, gx, dth, m
                switch (surrogate) {
                case SG_ATAN: REVERSE_MODES(SG_ATAN); break;
                case SG_FAST_SIGMOID: REVERSE_MODES(SG_FAST_SIGMOID); break;
                case SG_SIGMOID: REVERSE_MODES(SG_SIGMOID); break;
                case SG_TRIANGLE: REVERSE_MODES(SG_TRIANGLE); break;
                case SG_RECTANGULAR: REVERSE_MODES(SG_RECTANGULAR); break;
                default: REVERSE_MODES(SG_STRAIGHT_THROUGH);
                }
#undef REVERSE_ARGS
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
            p->grad_v0[a + i] = delta[i];
            if (grad_beta) grad_beta[a + i] = (REAL)acc_beta[i];
            if (grad_v_th) grad_v_th[a + i] = (REAL)acc_v_th[i];
        }
    }
    free(pre);
    free(before);
    return 0;
}

/* Reverse the steps over neurons [0, n), in `parts` ranges of `step` neurons. The incoming
   gradients are (data, step, offsets) triples (see struct grad); grad_v_last may be NULL.
   grad_beta and grad_v_th (per neuron, summed over time) are NULL when not needed. Writes dL/dI
   into grad_x and dL/dv0 into grad_v0. Returns 0, or -1 if out of memory. */
int NAME(lif_backward)(const REAL *x, const REAL *v0, const REAL *starts, const REAL *gs_data,
                       int64_t gs_step, const int64_t *gs_offsets, const REAL *gm_data,
                       int64_t gm_step, const int64_t *gm_offsets, const REAL *grad_v_last,
                       REAL *grad_x, REAL *grad_v0, REAL *grad_beta, REAL *grad_v_th,
                       const REAL *beta, const REAL *v_th, const REAL *jump, double v_rest,
                       double v_reset, int reset, int detach_reset, int surrogate, double c1,
                       double c2, int64_t steps, int64_t n, int64_t chunk, int parts,
                       int64_t step) {
    const struct NAME(backward_args) args = {
        x, v0, starts, {gs_data, gs_step, gs_offsets}, {gm_data, gm_step, gm_offsets},
        grad_v_last, grad_x, grad_v0, grad_beta, grad_v_th, beta, v_th, jump,
        (REAL)v_rest, (REAL)v_reset, (REAL)c1, (REAL)c2, reset, detach_reset, surrogate,
        steps, n, chunk,
    };
    struct job job = {NAME(backward_range), &args, n, step, parts, 0};
    return run(&job);
}

#undef REVERSE_MODES
