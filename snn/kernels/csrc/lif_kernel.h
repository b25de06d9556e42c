/* The time loop of the LIF family (LIF, CubaLIF, ALIF) for one floating-point type REAL; lif.c
   includes it once per type.

   One neuron, every part but the membrane optional (snn/kernels/family.py's docstring derives
   the forward and reverse recurrences):

       c_t     = g_in x_t                          (family neurons; the LIF's caller applies it)
       i_t     = alpha i_{t-1} + c_t,   I_t = g_cur i_t       (current state: CubaLIF)
       h_t     = v_rest + beta (v_{t-1} - v_rest) + I_t
       theta_t = v_th + adapt a_{t-1}                         (threshold state: ALIF)
       s_t     = H(h_t - theta_t),      v_t = reset(h_t, s_t, theta_t)
       a_t     = rho a_{t-1} + (1 - rho) s_t

   The step is written once (cell_step forward, reverse_tile backward) with the optional states
   as compile-time flags, `current` and `adaptive`: each variant's range function passes
   constants, so the compiler drops the parts that are off: the LIF's variant is the LIF's loop
   alone, timed as fast as before the family existed.

   The algorithm is snn/kernels/fused.py's: forward keeps the state at the start of every chunk
   of `chunk` steps; backward recomputes a chunk's pre-spike potentials (and states) from it into
   buffers that stay in cache, then runs the reverse recurrence over the chunk. Neurons are
   independent: lif.c's run() cuts [0, n) into ranges [i0, i1), one per thread. A range is
   walked in tiles of TILE neurons; within a tile every step is a contiguous loop the compiler
   vectorizes.

   Built with -ffp-contract=off: each operation rounds as the reference steps' PyTorch operations
   do (no fused multiply-add), so spikes and states equal the reference loop's bit for bit. The
   reverse recurrence, which computes gradients only, uses explicit fused multiply-adds (FMA):
   fewer operations, each rounded once (the gradients agree with autograd's to rounding).

   Arrays are row-major [steps, n], except the incoming gradients (see grad_row). A parameter
   (param[P_*], see lif.c) is [n] where bit P_* of `per_neuron` is set, else a single value: the
   entry point repeats it into a row of TILE (fill_rows), which every tile reads and which
   stays in L1, instead of an [n] expansion that would double the traffic of the states. A NULL
   initial state (state0[S_*]) is the resting one (v_rest; 0 for the current and the
   adaptation), and a NULL grad_state0[S_*] is not asked for. jump (= v_th - v_reset) serves
   the neurons without a threshold state; one_minus_rho is 1 - rho as the reference computes
   it (NULL: 1 - rho rounded to REAL, see one_minus_rho()). A NULL gain (g_in, g_cur) is 1 (see
   gains(): a neuron whose gains are all 1 runs a variant without their products). Optional
   arrays are NULL when absent. Without parameter gradients the backward keeps the current of
   the step it recomputes in one row, not the chunk's rows that dL/dalpha and dL/dg_cur read. */

