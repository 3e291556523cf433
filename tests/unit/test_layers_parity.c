/* Fast path against reference for every network-layer op of the CPU backend (backend.h
 * "network layers"): the "cpu" backend (OpenBLAS sgemm + OpenMP over the batch) must agree
 * with "cpu-reference" (plain loops, double accumulators) on the same inputs, including the
 * accumulate flags, batches smaller than the thread count, and a composite residual block and
 * attention block end to end. CTest runs it with OMP_NUM_THREADS=2 and OPENBLAS_NUM_THREADS=1,
 * so the batch-parallel conv path with per-thread accumulators is the one exercised.
 *
 * Tolerances (max |fast - ref| / max |ref|): products with float32 accumulation over K terms
 * differ from double accumulation by ~K^(1/2) * 6e-8 (K <= 600 here: ~2e-6): TOL_GEMM = 2e-5.
 * Elementwise and data-movement ops are the same loops in both modes: TOL_EXACT = 1e-6
 * (measured 0 for most), and dropout masks must match bit for bit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "nn_testutil.h"

#define TOL_GEMM 2e-5
#define TOL_EXACT 1e-6

typedef struct par {
    pfgm_backend *fast, *ref;
    nt_pool pf, pr;
} par;

static par par_open(void) {
    par p;
    p.fast = nt_backend(0);
    p.ref = nt_backend(1);
    p.pf = (nt_pool){.be = p.fast};
    p.pr = (nt_pool){.be = p.ref};
    return p;
}

static void par_close(par *p) {
    nt_pool_free(&p->pf);
    nt_pool_free(&p->pr);
    pfgm_backend_destroy(p->fast);
    pfgm_backend_destroy(p->ref);
}

/* The same random tensor in both backends (host memory on the CPU). */
static void twin(par *p, int64_t n, uint32_t key, float scale, float **f, float **r) {
    *f = nt_alloc(&p->pf, n);
    *r = nt_alloc(&p->pr, n);
    nt_randn(*f, n, key, scale, 0.0f);
    memcpy(*r, *f, (size_t)n * sizeof(float));
}

static void expect_close(const char *what, const float *fast, const float *ref, int64_t n, double tol) {
    double e = nt_max_err(fast, ref, n);
    printf("  parity %-34s n=%-7lld max rel err %.2e (tol %.0e)\n", what, (long long)n, e, tol);
    assert_true(e <= tol);
}

/* ---- convolution ------------------------------------------------------------------------- */

static void check_conv(int64_t batch, int64_t cin, int64_t cout, int64_t h, int64_t w, int k, int acc, int bias) {
    par p = par_open();
    const int64_t nx = batch * cin * h * w, ny = batch * cout * h * w, nw = cout * cin * k * k;
    float *xf, *xr, *wf, *wr, *bf, *br, *dyf, *dyr, *dxf, *dxr, *dwf, *dwr, *dbf, *dbr;
    twin(&p, nx, 1, 1.0f, &xf, &xr);
    twin(&p, nw, 2, 0.3f, &wf, &wr);
    twin(&p, cout, 3, 1.0f, &bf, &br);
    twin(&p, ny, 4, 1.0f, &dyf, &dyr);
    twin(&p, nx, 5, 1.0f, &dxf, &dxr); /* initial values: exercised when acc = 1 */
    twin(&p, nw, 6, 1.0f, &dwf, &dwr);
    twin(&p, cout, 7, 1.0f, &dbf, &dbr);
    float *yf = nt_alloc(&p.pf, ny), *yr = nt_alloc(&p.pr, ny);
    size_t wsb = p.fast->conv2d_workspace(p.fast, batch, cin, cout, h, w, k);
    assert_true(wsb > 0);
    assert_int_equal(p.ref->conv2d_workspace(p.ref, batch, cin, cout, h, w, k), 0);
    float *ws = nt_alloc(&p.pf, (int64_t)(wsb / sizeof(float)));
    assert_int_equal(p.fast->conv2d_fwd(p.fast, batch, cin, cout, h, w, k, xf, wf, bias ? bf : NULL, yf, ws, wsb),
                     PFGM_OK);
    assert_int_equal(p.ref->conv2d_fwd(p.ref, batch, cin, cout, h, w, k, xr, wr, bias ? br : NULL, yr, NULL, 0),
                     PFGM_OK);
    char what[64];
    snprintf(what, sizeof what, "conv%dx%d fwd b=%lld %lld->%lld", k, k, (long long)batch, (long long)cin,
             (long long)cout);
    expect_close(what, yf, yr, ny, TOL_GEMM);
    assert_int_equal(p.fast->conv2d_bwd(p.fast, batch, cin, cout, h, w, k, xf, wf, dyf, dxf, acc, dwf, dbf, ws, wsb),
                     PFGM_OK);
    assert_int_equal(p.ref->conv2d_bwd(p.ref, batch, cin, cout, h, w, k, xr, wr, dyr, dxr, acc, dwr, dbr, NULL, 0),
                     PFGM_OK);
    snprintf(what, sizeof what, "conv%dx%d bwd dx (acc=%d)", k, k, acc);
    expect_close(what, dxf, dxr, nx, TOL_GEMM);
    expect_close("  dweight (+=)", dwf, dwr, nw, TOL_GEMM);
    expect_close("  dbias (+=)", dbf, dbr, cout, TOL_GEMM);
    /* a workspace below one thread's share is refused, not overrun */
    assert_int_equal(p.fast->conv2d_fwd(p.fast, batch, cin, cout, h, w, k, xf, wf, bf, yf, ws, 16),
                     PFGM_ERR_INVALID_ARG);
    par_close(&p);
}

