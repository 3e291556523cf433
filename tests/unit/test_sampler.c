/* The sampler through the library API, on a checkpoint trained here (configs/tiny.yaml,
 * 4 steps on a fixture dataset, checkpoints at steps 2 and 4): choosing the checkpoint of
 * a run directory (newest complete one; temporaries and corrupt files skipped), Euler and
 * Heun NFE, RK45's NFE law, seeds, EMA vs raw parameters, the global-batch keying and the
 * rank partition, the output files (PNG grid read back through libpng, HDF5 float and
 * uint8 datasets), and the errors. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "pfgm/backend.h"
#include "pfgm/checkpoint.h"
#include "pfgm/comm.h"
#include "pfgm/image.h"
#include "pfgm/log.h"
#include "pfgm/sampler.h"
#include "pfgm/samples.h"
#include "pfgm/trainer.h"
#include "train_testutil.h"
#include "util/atomic_file.h"

static char dir_[512], data_[600], run_[600], ckpt2_[700], ckpt4_[700];
static pfgm_backend *be_;
static pfgm_logger lg_;

static int setup(void **state) {
    (void)state;
    fx_mkdtemp(dir_, sizeof dir_);
    fx_join(data_, sizeof data_, dir_, "data.h5");
    fx_join(run_, sizeof run_, dir_, "run");
    if (fx_write_dataset(data_, 64, 1, 8, 1) != PFGM_OK) return -1;
    if (pfgm_backend_create("cpu", &be_) != PFGM_OK) return -1;
    pfgm_logger_init(&lg_, 0);
    lg_.level = PFGM_LOG_WARN;
    pfgm_comm *comm = NULL;
    pfgm_config cfg;
    if (pfgm_comm_single_create(&comm) != PFGM_OK || tr_config(&cfg, data_, 4, NULL, 0) != PFGM_OK) return -1;
    pfgm_train_options o = {.run_dir = run_, .resume = "auto"};
    pfgm_train_result r;
    pfgm_status st = pfgm_train(&cfg, &o, comm, be_, &lg_, &r);
    pfgm_comm_destroy(comm);
    if (st != PFGM_OK) {
        fprintf(stderr, "training the fixture checkpoint: %s\n", pfgm_error_message());
        return -1;
    }
    pfgm_ckpt_path(run_, 2, ckpt2_, sizeof ckpt2_);
    pfgm_ckpt_path(run_, 4, ckpt4_, sizeof ckpt4_);
    return fx_exists(ckpt2_) && fx_exists(ckpt4_) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    pfgm_backend_destroy(be_);
    fx_rm_rf(dir_);
    return 0;
}

/* The checkpoint's embedded config with the given assignments. */
static void ckpt_config(const char *ckpt, pfgm_config *cfg, const char *const *sets, size_t n) {
    pfgm_ckpt *ck = NULL;
    assert_int_equal(pfgm_ckpt_open(ckpt, &ck), PFGM_OK);
    *cfg = *pfgm_ckpt_config(ck);
    pfgm_ckpt_close(ck);
    for (size_t i = 0; i < n; ++i) assert_int_equal(pfgm_config_set(cfg, sets[i]), PFGM_OK);
    assert_int_equal(pfgm_config_validate(cfg), PFGM_OK);
}

/* num samples of ckpt into a malloc'ed [num, 64] buffer. */
static float *draw(const char *ckpt, const char *const *sets, size_t n, int64_t num, uint32_t seed, int use_params,
                   pfgm_sample_result *res) {
    pfgm_config cfg;
    ckpt_config(ckpt, &cfg, sets, n);
    float *x = malloc(sizeof(float) * (size_t)(num * 64));
    assert_non_null(x);
    pfgm_ckpt *ck = NULL;
    assert_int_equal(pfgm_ckpt_open(ckpt, &ck), PFGM_OK);
    pfgm_sample_options o = {.checkpoint = ck, .num_samples = num, .seed = seed, .use_params = use_params};
    pfgm_status st = pfgm_sample_draw(&cfg, &o, NULL, be_, &lg_, x, res);
    pfgm_ckpt_close(ck);
    if (st != PFGM_OK) fprintf(stderr, "pfgm_sample_draw: %s\n", pfgm_error_message());
    assert_int_equal(st, PFGM_OK);
    for (int64_t i = 0; i < num * 64; ++i) assert_true(isfinite(x[i]));
    return x;
}