static inline REAL NAME(surrogate)(int kind, REAL c1, REAL c2, REAL u) {
    switch (kind) {
    case SG_ATAN: { /* c1 = alpha / 2, c2 = pi * alpha / 2 */
        const REAL z = c2 * u;
        return c1 / FMA(z, z, 1);
    }
    case SG_FAST_SIGMOID: { /* c2 = slope */
        const REAL d = FMA(c2, FABS(u), 1);
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
   is one short run, which the hardware prefetchers do not see coming. A row about to be written
   is asked for with intent to write: without it every store that misses the cache waits for
   its line (measured: a third of the LIF's forward time at [25, 128, 1000]). */
static inline void NAME(prefetch)(const REAL *row, int64_t m) {
    for (int64_t i = 0; i < m; i += 64 / sizeof(REAL)) __builtin_prefetch(row + i);
}
static inline void NAME(prefetch_write)(REAL *row, int64_t m) {
    for (int64_t i = 0; i < m; i += 64 / sizeof(REAL)) __builtin_prefetch(row + i, 1);
}

/* The neurons of the tile after the one at a, in a range ending at i1 (0: none). */
static inline int64_t NAME(next_tile)(int64_t a, int64_t i1) {
    return (i1 - a - TILE < TILE) ? (i1 - a - TILE > 0 ? i1 - a - TILE : 0) : TILE;
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

/* The kernel's parameters into `out`: a per-neuron one as it is, a single-valued one repeated
   into its row of `rows` (the caller's, alive while the kernel runs) and pointed at there. */
static inline void NAME(fill_rows)(REAL rows[P_COUNT][TILE], const REAL *const *param,
                                   int64_t per_neuron, const REAL **out) {
    for (int k = 0; k < P_COUNT; k++) {
        out[k] = param[k];
        if (!param[k] || (per_neuron >> k) & 1) continue;
        for (int i = 0; i < TILE; i++) rows[k][i] = param[k][0];
        out[k] = rows[k];
    }
}

/* A tile's starting state: from s0, or `rest` where there is none. */
static inline void NAME(start_at)(REAL *s, const REAL *s0, int64_t a, int64_t m, REAL rest) {
    if (s0) {
        memcpy(s, s0 + a, m * sizeof(REAL));
    } else {
        for (int64_t i = 0; i < m; i++) s[i] = rest;
    }
}

/* A tile's state at the start of chunk c: the initial one (start_at) or the one saved there. */
static inline void NAME(chunk_start)(REAL *s, const REAL *s0, const REAL *starts, int64_t c,
                                     int64_t n, int64_t a, int64_t m, REAL rest) {
    if (c == 0)
        NAME(start_at)(s, s0, a, m, rest);
    else
        memcpy(s, starts + (c - 1) * n + a, m * sizeof(REAL));
}

/* A tile's parameters: each points at the tile's first neuron, NULL where absent. */
struct NAME(tile) {
    const REAL *beta, *v_th, *jump, *alpha, *g_cur, *g_in, *rho, *one_minus_rho, *adapt;
};

static inline struct NAME(tile) NAME(tile_at)(const REAL *const *param, int64_t per_neuron,
                                              int64_t a) {
#define AT(k) (param[k] ? param[k] + ((per_neuron >> (k)) & 1 ? a : 0) : NULL)
    const struct NAME(tile) q = {
        AT(P_BETA), AT(P_V_TH), AT(P_JUMP), AT(P_ALPHA), AT(P_G_CUR), AT(P_G_IN),
        AT(P_RHO), AT(P_ONE_MINUS_RHO), AT(P_ADAPT),
    };
#undef AT
    return q;
}

/* One forward step of neuron i: updates its potential *v (and current *cur, adaptation *ad),
   stores the pre-spike potential in *h, returns the spike. Each line rounds as the reference
   step's operation does (snn/family_functional.py): products before sums. `unit`: the gains are
   1 (the variants without them), so they are not read. */
static inline __attribute__((always_inline)) REAL NAME(cell_step)(
    const int current, const int adaptive, const int unit, const struct NAME(tile) *q, int64_t i,
    REAL x, REAL *v, REAL *cur, REAL *ad, REAL v_rest, int has_rest, int reset, REAL v_reset,
    REAL *h) {
    REAL drive = x;
    if ((current || adaptive) && !unit) drive = q->g_in[i] * drive;
    if (current) {
        *cur = q->alpha[i] * *cur + drive;
        drive = unit ? *cur : q->g_cur[i] * *cur;
    }
    const REAL pre = NAME(pre_spike)(*v, q->beta[i], drive, v_rest, has_rest);
    const REAL theta = adaptive ? q->v_th[i] + q->adapt[i] * *ad : q->v_th[i];
    const REAL s = pre >= theta ? 1 : 0;
    *h = pre;
    *v = NAME(after_reset)(reset, pre, s, adaptive ? theta - v_reset : q->jump[i], v_reset);
    /* s is 0 or 1: s * (1 - rho) is exact */
    if (adaptive) *ad = q->rho[i] * *ad + q->one_minus_rho[i] * s;
    return s;
}

/* ROW(reset) with the reset mode a constant for the family's variants (the compiler unswitches
   the LIF's loop by itself, but not the family's longer ones); the LIF's as it is. */
#define SPECIALIZED(ROW)                                                                       \
    if (current || adaptive) {                                                                 \
        switch (reset) {                                                                       \
        case RESET_SUBTRACT: ROW(RESET_SUBTRACT); break;                                       \
        case RESET_ZERO: ROW(RESET_ZERO); break;                                               \
        default: ROW(RESET_NONE);                                                              \
        }                                                                                      \
    } else {                                                                                   \
        ROW(reset);                                                                            \
    }

struct NAME(forward_args) {
    const REAL *x;
    const REAL *state0[S_COUNT];
    REAL *spikes, *membrane;
    REAL *starts[S_COUNT], *last[S_COUNT];
    const REAL *param[P_COUNT];
    int64_t per_neuron;
    REAL v_rest, v_reset;
    int reset;
    int64_t steps, n, chunk;
};

static inline __attribute__((always_inline)) int NAME(cell_forward)(
    const void *args, int64_t i0, int64_t i1, const int current, const int adaptive,
    const int unit) {
    const struct NAME(forward_args) *p = args;
    const REAL *x = p->x;
    REAL *spikes = p->spikes, *membrane = p->membrane, *starts = p->starts[S_V];
    const int64_t steps = p->steps, n = p->n, chunk = p->chunk;
    const REAL v_rest = p->v_rest, v_reset = p->v_reset;
    const int reset = p->reset, has_rest = v_rest != 0;
    REAL v[TILE], cur[TILE], ad[TILE];
    for (int64_t a = i0; a < i1; a += TILE) {
        const int64_t m = (i1 - a < TILE) ? i1 - a : TILE, next = NAME(next_tile)(a, i1);
        const size_t row = m * sizeof(REAL);
        const struct NAME(tile) q = NAME(tile_at)(p->param, p->per_neuron, a);
        NAME(start_at)(v, p->state0[S_V], a, m, v_rest);
        if (current) NAME(start_at)(cur, p->state0[S_I], a, m, 0);
        if (adaptive) NAME(start_at)(ad, p->state0[S_A], a, m, 0);
        for (int64_t t = 0; t < steps; t++) {
            if (t > 0 && t % chunk == 0) {
                memcpy(starts + (t / chunk - 1) * n + a, v, row);
                if (current) memcpy(p->starts[S_I] + (t / chunk - 1) * n + a, cur, row);
                if (adaptive) memcpy(p->starts[S_A] + (t / chunk - 1) * n + a, ad, row);
            }
            const REAL *xt = x + t * n + a;
            REAL *st = spikes + t * n + a;
            if (t + AHEAD < steps) {
                NAME(prefetch)(xt + AHEAD * n, m);
                NAME(prefetch_write)(st + AHEAD * n, m);
            } else if (next && t + AHEAD - steps < steps) { /* the next tile's first rows */
                const int64_t r = (t + AHEAD - steps) * n + a + TILE;
                NAME(prefetch)(x + r, next);
                NAME(prefetch_write)(spikes + r, next);
            }
#define FORWARD_ROW(RESET)                                                                     \
    for (int64_t i = 0; i < m; i++) {                                                          \
        REAL h;                                                                                \
        st[i] = NAME(cell_step)(current, adaptive, unit, &q, i, xt[i], &v[i], &cur[i], &ad[i], \
                                v_rest, has_rest, RESET, v_reset, &h);                         \
    }
            SPECIALIZED(FORWARD_ROW)
#undef FORWARD_ROW
            if (membrane) memcpy(membrane + t * n + a, v, row);
        }
        memcpy(p->last[S_V] + a, v, row);
        if (current) memcpy(p->last[S_I] + a, cur, row);
        if (adaptive) memcpy(p->last[S_A] + a, ad, row);
    }
    return 0;
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

/* One reverse step for a tile: dL/dx into gx, dL/dtheta into dth (see snn/kernels/fused.py's
   table; theta is v_th without a threshold state), and delta <- dL/dv_{t-1} = dL/dh * beta.
   With a current state: di (dL/di_t from later steps on entry) <- dL/di_{t-1}, dc <- dL/dc_t.
   With a threshold state: da (dL/da_t on entry) <- dL/da_{t-1}, and rterm <- dL/da_t (a_{t-1} -
   s_t), dL/drho's term; a_prev is a_{t-1}. Family neurons also store dL/dh into gh. Without
   `grads` (no parameter's gradient is asked for) nothing but gx, delta, di and da is stored.
   `kind`, `reset`, `detach` and the flags are constants where this is inlined, so each
   combination is one branch-free, vectorized loop that keeps its intermediates in registers. */
static inline __attribute__((always_inline)) void NAME(reverse_tile)(
    const int current, const int adaptive, const int unit, const int grads, int kind, int reset,
    int detach, REAL c1, REAL c2,
    const REAL *restrict h, const REAL *restrict th, const REAL *restrict jp,
    const REAL *restrict b, const REAL *restrict gs, const REAL *restrict gm, REAL v_reset,
    REAL *restrict delta, REAL *restrict gx, REAL *restrict dth, const REAL *restrict alpha,
    const REAL *restrict g_cur, const REAL *restrict g_in, const REAL *restrict rho,
    const REAL *restrict omr, const REAL *restrict adapt, const REAL *restrict a_prev,
    REAL *restrict di, REAL *restrict da, REAL *restrict gh, REAL *restrict dc,
    REAL *restrict rterm, int64_t m) {
    for (int64_t i = 0; i < m; i++) {
        const REAL theta = adaptive ? th[i] + adapt[i] * a_prev[i] : th[i];
        const REAL jump = adaptive ? theta - v_reset : jp[i];
        const REAL sigma = NAME(surrogate)(kind, c1, c2, h[i] - theta);
        const REAL d = delta[i] + gm[i]; /* dL/dv_t */
        const REAL s = h[i] >= theta ? 1 : 0;
        REAL dv_dh = 1, dv_dth = 0;
        if (reset == RESET_SUBTRACT) {
            dv_dh = detach ? 1 : FMA(-jump, sigma, 1);
            dv_dth = detach ? -s : FMA(jump, sigma, -s);
        } else if (reset == RESET_ZERO) {
            dv_dh = detach ? 1 - s : FMA(v_reset - h[i], sigma, 1 - s);
            dv_dth = detach ? 0 : (h[i] - v_reset) * sigma;
        }
        /* dL/ds_t: the output's, and through a_t = rho a_{t-1} + (1 - rho) s_t */
        const REAL grad_s = adaptive ? FMA(omr[i], da[i], gs[i]) : gs[i];
        const REAL through_spike = grad_s * sigma;
        const REAL grad_h = FMA(d, dv_dh, through_spike);
        const REAL grad_theta = FMA(d, dv_dth, -through_spike);
        REAL grad_c = grad_h; /* dL/dc_t */
        if (current) {
            grad_c = unit ? grad_h + di[i] : FMA(g_cur[i], grad_h, di[i]);
            di[i] = alpha[i] * grad_c;
            if (grads) dc[i] = grad_c;
        }
        gx[i] = (current || adaptive) && !unit ? g_in[i] * grad_c : grad_c;
        if (grads) dth[i] = grad_theta;
        delta[i] = grad_h * b[i];
        if ((current || adaptive) && grads) gh[i] = grad_h;
        if (adaptive) {
            if (grads) rterm[i] = da[i] * (a_prev[i] - s);
            da[i] = FMA(rho[i], da[i], adapt[i] * grad_theta);
        }
    }
}

/* reverse_tile with its constants: one case per surrogate and reset mode */
#define REVERSE_MODES(KIND)                                                                    \
    switch (mode) {                                                                            \
    case 0: NAME(reverse_tile)(CELL, KIND, RESET_SUBTRACT, 0, REVERSE_ARGS); break;          \
    case 1: NAME(reverse_tile)(CELL, KIND, RESET_SUBTRACT, 1, REVERSE_ARGS); break;          \
    case 2: NAME(reverse_tile)(CELL, KIND, RESET_ZERO, 0, REVERSE_ARGS); break;              \
    case 3: NAME(reverse_tile)(CELL, KIND, RESET_ZERO, 1, REVERSE_ARGS); break;              \
    default: NAME(reverse_tile)(CELL, KIND, RESET_NONE, 0, REVERSE_ARGS);                    \
    }

struct NAME(backward_args) {
    const REAL *x;
    const REAL *state0[S_COUNT], *starts[S_COUNT];
    struct NAME(grad) grad_spikes, grad_membrane;
    const REAL *grad_last[S_COUNT];
    REAL *grad_x;
    REAL *grad_state0[S_COUNT], *grad_param[P_COUNT];
    const REAL *param[P_COUNT];
    int64_t per_neuron;
    REAL v_rest, v_reset, c1, c2;
    int reset, detach_reset, surrogate;
    int64_t steps, n, chunk;
};

/* dL/dparameter's sum over time in double, per neuron of the tile */
static inline void NAME(accumulate)(double *acc, const REAL *u, const REAL *w, int64_t m) {
    for (int64_t i = 0; i < m; i++) acc[i] += (double)(u[i] * w[i]);
}

static inline __attribute__((always_inline)) int NAME(cell_backward)(
    const void *args, int64_t i0, int64_t i1, const int current, const int adaptive,
    const int unit, const int grads) {
    const struct NAME(backward_args) *p = args;
    const REAL *x = p->x, *v0 = p->state0[S_V], *starts = p->starts[S_V];
    const int64_t steps = p->steps, n = p->n, chunk = p->chunk;
    const REAL v_rest = p->v_rest, v_reset = p->v_reset, c1 = p->c1, c2 = p->c2;
    const int reset = p->reset, has_rest = v_rest != 0, surrogate = p->surrogate;
    const struct NAME(grad) *grad_spikes = &p->grad_spikes, *grad_membrane = &p->grad_membrane;
    REAL *grad_beta = p->grad_param[P_BETA], *grad_v_th = p->grad_param[P_V_TH];
    REAL *const *grad_param = p->grad_param;
    const size_t rows = (size_t)chunk * TILE * sizeof(REAL);
    /* per chunk step: the pre-spike potential h, and (for dL/dbeta) the potential before it;
       the current and the adaptation before each step and after the last (without grads, the
       current only as it runs: one row) */
    REAL *pre = malloc(rows);
    REAL *before = grad_beta ? malloc(rows) : NULL;
    REAL *cur_at = current ? malloc(grads ? rows + TILE * sizeof(REAL) : TILE * sizeof(REAL))
                           : NULL;
    REAL *ad_at = adaptive ? malloc(rows + TILE * sizeof(REAL)) : NULL;
    if (!pre || (grad_beta && !before) || (current && !cur_at) || (adaptive && !ad_at)) {
        free(pre);
        free(before);
        free(cur_at);
        free(ad_at);
        return -1;
    }
    REAL v[TILE], delta[TILE], dth[TILE], gs_buf[TILE], gm_buf[TILE];
    REAL di[TILE], da[TILE], gh[TILE], dc[TILE], rterm[TILE];
    REAL zeros[TILE] = {0}; /* stands in for an absent incoming gradient */
    double acc_beta[TILE], acc_v_th[TILE]; /* sums over time, in double */
    double acc_alpha[TILE], acc_g_cur[TILE], acc_g_in[TILE], acc_rho[TILE], acc_adapt[TILE];
    const int64_t chunks = (steps + chunk - 1) / chunk;
    const int mode = reset == RESET_NONE ? 4 : 2 * reset + (p->detach_reset != 0);
    /* rows a few steps back are prefetched where they lie in place and change with the step */
    const int64_t gs_ahead = grad_spikes->offsets ? 0 : AHEAD * grad_spikes->step;
    const int64_t gm_ahead = grad_membrane->offsets ? 0 : AHEAD * grad_membrane->step;
    for (int64_t a = i0; a < i1; a += TILE) {
        const int64_t m = (i1 - a < TILE) ? i1 - a : TILE, next = NAME(next_tile)(a, i1);
        const size_t row = m * sizeof(REAL);
        const struct NAME(tile) q = NAME(tile_at)(p->param, p->per_neuron, a);
        const REAL *b = q.beta, *th = q.v_th, *jp = q.jump;
        for (int64_t i = 0; i < m; i++) {
            delta[i] = p->grad_last[S_V] ? p->grad_last[S_V][a + i] : 0;
            acc_beta[i] = 0;
            acc_v_th[i] = 0;
        }
        if (current)
            for (int64_t i = 0; i < m; i++) {
                di[i] = p->grad_last[S_I] ? p->grad_last[S_I][a + i] : 0;
                acc_alpha[i] = acc_g_cur[i] = 0;
            }
        if (adaptive)
            for (int64_t i = 0; i < m; i++) {
                da[i] = p->grad_last[S_A] ? p->grad_last[S_A][a + i] : 0;
                acc_rho[i] = acc_adapt[i] = 0;
            }
        if (current || adaptive)
            for (int64_t i = 0; i < m; i++) acc_g_in[i] = 0;
        for (int64_t c = chunks - 1; c >= 0; c--) {
            const int64_t t0 = c * chunk, t1 = (t0 + chunk < steps) ? t0 + chunk : steps;
            NAME(chunk_start)(v, v0, starts, c, n, a, m, v_rest);
            if (current) NAME(chunk_start)(cur_at, p->state0[S_I], p->starts[S_I], c, n, a, m, 0);
            if (adaptive) NAME(chunk_start)(ad_at, p->state0[S_A], p->starts[S_A], c, n, a, m, 0);
            for (int64_t t = t0; t < t1; t++) { /* recompute h exactly as the forward did */
                const int64_t k = t - t0;
                REAL *ht = pre + k * TILE;
                REAL *ck = current ? cur_at + (grads ? k * TILE : 0) : NULL;
                REAL *ak = adaptive ? ad_at + k * TILE : NULL;
                if (before) memcpy(before + k * TILE, v, row);
                const REAL *xt = x + t * n + a;
                if (t + AHEAD < t1) {
                    NAME(prefetch)(xt + AHEAD * n, m);
                } else if (2 * t1 - 1 - t - AHEAD >= t0) { /* the reverse loop's first rows */
                    const int64_t r = 2 * t1 - 1 - t - AHEAD;
                    if (grad_spikes->data && !grad_spikes->offsets)
                        NAME(prefetch)(grad_spikes->data + r * grad_spikes->step + a, m);
                    NAME(prefetch_write)(p->grad_x + r * n + a, m);
                }
#define RECOMPUTE_ROW(RESET)                                                                   \
    for (int64_t i = 0; i < m; i++) {                                                          \
        REAL cur = current ? ck[i] : 0, ad = adaptive ? ak[i] : 0;                             \
        NAME(cell_step)(current, adaptive, unit, &q, i, xt[i], &v[i], &cur, &ad, v_rest,       \
                        has_rest, RESET, v_reset, &ht[i]);                                     \
        if (current) ck[grads ? TILE + i : i] = cur;                                           \
        if (adaptive) ak[TILE + i] = ad;                                                       \
    }
                SPECIALIZED(RECOMPUTE_ROW)
#undef RECOMPUTE_ROW
            }
            for (int64_t t = t1 - 1; t >= t0; t--) {
                const int64_t k = t - t0;
                const REAL *ht = pre + k * TILE;
                const REAL *ak = adaptive ? ad_at + k * TILE : NULL;
                const REAL *gs = NAME(grad_row)(grad_spikes, t, a, m, gs_buf, zeros);
                const REAL *gm = NAME(grad_row)(grad_membrane, t, a, m, gm_buf, zeros);
                REAL *gx = p->grad_x + t * n + a;
                if (t >= AHEAD) { /* rows a few steps back, which the hardware does not foresee */
                    if (gs_ahead) NAME(prefetch)(gs - gs_ahead, m);
                    if (gm_ahead) NAME(prefetch)(gm - gm_ahead, m);
                    NAME(prefetch_write)(gx - AHEAD * n, m);
                }
                if (k < AHEAD && t0 > 0) /* the start of the previous chunk's recompute */
                    NAME(prefetch)(x + (t0 - chunk + k) * n + a, m);
                /* the next tile's, which starts with the last chunk */
                const int64_t first = (chunks - 1) * chunk + AHEAD - 1 - k;
                if (k < AHEAD && t0 == 0 && next && first < steps)
                    NAME(prefetch)(x + first * n + a + TILE, next);
#define CELL current, adaptive, unit, grads
#define REVERSE_ARGS                                                                           \
    c1, c2, ht, th, jp, b, gs, gm, v_reset, delta, gx, dth, q.alpha, q.g_cur, q.g_in, q.rho,   \
        q.one_minus_rho, q.adapt, ak, di, da, gh, dc, rterm, m
                switch (surrogate) {
                case SG_ATAN: REVERSE_MODES(SG_ATAN); break;
                case SG_FAST_SIGMOID: REVERSE_MODES(SG_FAST_SIGMOID); break;
                case SG_SIGMOID: REVERSE_MODES(SG_SIGMOID); break;
                case SG_TRIANGLE: REVERSE_MODES(SG_TRIANGLE); break;
                case SG_RECTANGULAR: REVERSE_MODES(SG_RECTANGULAR); break;
                default: REVERSE_MODES(SG_STRAIGHT_THROUGH);
                }
#undef REVERSE_ARGS
#undef CELL
                if (grad_v_th)
                    for (int64_t i = 0; i < m; i++) acc_v_th[i] += (double)dth[i];
                /* dL/dh: the LIF's is its input gradient */
                const REAL *grad_h = (current || adaptive) ? gh : gx;
                if (before) {
                    const REAL *bt = before + k * TILE;
                    for (int64_t i = 0; i < m; i++)
                        acc_beta[i] += (double)(grad_h[i] * (bt[i] - v_rest));
                }
                if ((!current && !adaptive) || !grads) continue;
                const REAL *grad_c = current ? dc : gh; /* dL/dc_t */
                if (grad_param[P_G_IN]) NAME(accumulate)(acc_g_in, grad_c, x + t * n + a, m);
                if (current && grad_param[P_ALPHA]) /* with i_{t-1} */
                    NAME(accumulate)(acc_alpha, dc, cur_at + k * TILE, m);
                if (current && grad_param[P_G_CUR]) /* with i_t */
                    NAME(accumulate)(acc_g_cur, gh, cur_at + (k + 1) * TILE, m);
                if (adaptive && grad_param[P_ADAPT]) /* with a_{t-1} */
                    NAME(accumulate)(acc_adapt, dth, ak, m);
                if (adaptive && grad_param[P_RHO])
                    for (int64_t i = 0; i < m; i++) acc_rho[i] += (double)rterm[i];
            }
        }
        for (int64_t i = 0; i < m; i++) {
            if (p->grad_state0[S_V]) p->grad_state0[S_V][a + i] = delta[i];
            if (grad_beta) grad_beta[a + i] = (REAL)acc_beta[i];
            if (grad_v_th) grad_v_th[a + i] = (REAL)acc_v_th[i];
        }
#define STORE(k, acc)                                                                          \
    if (grad_param[k])                                                                         \
        for (int64_t i = 0; i < m; i++) grad_param[k][a + i] = (REAL)acc[i];
        if (current) {
            if (p->grad_state0[S_I]) memcpy(p->grad_state0[S_I] + a, di, row);
            STORE(P_ALPHA, acc_alpha)
            STORE(P_G_CUR, acc_g_cur)
        }
        if (adaptive) {
            if (p->grad_state0[S_A]) memcpy(p->grad_state0[S_A] + a, da, row);
            STORE(P_RHO, acc_rho)
            STORE(P_ADAPT, acc_adapt)
        }
        if (current || adaptive) STORE(P_G_IN, acc_g_in)
#undef STORE
    }
    free(pre);
    free(before);
    free(cur_at);
    free(ad_at);
    return 0;
}

#undef REVERSE_MODES
#undef SPECIALIZED

/* The variants' range functions: the flags are constants here, so each is specialized. The
   family's backward has one without parameter gradients (the usual case for a layer whose
   parameters are fixed) that stores nothing for them, and so does the LIF's. */
static int NAME(forward_lif)(const void *args, int64_t i0, int64_t i1) {
    return NAME(cell_forward)(args, i0, i1, 0, 0, 0);
}
static int NAME(backward_lif)(const void *args, int64_t i0, int64_t i1) {
    return NAME(cell_backward)(args, i0, i1, 0, 0, 0, 1);
}
static int NAME(backward_lif_fixed)(const void *args, int64_t i0, int64_t i1) {
    return NAME(cell_backward)(args, i0, i1, 0, 0, 0, 0);
}
#ifdef SNN_FAMILY
static int NAME(forward_cuba)(const void *args, int64_t i0, int64_t i1) {
    return NAME(cell_forward)(args, i0, i1, 1, 0, 0);
}
static int NAME(forward_cuba_unit)(const void *args, int64_t i0, int64_t i1) {
    return NAME(cell_forward)(args, i0, i1, 1, 0, 1);
}
static int NAME(forward_alif)(const void *args, int64_t i0, int64_t i1) {
    return NAME(cell_forward)(args, i0, i1, 0, 1, 0);
}
static int NAME(backward_cuba)(const void *args, int64_t i0, int64_t i1) {
    return NAME(cell_backward)(args, i0, i1, 1, 0, 0, 1);
}
static int NAME(backward_cuba_unit)(const void *args, int64_t i0, int64_t i1) {
    return NAME(cell_backward)(args, i0, i1, 1, 0, 1, 1);
}
static int NAME(backward_alif)(const void *args, int64_t i0, int64_t i1) {
    return NAME(cell_backward)(args, i0, i1, 0, 1, 0, 1);
}
static int NAME(forward_alif_unit)(const void *args, int64_t i0, int64_t i1) {
    return NAME(cell_forward)(args, i0, i1, 0, 1, 1);
}
static int NAME(backward_alif_unit)(const void *args, int64_t i0, int64_t i1) {
    return NAME(cell_backward)(args, i0, i1, 0, 1, 1, 1);
}
static int NAME(backward_alif_unit_fixed)(const void *args, int64_t i0, int64_t i1) {
    return NAME(cell_backward)(args, i0, i1, 0, 1, 1, 0);
}
static int NAME(backward_cuba_fixed)(const void *args, int64_t i0, int64_t i1) {
    return NAME(cell_backward)(args, i0, i1, 1, 0, 0, 0);
}
static int NAME(backward_cuba_unit_fixed)(const void *args, int64_t i0, int64_t i1) {
    return NAME(cell_backward)(args, i0, i1, 1, 0, 1, 0);
}
static int NAME(backward_alif_fixed)(const void *args, int64_t i0, int64_t i1) {
    return NAME(cell_backward)(args, i0, i1, 0, 1, 0, 0);
}
#endif

/* Run the LIF's forward time loop over neurons [0, n), in `parts` ranges of `step` neurons. */
void NAME(lif_forward)(const REAL *x, const REAL *v0, REAL *spikes, REAL *membrane, REAL *starts,
                       REAL *v_last, const REAL *beta, const REAL *v_th, const REAL *jump,
                       int64_t per_neuron, double v_rest, double v_reset, int reset,
                       int64_t steps, int64_t n, int64_t chunk, int parts, int64_t step) {
    const REAL *param[P_COUNT] = {beta, v_th, jump, NULL, NULL, NULL, NULL, NULL, NULL};
    struct NAME(forward_args) args = {
        x, {v0, NULL, NULL}, spikes, membrane, {starts, NULL, NULL}, {v_last, NULL, NULL},
        {NULL}, per_neuron, (REAL)v_rest, (REAL)v_reset, reset, steps, n, chunk,
    };
    REAL rows[P_COUNT][TILE];
    NAME(fill_rows)(rows, param, per_neuron, args.param);
    struct job job = {NAME(forward_lif), &args, n, step, parts, 0};
    run(&job);
}

/* Reverse the LIF's steps over neurons [0, n), in `parts` ranges of `step` neurons. The incoming
   gradients are (data, step, offsets) triples (see struct grad); grad_v_last may be NULL.
   grad_beta and grad_v_th (per neuron, summed over time) are NULL when not needed. Writes dL/dI
   into grad_x and dL/dv0 into grad_v0. Returns 0, or -1 if out of memory. */
int NAME(lif_backward)(const REAL *x, const REAL *v0, const REAL *starts, const REAL *gs_data,
                       int64_t gs_step, const int64_t *gs_offsets, const REAL *gm_data,
                       int64_t gm_step, const int64_t *gm_offsets, const REAL *grad_v_last,
                       REAL *grad_x, REAL *grad_v0, REAL *grad_beta, REAL *grad_v_th,
                       const REAL *beta, const REAL *v_th, const REAL *jump, int64_t per_neuron,
                       double v_rest, double v_reset, int reset, int detach_reset, int surrogate,
                       double c1, double c2, int64_t steps, int64_t n, int64_t chunk, int parts,
                       int64_t step) {
    const REAL *param[P_COUNT] = {beta, v_th, jump, NULL, NULL, NULL, NULL, NULL, NULL};
    struct NAME(backward_args) args = {
        x, {v0, NULL, NULL}, {starts, NULL, NULL}, {gs_data, gs_step, gs_offsets},
        {gm_data, gm_step, gm_offsets}, {grad_v_last, NULL, NULL}, grad_x,
        {grad_v0, NULL, NULL}, {grad_beta, grad_v_th, NULL, NULL, NULL, NULL, NULL, NULL, NULL},
        {NULL}, per_neuron, (REAL)v_rest, (REAL)v_reset, (REAL)c1, (REAL)c2, reset,
        detach_reset, surrogate, steps, n, chunk,
    };
    REAL rows[P_COUNT][TILE];
    NAME(fill_rows)(rows, param, per_neuron, args.param);
    const int grads = grad_beta || grad_v_th;
    struct job job = {grads ? NAME(backward_lif) : NAME(backward_lif_fixed), &args, n, step,
                      parts, 0};
    return run(&job);
}

#ifdef SNN_FAMILY
/* The family's entry points (built with SNN_FAMILY defined, as a library of their own: the
   variants take several times the LIF's compile time): `variant` is 1 for a current state
   (CubaLIF), 2 for a threshold state (ALIF); anything else is refused (-2). state0, starts and
   last are [S_COUNT] arrays (the potential, the current, the adaptation: NULL where the neuron
   has no such state, and in state0 for a state at rest), param is [P_COUNT]. */

/* Point a NULL parameter k at its row of rows, filled with ones. */
static inline void NAME(ones)(REAL rows[P_COUNT][TILE], const REAL **param, int k) {
    if (param[k]) return;
    for (int i = 0; i < TILE; i++) rows[k][i] = 1;
    param[k] = rows[k];
}

/* A NULL gain (g_in, g_cur) is 1. The CubaLIF (variant 1) with both NULL, and the ALIF (variant
   2) with a NULL g_in, run their variants without them (unit: 1 returned); a lone NULL gain of
   the CubaLIF's is pointed at a row of ones. */
static int NAME(gains)(REAL rows[P_COUNT][TILE], const REAL **param, int variant) {
    if (variant == 1 && !param[P_G_IN] && !param[P_G_CUR]) return 1;
    if (variant == 2 && !param[P_G_IN]) return 1;
    NAME(ones)(rows, param, P_G_IN);
    if (variant == 1) NAME(ones)(rows, param, P_G_CUR);
    return 0;
}

/* The ALIF's 1 - rho where the caller passed none (for a rho that is a tensor: 1 - rho rounded
   to REAL, as torch rounds it): into its row, or for a per-neuron rho into an [n] array that
   *owned points at, for the caller to free. Returns -1 if out of memory. */
static int NAME(one_minus_rho)(REAL rows[P_COUNT][TILE], const REAL **param,
                               int64_t *per_neuron, int64_t n, REAL **owned) {
    *owned = NULL;
    if (param[P_ONE_MINUS_RHO] || !param[P_RHO]) return 0;
    if (!((*per_neuron >> P_RHO) & 1)) {
        for (int i = 0; i < TILE; i++) rows[P_ONE_MINUS_RHO][i] = 1 - param[P_RHO][0];
        param[P_ONE_MINUS_RHO] = rows[P_ONE_MINUS_RHO];
        return 0;
    }
    REAL *omr = malloc((n > 0 ? n : 1) * sizeof(REAL));
    if (!omr) return -1;
    for (int64_t i = 0; i < n; i++) omr[i] = 1 - param[P_RHO][i];
    param[P_ONE_MINUS_RHO] = *owned = omr;
    *per_neuron |= (int64_t)1 << P_ONE_MINUS_RHO;
    return 0;
}

/* What both entry points make of the parameters: their rows (fill_rows), the gains (gains()),
   1 - rho (one_minus_rho(): *owned, for the caller to free). Returns the index of the variant's
   range function (its variant number, or the variant's unit one after them), -1 if out of
   memory, -2 for another variant. */
static int NAME(family_parameters)(REAL rows[P_COUNT][TILE], const REAL *const *param,
                                   const REAL **out, int64_t *per_neuron, int64_t n,
                                   int variant, REAL **owned) {
    if (variant != 1 && variant != 2) return -2;
    NAME(fill_rows)(rows, param, *per_neuron, out);
    const int unit = NAME(gains)(rows, out, variant);
    if (NAME(one_minus_rho)(rows, out, per_neuron, n, owned)) return -1;
    return unit ? variant + 2 : variant;
}

int NAME(family_forward)(const REAL *x, int variant, const REAL *const *state0, REAL *spikes,
                         REAL *membrane, REAL *const *starts, REAL *const *last,
                         const REAL *const *param, int64_t per_neuron, double v_rest,
                         double v_reset, int reset, int64_t steps, int64_t n, int64_t chunk,
                         int parts, int64_t step) {
    struct NAME(forward_args) args = {
        x, {NULL}, spikes, membrane, {NULL}, {NULL}, {NULL}, per_neuron, (REAL)v_rest,
        (REAL)v_reset, reset, steps, n, chunk,
    };
    for (int k = 0; k < S_COUNT; k++) {
        args.state0[k] = state0[k];
        args.starts[k] = starts[k];
        args.last[k] = last[k];
    }
    /* by family_parameters()'s index; 0, the LIF, is lif_forward's */
    static int (*const ranges[])(const void *, int64_t, int64_t) = {
        NULL, NAME(forward_cuba), NAME(forward_alif), NAME(forward_cuba_unit),
        NAME(forward_alif_unit)};
    REAL rows[P_COUNT][TILE], *owned;
    const int k = NAME(family_parameters)(rows, param, args.param, &args.per_neuron, n, variant,
                                          &owned);
    if (k < 0) return k;
    struct job job = {ranges[k], &args, n, step, parts, 0};
    const int status = run(&job);
    free(owned);
    return status;
}

/* grad_last: dL/d(the last states), each NULL when none flows in; grad_state0: where dL/d(the
   initial states) go; grad_param: where each parameter's gradient (per neuron, summed over
   time) goes, NULL when not needed. Returns 0, -1 if out of memory, -2 for another variant. */
int NAME(family_backward)(const REAL *x, int variant, const REAL *const *state0,
                          const REAL *const *starts,
                          const REAL *gs_data, int64_t gs_step, const int64_t *gs_offsets,
                          const REAL *gm_data, int64_t gm_step, const int64_t *gm_offsets,
                          const REAL *const *grad_last, REAL *grad_x, REAL *const *grad_state0,
                          REAL *const *grad_param, const REAL *const *param,
                          int64_t per_neuron, double v_rest, double v_reset, int reset,
                          int detach_reset, int surrogate, double c1, double c2, int64_t steps,
                          int64_t n, int64_t chunk, int parts, int64_t step) {
    struct NAME(backward_args) args = {
        x, {NULL}, {NULL}, {gs_data, gs_step, gs_offsets}, {gm_data, gm_step, gm_offsets},
        {NULL}, grad_x, {NULL}, {NULL}, {NULL}, per_neuron, (REAL)v_rest, (REAL)v_reset,
        (REAL)c1, (REAL)c2, reset, detach_reset, surrogate, steps, n, chunk,
    };
    for (int k = 0; k < S_COUNT; k++) {
        args.state0[k] = state0[k];
        args.starts[k] = starts[k];
        args.grad_last[k] = grad_last[k];
        args.grad_state0[k] = grad_state0[k];
    }
    for (int k = 0; k < P_COUNT; k++) args.grad_param[k] = grad_param[k];
    /* by family_parameters()'s index, as in family_forward */
    static int (*const ranges[])(const void *, int64_t, int64_t) = {
        NULL, NAME(backward_cuba), NAME(backward_alif), NAME(backward_cuba_unit),
        NAME(backward_alif_unit)};
    static int (*const fixed[])(const void *, int64_t, int64_t) = {
        NULL, NAME(backward_cuba_fixed), NAME(backward_alif_fixed),
        NAME(backward_cuba_unit_fixed), NAME(backward_alif_unit_fixed)};
    REAL rows[P_COUNT][TILE], *owned;
    const int k = NAME(family_parameters)(rows, param, args.param, &args.per_neuron, n, variant,
                                          &owned);
    if (k < 0) return k;
    int grads = 0;
    for (int j = 0; j < P_COUNT; j++) grads |= grad_param[j] != NULL;
    struct job job = {(grads ? ranges : fixed)[k], &args, n, step, parts, 0};
    const int status = run(&job);
    free(owned);
    return status;
}
#endif /* SNN_FAMILY */
