/* pfgm-sample as a process, on a checkpoint trained here (configs/tiny.yaml, 4 steps on a
 * fixture dataset): the PNG grid (read back through libpng) and the HDF5 file (float and
 * uint8 samples, attributes), --checkpoint given a run directory (newest complete
 * checkpoint, a temporary ignored), --no-ema, seeds, Euler/Heun NFE, RK45 tolerances, and
 * the bad inputs (one-line error, exit code, nothing left behind).
 * With --mpi (CTest sampler_cli_mpi): `mpirun -np 2 pfgm-sample` writes the same files,
 * bitwise, as a single-process run, and an error under mpirun ends the job.
 * Environment: PFGM_SAMPLE (the binary), MPIEXEC (tests/sample.cmake). */
#include <fcntl.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/wait.h>
#include <time.h>
#include <cmocka.h>

#include "io/h5util.h"
#include "pfgm/backend.h"
#include "pfgm/checkpoint.h"
#include "pfgm/comm.h"
#include "pfgm/image.h"
#include "pfgm/log.h"
#include "pfgm/samples.h"
#include "pfgm/trainer.h"
#include "train_testutil.h"

static char dir_[512], data_[600], run_[600], ckpt2_[700], ckpt4_[700], out_[700], err_[700];
static const char *sample_, *mpiexec_;

static int setup(void **state) {
    (void)state;
    sample_ = getenv("PFGM_SAMPLE");
    mpiexec_ = getenv("MPIEXEC");
    if (!sample_ || !fx_exists(sample_)) {
        fprintf(stderr, "PFGM_SAMPLE does not name the pfgm-sample binary\n");
        return -1;
    }
    fx_mkdtemp(dir_, sizeof dir_);
    fx_join(data_, sizeof data_, dir_, "data.h5");
    fx_join(run_, sizeof run_, dir_, "run");
    fx_join(out_, sizeof out_, dir_, "stdout.txt");
    fx_join(err_, sizeof err_, dir_, "stderr.txt");
    if (fx_write_dataset(data_, 64, 1, 8, 1) != PFGM_OK) return -1;
    pfgm_backend *be = NULL;
    pfgm_comm *comm = NULL;
    pfgm_logger lg;
    pfgm_logger_init(&lg, 0);
    lg.level = PFGM_LOG_WARN;
    pfgm_config cfg;
    if (pfgm_backend_create("cpu", &be) != PFGM_OK || pfgm_comm_single_create(&comm) != PFGM_OK ||
        tr_config(&cfg, data_, 4, NULL, 0) != PFGM_OK)
        return -1;
    pfgm_train_options o = {.run_dir = run_, .resume = "auto"};
    pfgm_train_result r;
    pfgm_status st = pfgm_train(&cfg, &o, comm, be, &lg, &r);
    pfgm_comm_destroy(comm);
    pfgm_backend_destroy(be);
    if (st != PFGM_OK) {
        fprintf(stderr, "training the fixture checkpoint: %s\n", pfgm_error_message());
        return -1;
    }
    pfgm_ckpt_path(run_, 2, ckpt2_, sizeof ckpt2_);
    pfgm_ckpt_path(run_, 4, ckpt4_, sizeof ckpt4_);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    fx_rm_rf(dir_);
    return 0;
}

/* Runs argv (NULL-terminated) with stdout/stderr into out_/err_; the exit code, 128 + the
 * signal, or -1 when it did not end within `limit` seconds (then it is killed). */