/* pfgm_sample_open_checkpoint of path: OK and the handle's file and step, or the status. */
static pfgm_status open_ckpt(const char *path, const pfgm_logger *lg, char *got, size_t cap, int64_t *step) {
    pfgm_ckpt *ck = NULL;
    got[0] = '\0';
    *step = -1;
    pfgm_status st = pfgm_sample_open_checkpoint(path, lg, &ck);
    if (st == PFGM_OK) {
        snprintf(got, cap, "%s", pfgm_ckpt_file(ck));
        *step = pfgm_ckpt_meta_of(ck)->step;
    } else {
        assert_null(ck);
    }
    pfgm_ckpt_close(ck);
    return st;
}

static void test_find_checkpoint(void **state) {
    (void)state;
    char got[4096], path[800], tmp[800], bad[800];
    int64_t step;
    assert_int_equal(open_ckpt(run_, &lg_, got, sizeof got, &step), PFGM_OK);
    assert_string_equal(got, ckpt4_);
    assert_int_equal(step, 4);
    /* a newer unfinished write (a full copy, but under a temporary name) is never chosen,
     * and a newer complete-looking but truncated checkpoint is skipped, and left in place */
    snprintf(tmp, sizeof tmp, "%s/checkpoints/ckpt_00000009.h5.tmp.4242", run_);
    assert_int_equal(fx_copy_file(ckpt4_, tmp), 0);
    snprintf(bad, sizeof bad, "%s/checkpoints/ckpt_00000006.h5", run_);
    assert_int_equal(fx_copy_file(ckpt4_, bad), 0);
    fx_truncate(bad, 4000);
    pfgm_logger quiet = lg_;
    quiet.level = PFGM_LOG_ERROR; /* the skip warning */
    assert_int_equal(open_ckpt(run_, &quiet, got, sizeof got, &step), PFGM_OK);
    assert_string_equal(got, ckpt4_);
    assert_int_equal(step, 4);
    assert_true(fx_exists(bad));
    /* a temporary named directly is refused */
    assert_int_equal(open_ckpt(tmp, &lg_, got, sizeof got, &step), PFGM_ERR_FORMAT);
    assert_non_null(strstr(pfgm_error_message(), "ckpt_00000009.h5.tmp.4242"));
    assert_int_equal(open_ckpt(bad, &lg_, got, sizeof got, &step), PFGM_ERR_FORMAT);
    assert_non_null(strstr(pfgm_error_message(), "ckpt_00000006.h5"));
    unlink(tmp);
    unlink(bad);
    /* a file: its own step */
    assert_int_equal(open_ckpt(ckpt2_, &lg_, got, sizeof got, &step), PFGM_OK);
    assert_string_equal(got, ckpt2_);
    assert_int_equal(step, 2);
    /* missing file, empty run directory, not a checkpoint */
    fx_join(path, sizeof path, dir_, "missing.h5");
    assert_int_equal(open_ckpt(path, &lg_, got, sizeof got, &step), PFGM_ERR_IO);
    assert_non_null(strstr(pfgm_error_message(), "missing.h5"));
    fx_join(path, sizeof path, dir_, "empty_run");
    assert_int_equal(mkdir(path, 0755), 0);
    assert_int_equal(open_ckpt(path, &lg_, got, sizeof got, &step), PFGM_ERR_IO);
    assert_non_null(strstr(pfgm_error_message(), "no complete checkpoint"));
    assert_int_equal(step, -1);
    assert_int_not_equal(open_ckpt(data_, &lg_, got, sizeof got, &step), PFGM_OK);
    assert_non_null(strstr(pfgm_error_message(), "data.h5"));
    /* a run directory whose only checkpoint is damaged: FORMAT, naming the problem */
    char run2[800], dst[900];
    fx_join(run2, sizeof run2, dir_, "damaged_run");
    snprintf(dst, sizeof dst, "%s/checkpoints", run2);
    assert_int_equal(pfgm_mkdirs(dst), PFGM_OK);
    snprintf(dst, sizeof dst, "%s/checkpoints/ckpt_00000004.h5", run2);
    assert_int_equal(fx_copy_file(ckpt4_, dst), 0);
    fx_truncate(dst, 4000);
    assert_int_equal(open_ckpt(run2, &quiet, got, sizeof got, &step), PFGM_ERR_FORMAT);
    assert_non_null(strstr(pfgm_error_message(), "none of the 1 checkpoints"));
    assert_true(fx_exists(dst)); /* a reader never moves files */
}