static void test_conv(void **state) {
    (void)state;
    check_conv(3, 5, 7, 6, 5, 3, 0, 1);
    check_conv(3, 5, 7, 6, 5, 3, 1, 1);
    check_conv(1, 4, 3, 4, 4, 3, 1, 0); /* fewer images than threads */
    check_conv(4, 9, 6, 3, 7, 1, 0, 1);
    check_conv(2, 9, 6, 3, 7, 1, 1, 1);
    check_conv(5, 16, 8, 2, 2, 3, 0, 1); /* every pixel touches the padding */
}

/* ---- batched gemm ------------------------------------------------------------------------ */

static void test_gemm_batched(void **state) {
    (void)state;
    par p = par_open();
    const int64_t m = 5, n = 6, k = 7, batch = 3;
    for (int ta = 0; ta < 2; ++ta)
        for (int tb = 0; tb < 2; ++tb)
            for (int red = 0; red < 2; ++red) {
                float *af, *ar, *bf, *br, *cf, *cr;
                twin(&p, batch * m * k, 10, 1.0f, &af, &ar);
                twin(&p, batch * k * n, 11, 1.0f, &bf, &br);
                twin(&p, batch * m * n, 12, 1.0f, &cf, &cr);
                const int64_t lda = ta ? m : k, ldb = tb ? k : n, sc = red ? 0 : m * n;
                assert_int_equal(p.fast->gemm_batched(p.fast, ta, tb, m, n, k, 0.7f, af, lda, m * k, bf, ldb, k * n,
                                                      0.5f, cf, n, sc, batch),
                                 PFGM_OK);
                assert_int_equal(p.ref->gemm_batched(p.ref, ta, tb, m, n, k, 0.7f, ar, lda, m * k, br, ldb, k * n,
                                                     0.5f, cr, n, sc, batch),
                                 PFGM_OK);
                char what[64];
                snprintf(what, sizeof what, "gemm_batched ta=%d tb=%d %s", ta, tb, red ? "reduce" : "strided");
                expect_close(what, cf, cr, red ? m * n : batch * m * n, TOL_GEMM);
                if (red) {
                    /* the reduction against an explicit sum of per-item products */
                    float want[5 * 6];
                    nt_randn(want, m * n, 12, 1.0f, 0.0f);
                    for (int64_t i = 0; i < m; ++i)
                        for (int64_t j = 0; j < n; ++j) {
                            double s = 0;
                            for (int64_t b = 0; b < batch; ++b)
                                for (int64_t q = 0; q < k; ++q) {
                                    float av = ta ? ar[b * m * k + q * lda + i] : ar[b * m * k + i * lda + q];
                                    float bv = tb ? br[b * k * n + j * ldb + q] : br[b * k * n + q * ldb + j];
                                    s += (double)av * bv;
                                }
                            want[i * n + j] = (float)(0.7 * s + 0.5 * want[i * n + j]);
                        }
                    expect_close("  reduction vs explicit sum", cr, want, m * n, TOL_GEMM);
                }
            }
    par_close(&p);
}