static int run_argv(const char *const *argv, int limit) {
    pid_t p = fork();
    assert_true(p >= 0);
    if (p == 0) {
        setpgid(0, 0);
        int fo = open(out_, O_WRONLY | O_CREAT | O_TRUNC, 0644), fe = open(err_, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fo < 0 || fe < 0) _exit(126);
        dup2(fo, 1);
        dup2(fe, 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    time_t end = time(NULL) + limit;
    int status = 0;
    for (;;) {
        pid_t w = waitpid(p, &status, WNOHANG);
        if (w == p) break;
        if (time(NULL) > end) {
            kill(-p, SIGKILL);
            waitpid(p, &status, 0);
            return -1;
        }
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* pfgm-sample with the given options (NULL-terminated), under mpirun -np np when np > 1. */
static int sample(int np, ...) {
    const char *argv[64];
    int n = 0;
    char nps[16];
    if (np > 1) {
        snprintf(nps, sizeof nps, "%d", np);
        argv[n++] = mpiexec_;
        argv[n++] = "-np";
        argv[n++] = nps;
        argv[n++] = "--oversubscribe";
    }
    argv[n++] = sample_;
    va_list ap;
    va_start(ap, np);
    const char *s;
    while ((s = va_arg(ap, const char *)) != NULL && n < 63) argv[n++] = s;
    va_end(ap);
    argv[n] = NULL;
    return run_argv(argv, 300);
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return strdup("");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = calloc((size_t)n + 1, 1);
    if (n > 0 && fread(s, 1, (size_t)n, f) != (size_t)n) s[0] = '\0';
    fclose(f);
    return s;
}

static int count_lines(const char *s) {
    int n = 0;
    for (; *s; ++s) n += *s == '\n';
    return n;
}

static void show_logs(void) {
    char *o = slurp(out_), *e = slurp(err_);
    printf("--- stdout\n%s--- stderr\n%s---\n", o, e);
    free(o);
    free(e);
}

/* /samples_float of an HDF5 samples file, [n, 1, 8, 8]; n from the file. */
static float *read_float(const char *h5, int64_t *n) {
    hid_t f = H5Fopen(h5, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t ds = H5Dopen2(f, "samples_float", H5P_DEFAULT), sp = H5Dget_space(ds);
    hsize_t dims[4] = {0};
    assert_int_equal(H5Sget_simple_extent_ndims(sp), 4);
    H5Sget_simple_extent_dims(sp, dims, NULL);
    assert_true(dims[1] == 1 && dims[2] == 8 && dims[3] == 8);
    *n = (int64_t)dims[0];
    float *x = malloc(sizeof(float) * (size_t)(*n * 64));
    assert_true(H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x) >= 0);
    uint8_t *u = malloc((size_t)(*n * 64));
    hid_t du = H5Dopen2(f, "samples", H5P_DEFAULT);
    assert_true(du >= 0);
    assert_true(H5Dread(du, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, u) >= 0);
    for (int64_t i = 0; i < *n * 64; ++i) { /* the authors' truncating conversion */
        float v = 255.0f * ((x[i] + 1.0f) * 0.5f);
        v = v < 0.0f ? 0.0f : v > 255.0f ? 255.0f : v;
        assert_int_equal(u[i], (uint8_t)v);
    }
    free(u);
    H5Dclose(du);
    H5Sclose(sp);
    H5Dclose(ds);
    H5Fclose(f);
    return x;
}

static int64_t attr_int(const char *h5, const char *name) {
    hid_t f = H5Fopen(h5, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t a = H5Aopen(f, name, H5P_DEFAULT);
    assert_true(a >= 0);
    int64_t v = 0;
    double d = 0;
    hid_t t = H5Aget_type(a);
    if (H5Tget_class(t) == H5T_FLOAT) {
        assert_true(H5Aread(a, H5T_NATIVE_DOUBLE, &d) >= 0);
        v = (int64_t)d;
        assert_true((double)v == d);
    } else {
        assert_true(H5Aread(a, H5T_NATIVE_INT64, &v) >= 0);
    }
    H5Tclose(t);
    H5Aclose(a);
    H5Fclose(f);
    return v;
}

static void attr_str(const char *h5, const char *name, char *buf, size_t cap) {
    hid_t f = H5Fopen(h5, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    assert_int_equal(pfgm_h5_read_str_attr(f, h5, name, buf, cap), PFGM_OK);
    H5Fclose(f);
}

static void path_in(char *buf, size_t cap, const char *name) { fx_join(buf, cap, dir_, name); }

/* 64 samples: an 8x8 grid, both HDF5 datasets, the attributes, NFE and images/s printed. */
static void test_grid_and_h5(void **state) {
    (void)state;
    char png[700], h5[700], text[4096];
    path_in(png, sizeof png, "o1/grid.png");
    path_in(h5, sizeof h5, "o1/samples.h5");
    int rc = sample(1, "--checkpoint", run_, "--num", "64", "--solver", "euler", "--steps", "3", "--out", png, "--h5",
                    h5, "--seed", "11", NULL);
    if (rc) show_logs();
    assert_int_equal(rc, 0);
    char *o = slurp(out_), *e = slurp(err_);
    assert_non_null(strstr(o, "NFE 3 per batch (16 batches)"));
    assert_non_null(strstr(o, "batch 16/16 (rank 0): 4 samples, NFE 3,"));
    assert_non_null(strstr(o, "images/s"));
    assert_string_equal(e, "");
    free(o);
    free(e);
    pfgm_image g;
    assert_int_equal(pfgm_png_read(png, 1, &g), PFGM_OK);
    assert_int_equal(g.width, 8 * (8 + 2) + 2);
    assert_int_equal(g.height, 8 * (8 + 2) + 2);
    int64_t n = 0;
    float *x = read_float(h5, &n);
    assert_int_equal(n, 64);
    uint8_t u[64];
    pfgm_samples_to_uint8(64, x + 63 * 64, u); /* the last image, bottom right */
    for (int y = 0; y < 8; ++y)
        for (int c = 0; c < 8; ++c) assert_int_equal(g.pixels[(72 + y) * g.width + 72 + c], u[y * 8 + c]);
    pfgm_image_free(&g);
    { /* the float dataset says its scale and its measured extremes */
        double lo = INFINITY, hi = -INFINITY, mm[2] = {0, 0};
        int64_t outside = 0;
        for (int i = 0; i < 64 * 64; ++i) {
            lo = fmin(lo, x[i]);
            hi = fmax(hi, x[i]);
            outside += x[i] < -1.0f || x[i] > 1.0f;
        }
        hid_t f = H5Fopen(h5, H5F_ACC_RDONLY, H5P_DEFAULT), ds = H5Dopen2(f, "samples_float", H5P_DEFAULT);
        hid_t a = H5Aopen(ds, "min_max", H5P_DEFAULT);
        assert_true(a >= 0 && H5Aread(a, H5T_NATIVE_DOUBLE, mm) >= 0);
        H5Aclose(a);
        int64_t got = -1;
        assert_int_equal(pfgm_h5_read_int_attr(ds, h5, "outside_range", &got), PFGM_OK);
        {
            char layout[16];
            assert_int_equal(pfgm_h5_read_str_attr(ds, h5, "layout", layout, sizeof layout), PFGM_OK);
            assert_string_equal(layout, "NCHW");
        }
        H5Dclose(ds);
        H5Fclose(f);
        printf("samples_float: min %.3f max %.3f, %lld of %d values outside [-1, 1]\n", lo, hi, (long long)outside,
               64 * 64);
        assert_true(mm[0] == lo && mm[1] == hi);
        assert_int_equal(got, outside);
    }
    free(x);
    assert_int_equal(attr_int(h5, "step"), 4);
    assert_int_equal(attr_int(h5, "seed"), 11);
    assert_int_equal(attr_int(h5, "nfe"), 3);
    attr_str(h5, "solver", text, sizeof text);
    assert_string_equal(text, "forward_euler");
    attr_str(h5, "checkpoint", text, sizeof text);
    assert_string_equal(text, ckpt4_);
    attr_str(h5, "weights", text, sizeof text);
    assert_string_equal(text, "ema");
}

/* Heun: NFE 2 steps - 1; RK45: 2 + 6 attempts, fewer with looser tolerances. */
static void test_nfe(void **state) {
    (void)state;
    char h5[700];
    path_in(h5, sizeof h5, "o2/heun.h5");
    char png[700];
    path_in(png, sizeof png, "o2/heun.png");
    assert_int_equal(sample(1, "--checkpoint", ckpt4_, "--num", "5", "--solver", "heun", "--steps", "4", "--out", png,
                            "--h5", h5, NULL),
                     0);
    assert_int_equal(attr_int(h5, "nfe"), 7);
    char *o = slurp(out_);
    assert_non_null(strstr(o, "NFE 7 per batch"));
    free(o);
    int64_t nfe[2];
    const char *tol[2] = {"1e-2", "1e-4"};
    for (int i = 0; i < 2; ++i) {
        assert_int_equal(sample(1, "--checkpoint", ckpt4_, "--num", "4", "--solver", "rk45", "--rtol", tol[i], "--atol",
                                tol[i], "--out", png, "--h5", h5, NULL),
                         0);
        nfe[i] = attr_int(h5, "nfe");
        assert_int_equal((nfe[i] - 2) % 6, 0);
    }
    printf("RK45 NFE: %lld at 1e-2, %lld at 1e-4\n", (long long)nfe[0], (long long)nfe[1]);
    assert_true(nfe[0] < nfe[1]);
}

/* A run directory: its newest complete checkpoint (4), not a newer temporary (a copy of
 * checkpoint 2 under ckpt_00000009.h5.tmp.<pid>); the same samples as the file itself,
 * other samples from checkpoint 2, with --no-ema, or with another seed. */
static void test_run_dir_ema_seed(void **state) {
    (void)state;
    char tmp[800], png[700], h5[6][700];
    snprintf(tmp, sizeof tmp, "%s/checkpoints/ckpt_00000009.h5.tmp.%d", run_, (int)getpid());
    {
        FILE *f = fopen(ckpt2_, "rb"), *g = fopen(tmp, "wb");
        assert_non_null(f);
        assert_non_null(g);
        char buf[65536];
        size_t k;
        while ((k = fread(buf, 1, sizeof buf, f)) > 0) assert_int_equal(fwrite(buf, 1, k, g), k);
        fclose(f);
        fclose(g);
    }
    path_in(png, sizeof png, "o3/grid.png");
    const char *ckpts[6] = {run_, ckpt4_, ckpt2_, ckpt4_, ckpt4_, run_};
    const char *seeds[6] = {"5", "5", "5", "5", "6", "5"};
    for (int i = 0; i < 6; ++i) {
        char name[32];
        snprintf(name, sizeof name, "o3/s%d.h5", i);
        path_in(h5[i], sizeof h5[i], name);
        int rc = i == 3 ? sample(1, "--checkpoint", ckpts[i], "--num", "6", "--out", png, "--h5", h5[i], "--seed",
                                 seeds[i], "--no-ema", NULL)
                        : sample(1, "--checkpoint", ckpts[i], "--num", "6", "--out", png, "--h5", h5[i], "--seed",
                                 seeds[i], NULL);
        if (rc) show_logs();
        assert_int_equal(rc, 0);
    }
    unlink(tmp);
    char text[4096];
    attr_str(h5[0], "checkpoint", text, sizeof text);
    assert_string_equal(text, ckpt4_);
    attr_str(h5[3], "weights", text, sizeof text);
    assert_string_equal(text, "params");
    float *x[6];
    int64_t n;
    for (int i = 0; i < 6; ++i) {
        x[i] = read_float(h5[i], &n);
        assert_int_equal(n, 6);
    }
    const size_t sz = 6 * 64 * sizeof(float);
    assert_memory_equal(x[0], x[1], sz);     /* run dir = its newest file */
    assert_memory_equal(x[0], x[5], sz);     /* same seed, same bits */
    assert_memory_not_equal(x[0], x[2], sz); /* checkpoint 2 */
    assert_memory_not_equal(x[0], x[3], sz); /* --no-ema */
    assert_memory_not_equal(x[0], x[4], sz); /* another seed */
    for (int i = 0; i < 6; ++i) free(x[i]);
}

/* One bad input: the exit code, exactly one line on stderr naming `needle`, nothing
 * written under the (fresh) output directory, not even the directory. */
static void expect_refusal(int want, const char *needle, const char *const *opts) {
    char outdir[700], png[760], h5[760];
    static int k;
    char name[32];
    snprintf(name, sizeof name, "bad%d", k++);
    path_in(outdir, sizeof outdir, name);
    snprintf(png, sizeof png, "%s/grid.png", outdir);
    snprintf(h5, sizeof h5, "%s/samples.h5", outdir);
    const char *argv[40];
    int n = 0;
    argv[n++] = sample_;
    for (; *opts; ++opts) argv[n++] = *opts;
    argv[n++] = "--out";
    argv[n++] = png;
    argv[n++] = "--h5";
    argv[n++] = h5;
    argv[n] = NULL;
    int rc = run_argv(argv, 120);
    char *e = slurp(err_);
    printf("exit %d: %s", rc, e);
    assert_int_equal(rc, want);
    assert_int_equal(count_lines(e), 1);
    assert_true(!strncmp(e, "pfgm-sample: ", 13));
    assert_non_null(strstr(e, needle));
    assert_false(fx_exists(outdir));
    free(e);
}

static void test_bad_input(void **state) {
    (void)state;
    char missing[700], garbage[700], truncated[700], empty[700], tmp[800];
    path_in(missing, sizeof missing, "nope/ckpt.h5");
    path_in(garbage, sizeof garbage, "garbage.h5");
    fx_write_bytes(garbage, "not a checkpoint\n", 17);
    path_in(truncated, sizeof truncated, "truncated.h5");
    {
        FILE *f = fopen(ckpt4_, "rb"), *g = fopen(truncated, "wb");
        char buf[5000];
        size_t k = fread(buf, 1, sizeof buf, f);
        assert_int_equal(fwrite(buf, 1, k, g), k);
        fclose(f);
        fclose(g);
    }
    path_in(empty, sizeof empty, "empty_run");
    assert_int_equal(mkdir(empty, 0755), 0);
    snprintf(tmp, sizeof tmp, "%s.tmp.1234", ckpt4_);
    fx_write_bytes(tmp, "x", 1);

    const char *a[] = {"--checkpoint", missing, NULL};
    expect_refusal(3, "nope/ckpt.h5", a);
    const char *b[] = {"--checkpoint", garbage, NULL};
    expect_refusal(3, "garbage.h5", b);
    const char *c[] = {"--checkpoint", truncated, NULL};
    expect_refusal(3, "truncated.h5", c);
    const char *d[] = {"--checkpoint", empty, NULL};
    expect_refusal(3, "empty_run", d);
    const char *e[] = {"--checkpoint", run_, "--solver", "midpoint", NULL};
    expect_refusal(2, "midpoint", e);
    const char *f[] = {"--checkpoint", tmp, NULL};
    expect_refusal(3, ".tmp.1234", f);
    const char *g[] = {"--checkpoint", run_, "--num", "0", NULL};
    expect_refusal(2, "--num", g);
    const char *h[] = {"--checkpoint", run_, "--steps", "many", NULL};
    expect_refusal(2, "--steps", h);
    const char *i[] = {"--checkpoint", run_, "--bogus", NULL};
    expect_refusal(2, "--bogus", i);
    const char *j[] = {"--checkpoint", run_, "--set", "sampling.no_such_key=1", NULL};
    expect_refusal(2, "no_such_key", j);
    const char *l[] = {"--checkpoint", run_, "--set", "model.nf=32", NULL}; /* fails loading the weights */
    expect_refusal(3, "ckpt_00000004.h5", l);
    unlink(tmp);
}

/* The progress line in a log (stdout a file, not a terminal): plain lines, no carriage
 * return or escape; --progress 0 gives one per network evaluation with NFE 1, 2, ... and
 * z falling from z_max to z_min within each batch, then the batch's end (NFE 4, z = z_min,
 * t 100%); the default interval (1 s) still ends with the last batch's line; off: none. */
static void test_progress_log(void **state) {
    (void)state;
    char png[700];
    path_in(png, sizeof png, "o4/grid.png");
    int rc = sample(1, "--checkpoint", ckpt4_, "--num", "6", "--solver", "euler", "--steps", "4", "--set",
                    "sampling.batch_size=3", "--progress", "0", "--out", png, NULL);
    if (rc) show_logs();
    assert_int_equal(rc, 0);
    char *o = slurp(out_);
    assert_null(strchr(o, '\r'));
    assert_null(strchr(o, '\033'));
    int lines = 0;
    for (int b = 1; b <= 2; ++b) {
        double z[5];
        for (int k = 1; k <= 4; ++k) { /* evaluation k of batch b: z_{k-1} of the log grid */
            char key[64];
            snprintf(key, sizeof key, "batch %d/2  NFE %d  z ", b, k);
            const char *at = strstr(o, key);
            assert_non_null(at);
            z[k - 1] = strtod(at + strlen(key), NULL);
            printf("batch %d NFE %d: z %.4e\n", b, k, z[k - 1]);
            ++lines;
        }
        z[4] = 1e-3; /* the end: z_min */
        /* the authors' grid: z_max (the checkpoint config's) down to z_min with a constant
         * ratio; 4 printed digits give each ratio to ~1e-3 */
        const double r = pow(z[4] / z[0], 0.25);
        for (int k = 1; k <= 4; ++k) assert_true(fabs(z[k] / z[k - 1] - r) <= 2e-3 * r && r < 1.0);
    }
    assert_non_null(strstr(o, "batch 2/2  NFE 4  z 1.000e-03  t 100%"));
    free(o);
    assert_int_equal(sample(1, "--checkpoint", ckpt4_, "--num", "6", "--solver", "euler", "--steps", "4", "--set",
                            "sampling.batch_size=3", "--out", png, NULL),
                     0);
    o = slurp(out_);
    printf("--- pfgm-sample's log with the default interval:\n%s---\n", o);
    assert_non_null(strstr(o, "batch 2/2  NFE 4  z 1.000e-03  t 100%"));
    assert_non_null(strstr(o, "img/s  ETA 0s\n"));
    free(o);
    assert_int_equal(sample(1, "--checkpoint", ckpt4_, "--num", "6", "--solver", "euler", "--steps", "4", "--progress",
                            "off", "--out", png, NULL),
                     0);
    o = slurp(out_);
    assert_null(strstr(o, "  NFE 4  z "));
    free(o);
    printf("%d progress lines checked\n", lines);
}

/* sampling.max_nfe: a cap above the batch's RK45 NFE changes nothing (same bits); a cap
 * below it stops with exit 5 and the cap, the z reached and the hint named, writing
 * nothing; Euler/Heun whose fixed NFE exceeds the cap, or RK45 with a cap below 8, are
 * refused before sampling (exit 2). */
static void test_max_nfe(void **state) {
    (void)state;
    char png[700], h5[2][700], cap[64];
    path_in(png, sizeof png, "o5/grid.png");
    path_in(h5[0], sizeof h5[0], "o5/free.h5");
    path_in(h5[1], sizeof h5[1], "o5/capped.h5");
    assert_int_equal(sample(1, "--checkpoint", ckpt4_, "--num", "4", "--solver", "rk45", "--out", png, "--h5", h5[0],
                            NULL),
                     0);
    const int64_t nfe = attr_int(h5[0], "nfe");
    snprintf(cap, sizeof cap, "sampling.max_nfe=%lld", (long long)nfe);
    assert_int_equal(sample(1, "--checkpoint", ckpt4_, "--num", "4", "--solver", "rk45", "--set", cap, "--out", png,
                            "--h5", h5[1], NULL),
                     0);
    int64_t n0, n1;
    float *x0 = read_float(h5[0], &n0), *x1 = read_float(h5[1], &n1);
    assert_memory_equal(x0, x1, sizeof(float) * 4 * 64);
    free(x0);
    free(x1);
    /* one evaluation fewer than the solve needs */
    snprintf(cap, sizeof cap, "sampling.max_nfe=%lld", (long long)(nfe - 1));
    const char *a[] = {"--checkpoint", ckpt4_, "--num", "4", "--solver", "rk45", "--set", cap, NULL};
    char want[96];
    snprintf(want, sizeof want, "sampling.max_nfe = %lld network evaluations reached at z = ", (long long)(nfe - 1));
    char outdir[700], png2[760];
    path_in(outdir, sizeof outdir, "o6");
    snprintf(png2, sizeof png2, "%s/grid.png", outdir);
    const char *argv[] = {sample_, a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], "--out", png2, NULL};
    int rc = run_argv(argv, 120);
    char *e = slurp(err_);
    printf("RK45 NFE %lld; capped at %lld: exit %d: %s", (long long)nfe, (long long)(nfe - 1), rc, e);
    assert_int_equal(rc, 5);
    assert_non_null(strstr(e, want));
    assert_non_null(strstr(e, "HINT"));
    assert_false(fx_exists(outdir));
    free(e);
    const char *b[] = {"--checkpoint", ckpt4_, "--solver", "euler", "--steps", "10", "--set", "sampling.max_nfe=9",
                       NULL};
    expect_refusal(2, "sampling.max_nfe = 9 is below the 10 network evaluations", b);
    const char *c[] = {"--checkpoint", ckpt4_, "--solver", "heun", "--steps", "5", "--set", "sampling.max_nfe=8",
                       NULL};
    expect_refusal(2, "below the 9 network evaluations", c);
    const char *d[] = {"--checkpoint", ckpt4_, "--solver", "rk45", "--set", "sampling.max_nfe=7", NULL};
    expect_refusal(2, "sampling.max_nfe = 7", d);
    const char *f[] = {"--checkpoint", ckpt4_, "--set", "sampling.max_nfe=-1", NULL};
    expect_refusal(2, "max_nfe", f);
}

/* --mpi: 2 ranks write the same bits as 1 (RK45 over 3 uneven batches; 1 batch with an
 * idle rank; Euler with --no-ema), and an error under mpirun ends the job. */
static void compare_mpi(const char *tag, const char *const *opts) {
    char png[2][700], h5[2][700];
    for (int w = 0; w < 2; ++w) {
        char name[64];
        snprintf(name, sizeof name, "mpi/%s-%d.png", tag, w + 1);
        path_in(png[w], sizeof png[w], name);
        snprintf(name, sizeof name, "mpi/%s-%d.h5", tag, w + 1);
        path_in(h5[w], sizeof h5[w], name);
        const char *argv[48];
        int n = 0;
        char nps[] = "2";
        if (w == 1) {
            argv[n++] = mpiexec_;
            argv[n++] = "-np";
            argv[n++] = nps;
            argv[n++] = "--oversubscribe";
        }
        argv[n++] = sample_;
        argv[n++] = "--checkpoint";
        argv[n++] = run_;
        for (const char *const *o = opts; *o; ++o) argv[n++] = *o;
        argv[n++] = "--out";
        argv[n++] = png[w];
        argv[n++] = "--h5";
        argv[n++] = h5[w];
        argv[n] = NULL;
        int rc = run_argv(argv, 300);
        if (rc) show_logs();
        assert_int_equal(rc, 0);
        if (w == 1) {
            char *o = slurp(out_);
            assert_non_null(strstr(o, "on 2 ranks"));
            printf("%s", o);
            free(o);
        }
    }
    int64_t n1, n2;
    float *x1 = read_float(h5[0], &n1), *x2 = read_float(h5[1], &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(x1, x2, sizeof(float) * (size_t)(n1 * 64));
    char *p1 = slurp(png[0]), *p2 = slurp(png[1]);
    struct stat s1, s2;
    assert_int_equal(stat(png[0], &s1), 0);
    assert_int_equal(stat(png[1], &s2), 0);
    assert_int_equal(s1.st_size, s2.st_size);
    assert_memory_equal(p1, p2, (size_t)s1.st_size);
    assert_int_equal(attr_int(h5[0], "nfe"), attr_int(h5[1], "nfe"));
    printf("%s: %lld samples equal to the bit on 1 and 2 ranks\n", tag, (long long)n1);
    free(x1);
    free(x2);
    free(p1);
    free(p2);
}

static void test_mpi_same_bits(void **state) {
    (void)state;
    if (!mpiexec_ || !fx_exists(mpiexec_)) skip();
    const char *rk45[] = {"--num", "10", "--solver", "rk45", "--rtol", "1e-3", "--atol", "1e-3", "--seed", "3", NULL};
    compare_mpi("rk45-uneven", rk45);
    const char *one[] = {"--num", "3", "--solver", "heun", "--steps", "3", NULL};
    compare_mpi("one-batch", one);
    const char *raw[] = {"--num", "8", "--solver", "euler", "--steps", "2", "--no-ema", NULL};
    compare_mpi("no-ema", raw);
}

static void test_mpi_error_ends_job(void **state) {
    (void)state;
    if (!mpiexec_ || !fx_exists(mpiexec_)) skip();
    char png[700], missing[700];
    path_in(png, sizeof png, "mpi-bad/grid.png");
    path_in(missing, sizeof missing, "nope.h5");
    /* rank 0's plan fails: every rank leaves */
    int rc = sample(2, "--checkpoint", missing, "--out", png, NULL);
    char *e = slurp(err_);
    assert_true(rc > 0);
    assert_non_null(strstr(e, "nope.h5"));
    free(e);
    /* a failure inside the collective draw (the weights do not fit the config) */
    rc = sample(2, "--checkpoint", run_, "--set", "model.nf=32", "--out", png, NULL);
    e = slurp(err_);
    printf("exit %d under mpirun\n", rc);
    assert_true(rc > 0);
    assert_non_null(strstr(e, "ckpt_00000004.h5"));
    free(e);
    char d[700];
    path_in(d, sizeof d, "mpi-bad");
    assert_false(fx_exists(d));
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--mpi")) {
        const struct CMUnitTest tests[] = {cmocka_unit_test(test_mpi_same_bits),
                                           cmocka_unit_test(test_mpi_error_ends_job)};
        return cmocka_run_group_tests_name("sampler_cli_mpi", tests, setup, teardown);
    }
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_grid_and_h5), cmocka_unit_test(test_nfe),
                                       cmocka_unit_test(test_run_dir_ema_seed), cmocka_unit_test(test_bad_input),
                                       cmocka_unit_test(test_progress_log), cmocka_unit_test(test_max_nfe)};
    return cmocka_run_group_tests_name("sampler_cli", tests, setup, teardown);
}