static void test_euler_heun_rk45_nfe(void **state) {
    (void)state;
    pfgm_sample_result r;
    const char *euler[] = {"sampling.ode_solver=forward_euler", "sampling.N=3"};
    free(draw(ckpt4_, euler, 2, 6, 1, 0, &r));
    assert_int_equal(r.batches, 2); /* sampling.batch_size 4: 4 + 2 */
    assert_int_equal(r.nfe_min, 3);
    assert_int_equal(r.nfe_max, 3);
    assert_int_equal(r.nfe_total, 6);
    assert_true(r.images_per_s > 0);
    const char *heun[] = {"sampling.ode_solver=improved_euler", "sampling.N=3"};
    free(draw(ckpt4_, heun, 2, 6, 1, 0, &r));
    assert_int_equal(r.nfe_min, 5);
    assert_int_equal(r.nfe_max, 5);
    const char *rk45[] = {"sampling.ode_solver=rk45", "sampling.rk45_rtol=1e-3", "sampling.rk45_atol=1e-3"};
    free(draw(ckpt4_, rk45, 3, 4, 1, 0, &r));
    printf("RK45 (1e-3): NFE %lld\n", (long long)r.nfe_min);
    assert_int_equal(r.batches, 1);
    assert_true(r.nfe_min >= 8);
    assert_int_equal((r.nfe_min - 2) % 6, 0); /* 2 + 6 attempts */
}

/* sampling.rk45_step_control reaches the solver, through the network: on a batch of one
 * the per-sample controller gives the batch-global bits; on a batch of 4 it takes its own
 * steps (other bits) to samples within the tolerance of the batch-global ones. */
static void test_rk45_step_control(void **state) {
    (void)state;
    pfgm_sample_result r;
    const char *g[] = {"sampling.ode_solver=rk45", "sampling.rk45_rtol=1e-3", "sampling.rk45_atol=1e-3"};
    const char *p[] = {"sampling.ode_solver=rk45", "sampling.rk45_rtol=1e-3", "sampling.rk45_atol=1e-3",
                       "sampling.rk45_step_control=per_sample"};
    float *a = draw(ckpt4_, g, 3, 1, 5, 0, &r), *b = draw(ckpt4_, p, 4, 1, 5, 0, &r);
    assert_memory_equal(a, b, 64 * sizeof(float));
    float *c = draw(ckpt4_, g, 3, 4, 5, 0, &r);
    const int64_t nfe_g = r.nfe_min;
    float *d = draw(ckpt4_, p, 4, 4, 5, 0, &r);
    assert_memory_not_equal(c, d, 4 * 64 * sizeof(float));
    double worst = 0.0;
    for (int i = 0; i < 4 * 64; ++i) worst = fmax(worst, fabs(c[i] - d[i]) / (1e-3 + 1e-3 * fabs(c[i])));
    printf("batch of 4, RK45 1e-3: batch-global NFE %lld, per-sample %lld batched calls; samples %.3f units of "
           "atol + rtol |x| apart\n", (long long)nfe_g, (long long)r.nfe_min, worst);
    /* RK45 bounds the local error per step (< 1 unit), not the global one: measured 7.8
     * units apart after ~6 steps; 50 leaves room for rounding, and samples given another
     * sample's path would differ by far more */
    assert_true(worst <= 50.0);
    free(a);
    free(b);
    free(c);
    free(d);
}

static void test_seed_ema_batches(void **state) {
    (void)state;
    pfgm_sample_result r;
    const size_t n = 6 * 64 * sizeof(float);
    float *a = draw(ckpt4_, NULL, 0, 6, 5, 0, &r);
    float *b = draw(ckpt4_, NULL, 0, 6, 5, 0, &r);
    assert_memory_equal(a, b, n); /* same seed: the same bits */
    float *c = draw(ckpt4_, NULL, 0, 6, 6, 0, &r);
    assert_memory_not_equal(a, c, n);
    float *d = draw(ckpt4_, NULL, 0, 6, 5, 1, &r); /* raw parameters */
    assert_memory_not_equal(a, d, n);
    float *e = draw(ckpt2_, NULL, 0, 6, 5, 0, &r); /* another checkpoint */
    assert_memory_not_equal(a, e, n);
    /* global batch 0 is keyed by its index alone: the first 4 of 6 samples are the 4
     * samples of a run of 4; the second batch's 2 are not a repeat of the first batch */
    float *f = draw(ckpt4_, NULL, 0, 4, 5, 0, &r);
    assert_memory_equal(a, f, 4 * 64 * sizeof(float));
    assert_memory_not_equal(a, a + 4 * 64, 2 * 64 * sizeof(float));
    free(a);
    free(b);
    free(c);
    free(d);
    free(e);
    free(f);
}