/* ---- GroupNorm ------------------------------------------------------------------------------ */

static void test_groupnorm(void **state) {
    (void)state;
    for (int silu = 0; silu < 2; ++silu) {
        par p = par_open();
        const int64_t batch = 3, c = 64, hw = 40, g = 16, n = batch * c * hw;
        float *xf, *xr, *gf, *gr, *bf, *br, *dyf, *dyr, *dxf, *dxr, *dgf, *dgr, *dbf, *dbr;
        twin(&p, n, 20, 2.0f, &xf, &xr);
        twin(&p, c, 21, 0.5f, &gf, &gr);
        twin(&p, c, 22, 0.5f, &bf, &br);
        twin(&p, n, 23, 1.0f, &dyf, &dyr);
        twin(&p, n, 24, 1.0f, &dxf, &dxr);
        twin(&p, c, 25, 1.0f, &dgf, &dgr);
        twin(&p, c, 26, 1.0f, &dbf, &dbr);
        float *yf = nt_alloc(&p.pf, n), *yr = nt_alloc(&p.pr, n);
        float *sf = nt_alloc(&p.pf, 2 * batch * g), *sr = nt_alloc(&p.pr, 2 * batch * g);
        assert_int_equal(p.fast->groupnorm_fwd(p.fast, batch, c, hw, g, 1e-6f, silu, xf, gf, bf, yf, sf, sf + batch * g),
                         PFGM_OK);
        assert_int_equal(p.ref->groupnorm_fwd(p.ref, batch, c, hw, g, 1e-6f, silu, xr, gr, br, yr, sr, sr + batch * g),
                         PFGM_OK);
        expect_close(silu ? "groupnorm+silu fwd" : "groupnorm fwd", yf, yr, n, TOL_EXACT);
        expect_close("  mean/rstd", sf, sr, 2 * batch * g, TOL_EXACT);
        assert_int_equal(p.fast->groupnorm_bwd(p.fast, batch, c, hw, g, silu, xf, gf, bf, sf, sf + batch * g, dyf, dxf,
                                               1, dgf, dbf),
                         PFGM_OK);
        assert_int_equal(p.ref->groupnorm_bwd(p.ref, batch, c, hw, g, silu, xr, gr, br, sr, sr + batch * g, dyr, dxr, 1,
                                              dgr, dbr),
                         PFGM_OK);
        expect_close("  bwd dx (acc)", dxf, dxr, n, TOL_EXACT);
        expect_close("  bwd dgamma", dgf, dgr, c, TOL_EXACT);
        expect_close("  bwd dbeta", dbf, dbr, c, TOL_EXACT);
        par_close(&p);
    }
}

/* ---- elementwise, resampling, data movement ------------------------------------------------ */

static void test_elementwise(void **state) {
    (void)state;
    par p = par_open();
    const int64_t planes = 24, h = 6, w = 8, n = planes * h * w; /* above no threshold: small */
    const int64_t big = 3 * 64 * 32 * 32;                         /* above the OpenMP threshold */
    float *xf, *xr, *yf, *yr, *df, *dr;
    for (int size = 0; size < 2; ++size) {
        const int64_t pl = size ? big / (h * w) : planes, nn = pl * h * w;
        twin(&p, 4 * nn, 30, 1.0f, &xf, &xr);
        twin(&p, 4 * nn, 31, 1.0f, &yf, &yr);
        twin(&p, 4 * nn, 32, 1.0f, &df, &dr);
        assert_int_equal(p.fast->silu_fwd(p.fast, nn, xf, yf), PFGM_OK);
        assert_int_equal(p.ref->silu_fwd(p.ref, nn, xr, yr), PFGM_OK);
        expect_close("silu fwd", yf, yr, nn, TOL_EXACT);
        assert_int_equal(p.fast->silu_bwd(p.fast, nn, xf, yf, df, 1), PFGM_OK);
        assert_int_equal(p.ref->silu_bwd(p.ref, nn, xr, yr, dr, 1), PFGM_OK);
        expect_close("silu bwd (acc)", df, dr, nn, TOL_EXACT);
        assert_int_equal(p.fast->upsample2x_fwd(p.fast, pl, h, w, xf, yf), PFGM_OK);
        assert_int_equal(p.ref->upsample2x_fwd(p.ref, pl, h, w, xr, yr), PFGM_OK);
        expect_close("upsample2x fwd", yf, yr, 4 * nn, TOL_EXACT);
        assert_int_equal(p.fast->upsample2x_bwd(p.fast, pl, h, w, yf, df, 1), PFGM_OK);
        assert_int_equal(p.ref->upsample2x_bwd(p.ref, pl, h, w, yr, dr, 1), PFGM_OK);
        expect_close("upsample2x bwd (acc)", df, dr, nn, TOL_EXACT);
        assert_int_equal(p.fast->avgpool2x2_fwd(p.fast, pl, h, w, xf, yf), PFGM_OK);
        assert_int_equal(p.ref->avgpool2x2_fwd(p.ref, pl, h, w, xr, yr), PFGM_OK);
        expect_close("avgpool2x2 fwd", yf, yr, nn / 4, TOL_EXACT);
        assert_int_equal(p.fast->avgpool2x2_bwd(p.fast, pl, h, w, yf, df, 0), PFGM_OK);
        assert_int_equal(p.ref->avgpool2x2_bwd(p.ref, pl, h, w, yr, dr, 0), PFGM_OK);
        expect_close("avgpool2x2 bwd", df, dr, nn, TOL_EXACT);
        /* broadcast add over pixels: batch 4 x c x hw */
        const int64_t bc = 4, c = pl / 4, hw = h * w;
        for (int64_t stride = 0; stride <= c; stride += c) {
            assert_int_equal(p.fast->bcast_add_fwd(p.fast, bc, c, hw, xf, stride, yf), PFGM_OK);
            assert_int_equal(p.ref->bcast_add_fwd(p.ref, bc, c, hw, xr, stride, yr), PFGM_OK);
            expect_close(stride ? "bcast_add fwd per-sample" : "bcast_add fwd bias", yf, yr, nn, TOL_EXACT);
            assert_int_equal(p.fast->bcast_add_bwd(p.fast, bc, c, hw, yf, stride, df, 1), PFGM_OK);
            assert_int_equal(p.ref->bcast_add_bwd(p.ref, bc, c, hw, yr, stride, dr, 1), PFGM_OK);
            expect_close("  bwd (acc)", df, dr, stride ? bc * c : c, TOL_EXACT);
        }
        assert_int_equal(p.fast->copy_channels(p.fast, bc, hw, c / 2, xf, c, 1, yf, c, c / 2, 1), PFGM_OK);
        assert_int_equal(p.ref->copy_channels(p.ref, bc, hw, c / 2, xr, c, 1, yr, c, c / 2, 1), PFGM_OK);
        expect_close("copy_channels (acc)", yf, yr, nn, TOL_EXACT);
        assert_int_equal(p.fast->channel_mean_fwd(p.fast, bc, c, hw, c - 1, xf, yf), PFGM_OK);
        assert_int_equal(p.ref->channel_mean_fwd(p.ref, bc, c, hw, c - 1, xr, yr), PFGM_OK);
        expect_close("channel_mean fwd", yf, yr, bc, TOL_EXACT);
        assert_int_equal(p.fast->channel_mean_bwd(p.fast, bc, c, hw, c - 1, xf, df, 1), PFGM_OK);
        assert_int_equal(p.ref->channel_mean_bwd(p.ref, bc, c, hw, c - 1, xr, dr, 1), PFGM_OK);
        expect_close("channel_mean bwd (acc)", df, dr, nn, TOL_EXACT);
        assert_int_equal(p.fast->softmax_rows(p.fast, pl, h * w, xf), PFGM_OK);
        assert_int_equal(p.ref->softmax_rows(p.ref, pl, h * w, xr), PFGM_OK);
        assert_int_equal(p.fast->softmax_rows_bwd(p.fast, pl, h * w, xf, df), PFGM_OK);
        assert_int_equal(p.ref->softmax_rows_bwd(p.ref, pl, h * w, xr, dr), PFGM_OK);
        expect_close("softmax_rows bwd", df, dr, nn, TOL_EXACT);
        /* dropout: the same mask bits in both modes (threads split the Philox stream) */
        pfgm_rng rng = {.seed = 9, .rank = 2, .stream = PFGM_STREAM_DROPOUT, .step = 77};
        assert_int_equal(p.fast->dropout_fwd(p.fast, nn, 0.2f, &rng, 1000, xf, yf), PFGM_OK);
        assert_int_equal(p.ref->dropout_fwd(p.ref, nn, 0.2f, &rng, 1000, xr, yr), PFGM_OK);
        assert_memory_equal(yf, yr, (size_t)nn * sizeof(float));
        assert_int_equal(p.fast->dropout_bwd(p.fast, nn, 0.2f, &rng, 1000, xf, df, 1), PFGM_OK);
        assert_int_equal(p.ref->dropout_bwd(p.ref, nn, 0.2f, &rng, 1000, xr, dr, 1), PFGM_OK);
        assert_memory_equal(df, dr, (size_t)nn * sizeof(float));
        (void)n;
    }
    /* z embeddings */
    for (int fourier = 0; fourier < 2; ++fourier) {
        const int64_t batch = 7, half = 32;
        float *zf, *zr, *wf, *wr, *of, *orr, *gof, *gor, *dzf, *dzr;
        twin(&p, batch, 40, 0.1f, &zf, &zr);
        for (int64_t b = 0; b < batch; ++b) zr[b] = zf[b] = fourier ? 1.0f + fabsf(zf[b]) : 30.0f * fabsf(zf[b]);
        twin(&p, half, 41, 16.0f, &wf, &wr);
        twin(&p, batch * 2 * half, 42, 1.0f, &gof, &gor);
        twin(&p, batch, 43, 1.0f, &dzf, &dzr);
        of = nt_alloc(&p.pf, batch * 2 * half);
        orr = nt_alloc(&p.pr, batch * 2 * half);
        assert_int_equal(p.fast->zembed_fwd(p.fast, batch, half, fourier, zf, wf, of), PFGM_OK);
        assert_int_equal(p.ref->zembed_fwd(p.ref, batch, half, fourier, zr, wr, orr), PFGM_OK);
        expect_close(fourier ? "zembed fourier fwd" : "zembed positional fwd", of, orr, batch * 2 * half, TOL_EXACT);
        assert_int_equal(p.fast->zembed_bwd(p.fast, batch, half, fourier, zf, wf, gof, dzf, 1), PFGM_OK);
        assert_int_equal(p.ref->zembed_bwd(p.ref, batch, half, fourier, zr, wr, gor, dzr, 1), PFGM_OK);
        expect_close("  bwd dz (acc)", dzf, dzr, batch, TOL_EXACT);
    }
    par_close(&p);
}