static void test_partition(void **state) {
    (void)state;
    for (int64_t num = 1; num <= 40; ++num)
        for (int64_t bs = 1; bs <= 9; bs += 4)
            for (int w = 1; w <= 5; ++w) {
                int64_t nb = (num + bs - 1) / bs, next = 0, lo = INT64_MAX, hi = 0;
                for (int r = 0; r < w; ++r) {
                    int64_t first, count;
                    pfgm_sample_partition(num, bs, w, r, &first, &count);
                    if (count) assert_int_equal(first, next); /* contiguous, in rank order */
                    next += count;
                    lo = count < lo ? count : lo;
                    hi = count > hi ? count : hi;
                }
                assert_int_equal(next, nb);
                assert_true(hi - lo <= 1);
            }
    int64_t first, count;
    pfgm_sample_partition(10, 4, 2, 0, &first, &count); /* 3 batches: rank 0 two, rank 1 one */
    assert_int_equal(first, 0);
    assert_int_equal(count, 2);
    pfgm_sample_partition(10, 4, 2, 1, &first, &count);
    assert_int_equal(first, 2);
    assert_int_equal(count, 1);
}

static void test_grid_columns(void **state) {
    (void)state;
    const int64_t n[] = {1, 2, 4, 5, 9, 10, 63, 64, 65, 1000000};
    const int64_t c[] = {1, 2, 2, 3, 3, 4, 8, 8, 9, 1000};
    for (size_t i = 0; i < sizeof n / sizeof n[0]; ++i) assert_int_equal(pfgm_samples_grid_columns(n[i]), c[i]);
}

static int64_t read_int_attr(hid_t f, const char *name) {
    int64_t v = -99;
    hid_t a = H5Aopen(f, name, H5P_DEFAULT);
    assert_true(a >= 0);
    assert_true(H5Aread(a, H5T_NATIVE_INT64, &v) >= 0);
    H5Aclose(a);
    return v;
}