/* ---- composite blocks end to end ---------------------------------------------------------- */

typedef struct side {
    pfgm_backend *be;
    nt_pool pool;
    pfgm_nn_params t;
    pfgm_resblock rb;
    pfgm_attn at;
    float *slots[PFGM_RB_SLOTS];
    float *x, *skip, *temb, *out, *dout, *dx, *dskip, *dtemb;
} side;

static void test_blocks(void **state) {
    (void)state;
    side s[2];
    const int64_t batch = 3, in_ch = 16, skip_ch = 8, out_ch = 24, h = 8, w = 8, tdim = 32;
    for (int i = 0; i < 2; ++i) {
        side *S = &s[i];
        memset(S, 0, sizeof *S);
        S->be = nt_backend(i);
        S->pool.be = S->be;
        assert_int_equal(pfgm_resblock_setup(&S->rb, &S->t, "rb", in_ch, skip_ch, out_ch, h, w, 0, 1, 0.1f, 1, tdim,
                                             0.0, 0),
                         PFGM_OK);
        assert_int_equal(pfgm_attn_setup(&S->at, &S->t, "attn", out_ch, h / 2, w / 2, 1, 0.0), PFGM_OK);
        assert_int_equal(pfgm_nn_params_alloc(&S->t, S->be), PFGM_OK);
        assert_int_equal(pfgm_nn_params_initialize(&S->t, 123), PFGM_OK);
        /* Conv_1 and NIN_3 start at ~1e-5: give them O(1) values so the paths are compared */
        for (int j = 0; j < S->t.n; ++j)
            nt_randn(S->t.value + S->t.items[j].offset, S->t.items[j].count, 900u + (uint32_t)j, 0.1f,
                     strstr(S->t.items[j].name, "GroupNorm") && strstr(S->t.items[j].name, "weight") ? 1.0f : 0.0f);
        S->x = nt_alloc(&S->pool, batch * in_ch * h * w);
        S->skip = nt_alloc(&S->pool, batch * skip_ch * h * w);
        S->temb = nt_alloc(&S->pool, batch * tdim);
        nt_randn(S->x, batch * in_ch * h * w, 50, 1.0f, 0.0f);
        nt_randn(S->skip, batch * skip_ch * h * w, 51, 1.0f, 0.0f);
        nt_randn(S->temb, batch * tdim, 52, 1.0f, 0.0f);
    }
    pfgm_nn_run run = {.train = 1, .dropout_rng = {.seed = 1, .rank = 0, .stream = PFGM_STREAM_DROPOUT, .step = 4}};
    const int64_t n_mid = batch * out_ch * (h / 2) * (w / 2);
    for (int i = 0; i < 2; ++i) {
        side *S = &s[i];
        pfgm_slot_spec rspec[PFGM_RB_SLOTS], aspec[PFGM_ATTN_SLOTS];
        float *aslots[PFGM_ATTN_SLOTS];
        pfgm_resblock_slots(S->be, &S->rb, batch, 1, rspec);
        pfgm_attn_slots(&S->at, 1, aspec);
        nt_slots(&S->pool, rspec, PFGM_RB_SLOTS, batch, S->slots);
        nt_slots(&S->pool, aspec, PFGM_ATTN_SLOTS, batch, aslots);
        float *mid = nt_alloc(&S->pool, n_mid), *dmid = nt_alloc(&S->pool, n_mid);
        S->out = nt_alloc(&S->pool, n_mid);
        S->dout = nt_alloc(&S->pool, n_mid);
        S->dx = nt_alloc(&S->pool, batch * in_ch * h * w);
        S->dskip = nt_alloc(&S->pool, batch * skip_ch * h * w);
        S->dtemb = nt_alloc(&S->pool, batch * tdim);
        assert_int_equal(pfgm_resblock_forward(S->be, &S->rb, batch, &run, S->x, S->skip, S->temb, S->slots, mid),
                         PFGM_OK);
        assert_int_equal(pfgm_attn_forward(S->be, &S->at, batch, mid, aslots, S->out), PFGM_OK);
        nt_randn(S->dout, n_mid, 53, 1.0f, 0.0f);
        assert_int_equal(pfgm_attn_backward(S->be, &S->at, batch, mid, aslots, S->dout, dmid, 0), PFGM_OK);
        assert_int_equal(pfgm_resblock_backward(S->be, &S->rb, batch, &run, S->x, S->temb, S->slots, dmid, S->dx, 0,
                                                S->dskip, 0, S->dtemb, 0),
                         PFGM_OK);
    }
    expect_close("resblock(down,skip,dropout)+attn out", s[0].out, s[1].out, n_mid, TOL_GEMM);
    expect_close("  dx", s[0].dx, s[1].dx, batch * in_ch * h * w, 1e-4);
    expect_close("  dskip", s[0].dskip, s[1].dskip, batch * skip_ch * h * w, 1e-4);
    expect_close("  d act_temb", s[0].dtemb, s[1].dtemb, batch * tdim, 1e-4);
    for (int j = 0; j < s[0].t.n; ++j) {
        const pfgm_nn_param *P = &s[0].t.items[j];
        if (strstr(P->name, "NIN_1.b")) {
            /* the key bias shifts a whole row of scores: zero gradient, compared absolutely */
            for (int64_t e = 0; e < P->count; ++e) {
                assert_true(fabsf(s[0].t.grad[P->offset + e]) < 1e-4f);
                assert_true(fabsf(s[1].t.grad[P->offset + e]) < 1e-4f);
            }
            continue;
        }
        expect_close(P->name, s[0].t.grad + P->offset, s[1].t.grad + P->offset, P->count, 1e-4);
    }
    for (int i = 0; i < 2; ++i) {
        pfgm_nn_params_release(&s[i].t);
        nt_pool_free(&s[i].pool);
        pfgm_backend_destroy(s[i].be);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv),
        cmocka_unit_test(test_gemm_batched),
        cmocka_unit_test(test_groupnorm),
        cmocka_unit_test(test_elementwise),
        cmocka_unit_test(test_blocks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