static void test_outputs(void **state) {
    (void)state;
    pfgm_sample_result r;
    const char *euler[] = {"sampling.ode_solver=forward_euler", "sampling.N=2"};
    float *x = draw(ckpt4_, euler, 2, 10, 3, 0, &r);
    char png[700], h5[700];
    fx_join(png, sizeof png, dir_, "out/sub/grid.png"); /* parents are created */
    fx_join(h5, sizeof h5, dir_, "out/sub/samples.h5");
    pfgm_samples_meta meta = {.checkpoint = ckpt4_, .step = 4, .solver = "forward_euler", .nfe = r.mean_nfe,
                              .seed = 3, .weights = "ema"};
    assert_int_equal(pfgm_samples_write_outputs(png, h5, x, 10, 1, 8, 8, &meta), PFGM_OK);
    /* 10 images -> 4 columns x 3 rows of 8x8 with 2 pixels of padding */
    pfgm_image g;
    assert_int_equal(pfgm_png_read(png, 1, &g), PFGM_OK);
    assert_int_equal(g.width, 4 * 10 + 2);
    assert_int_equal(g.height, 3 * 10 + 2);
    uint8_t u[640];
    pfgm_samples_to_uint8(640, x, u);
    for (int y = 0; y < 8; ++y) /* image 5: row 1, column 1 */
        for (int c = 0; c < 8; ++c) assert_int_equal(g.pixels[(12 + y) * g.width + 12 + c], u[5 * 64 + y * 8 + c]);
    pfgm_image_free(&g);

    hid_t f = H5Fopen(h5, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t ds = H5Dopen2(f, "samples_float", H5P_DEFAULT);
    assert_true(ds >= 0);
    hid_t sp = H5Dget_space(ds);
    hsize_t dims[4];
    assert_int_equal(H5Sget_simple_extent_ndims(sp), 4);
    H5Sget_simple_extent_dims(sp, dims, NULL);
    assert_true(dims[0] == 10 && dims[1] == 1 && dims[2] == 8 && dims[3] == 8);
    hid_t t = H5Dget_type(ds);
    assert_true(H5Tget_class(t) == H5T_FLOAT && H5Tget_size(t) == 4);
    H5Tclose(t);
    float xf[640];
    assert_true(H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, xf) >= 0);
    assert_memory_equal(xf, x, sizeof xf);
    H5Sclose(sp);
    H5Dclose(ds);
    ds = H5Dopen2(f, "samples", H5P_DEFAULT);
    t = H5Dget_type(ds);
    assert_true(H5Tget_class(t) == H5T_INTEGER && H5Tget_size(t) == 1 && H5Tget_sign(t) == H5T_SGN_NONE);
    H5Tclose(t);
    uint8_t ub[640];
    assert_true(H5Dread(ds, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, ub) >= 0);
    H5Dclose(ds);
    int varied = 0;
    for (int i = 0; i < 640; ++i) { /* the authors' conversion, recomputed here */
        float v = 255.0f * ((xf[i] + 1.0f) * 0.5f);
        v = v < 0.0f ? 0.0f : v > 255.0f ? 255.0f : v;
        assert_int_equal(ub[i], (uint8_t)v);
        varied |= ub[i] != ub[0];
    }
    assert_true(varied);
    assert_int_equal(read_int_attr(f, "step"), 4);
    assert_int_equal(read_int_attr(f, "seed"), 3);
    double nfe = 0;
    hid_t a = H5Aopen(f, "nfe", H5P_DEFAULT);
    assert_true(H5Aread(a, H5T_NATIVE_DOUBLE, &nfe) >= 0);
    H5Aclose(a);
    assert_true(nfe == 2.0);
    H5Fclose(f);

    /* all or nothing: a PNG that cannot be written (its name is a directory) takes the
     * HDF5 file just written with it */
    char dirpng[700], h5b[700];
    fx_join(dirpng, sizeof dirpng, dir_, "out/sub/taken.png");
    fx_join(h5b, sizeof h5b, dir_, "out/sub/other.h5");
    assert_int_equal(mkdir(dirpng, 0755), 0);
    assert_int_not_equal(pfgm_samples_write_outputs(dirpng, h5b, x, 10, 1, 8, 8, &meta), PFGM_OK);
    assert_false(fx_exists(h5b));
    char sub[700];
    fx_join(sub, sizeof sub, dir_, "out/sub");
    assert_int_equal(fx_count_prefix(sub, "other.h5"), 0);
    assert_int_equal(fx_count_prefix(sub, "taken.png."), 0);
    free(x);
}

static void test_errors(void **state) {
    (void)state;
    pfgm_config cfg;
    ckpt_config(ckpt4_, &cfg, NULL, 0);
    float x[64];
    pfgm_sample_result r;
    char path[700];
    fx_join(path, sizeof path, dir_, "missing.h5");
    (void)path;
    pfgm_sample_options o = {.checkpoint = NULL, .num_samples = 1, .seed = 1};
    assert_int_equal(pfgm_sample_draw(&cfg, &o, NULL, be_, &lg_, x, &r), PFGM_ERR_INVALID_ARG);
    assert_non_null(strstr(pfgm_error_message(), "no open checkpoint"));
    /* a model config that does not match the checkpoint's tensors */
    pfgm_config wide;
    const char *nf[] = {"model.nf=32"};
    ckpt_config(ckpt4_, &wide, nf, 1);
    pfgm_ckpt *ck = NULL;
    assert_int_equal(pfgm_ckpt_open(ckpt4_, &ck), PFGM_OK);
    o.checkpoint = ck;
    assert_int_equal(pfgm_sample_draw(&wide, &o, NULL, be_, &lg_, x, &r), PFGM_ERR_FORMAT);
    assert_non_null(strstr(pfgm_error_message(), "ckpt_00000004.h5"));
    o.num_samples = 0;
    assert_int_equal(pfgm_sample_draw(&cfg, &o, NULL, be_, &lg_, x, &r), PFGM_ERR_INVALID_ARG);
    o.num_samples = 1;
    assert_int_equal(pfgm_sample_draw(&cfg, &o, NULL, be_, &lg_, NULL, &r), PFGM_ERR_INVALID_ARG);
    pfgm_ckpt_close(ck);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_find_checkpoint), cmocka_unit_test(test_euler_heun_rk45_nfe), cmocka_unit_test(test_rk45_step_control),
        cmocka_unit_test(test_seed_ema_batches), cmocka_unit_test(test_partition),
        cmocka_unit_test(test_grid_columns),    cmocka_unit_test(test_outputs),
        cmocka_unit_test(test_errors)};
    return cmocka_run_group_tests(tests, setup, teardown);
}
