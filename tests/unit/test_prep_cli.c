/* The pfgm-prep binary (path in PFGM_PREP_BIN, set by tests/data.cmake): a good conversion
 * exits 0 with --seed/--limit honoured; bad input (missing file, wrong magic, truncated IDX
 * or CIFAR batch, empty folder, a file neither PNG nor JPEG, a dataset with the wrong dtype) exits 3 with
 * exactly one stderr line "pfgm-prep: <file>: <what is wrong>" and leaves no output; usage
 * mistakes (also a bad --resize or --pipeline, and --crop or --resize with --pipeline lsun)
 * exit 2. When Debian's dataset-fashion-mnist is installed, the real training set
 * converts to 60000 x 1 x 28 x 28 with labels. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <fcntl.h>
#include <sys/wait.h>

#include "data_fixtures.h"
#include "pfgm/dataset.h"
#include "pfgm/prep.h"

#define FASHION_DIR "/usr/share/datasets/fashion-mnist"

typedef struct fixture {
    char dir[256], out[320], img[320], lab[320];
    char err[8192], outtext[8192]; /* captured stderr / stdout of the last run */
} fixture;

static const char *prep_bin(void) {
    const char *b = getenv("PFGM_PREP_BIN");
    if (!b || !b[0]) fail_msg("PFGM_PREP_BIN is not set (tests/data.cmake sets it to pfgm-prep)");
    return b;
}

static void slurp(const char *path, char *buf, size_t cap) {
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(buf, 1, cap - 1, f) : 0;
    buf[n] = '\0';
    if (f) fclose(f);
}

/* Runs pfgm-prep with argv (NULL-terminated, without argv[0]); returns its exit status
 * and keeps its stderr and stdout in f->err / f->outtext. */
static int run_prep(fixture *f, const char *const *args) {
    char errp[400], outp[400];
    snprintf(errp, sizeof errp, "%s/stderr.txt", f->dir);
    snprintf(outp, sizeof outp, "%s/stdout.txt", f->dir);
    const char *argv[32];
    int n = 0;
    argv[n++] = prep_bin();
    while (args[n - 1] && n < 31) {
        argv[n] = args[n - 1];
        ++n;
    }
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        int e = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int o = open(outp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(e, STDERR_FILENO);
        dup2(o, STDOUT_FILENO);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    slurp(errp, f->err, sizeof f->err);
    slurp(outp, f->outtext, sizeof f->outtext);
    remove(errp);
    remove(outp);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

/* The last run printed exactly one stderr line, "pfgm-prep: ...", containing each needle. */
static void expect_one_line(const fixture *f, const char *n1, const char *n2) {
    const char *e = f->err;
    if (strncmp(e, "pfgm-prep: ", 11) != 0) fail_msg("stderr does not start 'pfgm-prep: ': '%s'", e);
    const char *nl = strchr(e, '\n');
    if (!nl || nl[1] != '\0') fail_msg("stderr is not exactly one line: '%s'", e);
    if (n1 && !strstr(e, n1)) fail_msg("stderr '%s' lacks '%s'", e, n1);
    if (n2 && !strstr(e, n2)) fail_msg("stderr '%s' lacks '%s'", e, n2);
}

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    fx_mkdtemp(f->dir, sizeof f->dir);
    fx_join(f->out, sizeof f->out, f->dir, "out.h5");
    fx_join(f->img, sizeof f->img, f->dir, "img.gz");
    fx_join(f->lab, sizeof f->lab, f->dir, "lab.gz");
    uint8_t px[20 * 8 * 8], lb[20];
    for (int i = 0; i < 20 * 64; ++i) px[i] = (uint8_t)(i * 3);
    for (int i = 0; i < 20; ++i) lb[i] = (uint8_t)(i % 10);
    const uint32_t di[3] = {20, 8, 8}, dl[1] = {20};
    fx_write_idx(f->img, PFGM_IDX_MAGIC_IMAGES, 3, di, px, sizeof px, 1);
    fx_write_idx(f->lab, PFGM_IDX_MAGIC_LABELS, 1, dl, lb, sizeof lb, 1);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    fx_rm_rf(f->dir);
    free(f);
    return 0;
}

static void t_good_run(void **state) {
    fixture *f = *state;
    const char *a[] = {"idx", "--images", f->img, "--labels", f->lab, "--out", f->out,
                       "--seed", "9", "--limit", "12", NULL};
    assert_int_equal(run_prep(f, a), 0);
    assert_string_equal(f->err, ""); /* not a terminal: no progress display */
    assert_non_null(strstr(f->outtext, "wrote"));
    pfgm_dataset_info info;
    assert_int_equal(pfgm_dataset_probe(f->out, &info), PFGM_OK);
    assert_int_equal(info.count, 12);
    assert_int_equal(info.seed, 9);
    assert_int_equal(info.has_labels, 1);
    const char *q[] = {"idx", "--images", f->img, "--out", f->out, "--quiet", NULL};
    assert_int_equal(run_prep(f, q), 0);
    assert_string_equal(f->outtext, "");
    assert_int_equal(pfgm_dataset_probe(f->out, &info), PFGM_OK);
    assert_int_equal(info.count, 20);
    assert_int_equal(info.seed, 42); /* the default */
    assert_int_equal(info.has_labels, 0);
    const char *i[] = {"info", "--input", f->out, NULL};
    assert_int_equal(run_prep(f, i), 0);
    assert_non_null(strstr(f->outtext, "20 images [1, 8, 8]"));
    remove(f->out);
}

static void t_bad_input(void **state) {
    fixture *f = *state;
    char p[400], q[512];

    fx_join(p, sizeof p, f->dir, "missing.gz");
    const char *a1[] = {"idx", "--images", p, "--out", f->out, NULL};
    assert_int_equal(run_prep(f, a1), 3);
    expect_one_line(f, p, "No such file");

    const char *a2[] = {"idx", "--images", f->lab, "--out", f->out, NULL};
    assert_int_equal(run_prep(f, a2), 3);
    expect_one_line(f, f->lab, "wrong magic number");

    fx_join(p, sizeof p, f->dir, "short");
    const uint32_t di[3] = {20, 8, 8};
    uint8_t px[100] = {0};
    fx_write_idx(p, PFGM_IDX_MAGIC_IMAGES, 3, di, px, sizeof px, 0);
    const char *a3[] = {"idx", "--images", p, "--out", f->out, NULL};
    assert_int_equal(run_prep(f, a3), 3);
    expect_one_line(f, p, "truncated");

    fx_join(p, sizeof p, f->dir, "cifar");
    mkdir(p, 0755);
    uint8_t rec[3073 * 2] = {0};
    for (int b = 1; b <= 5; ++b) {
        snprintf(q, sizeof q, "%s/data_batch_%d.bin", p, b);
        fx_write_bytes(q, rec, b == 2 ? sizeof rec - 1 : sizeof rec);
    }
    snprintf(q, sizeof q, "%s/data_batch_2.bin", p);
    const char *a4[] = {"cifar10", "--input", p, "--out", f->out, NULL};
    assert_int_equal(run_prep(f, a4), 3);
    expect_one_line(f, q, "truncated");

    fx_join(p, sizeof p, f->dir, "emptydir");
    mkdir(p, 0755);
    const char *a5[] = {"folder", "--input", p, "--size", "8", "--out", f->out, NULL};
    assert_int_equal(run_prep(f, a5), 3);
    expect_one_line(f, p, "empty folder");

    snprintf(q, sizeof q, "%s/readme.md", p);
    fx_write_bytes(q, "# images\n", 9);
    assert_int_equal(run_prep(f, a5), 3);
    expect_one_line(f, q, "not a PNG or JPEG file");

    fx_join(p, sizeof p, f->dir, "float.h5");
    hid_t file = H5Fcreate(p, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t dims[4] = {4, 1, 8, 8};
    hid_t sp = H5Screate_simple(4, dims, NULL), sc = H5Screate(H5S_SCALAR);
    hid_t st = H5Tcopy(H5T_C_S1);
    H5Tset_size(st, sizeof PFGM_DATASET_FORMAT);
    hid_t at = H5Acreate2(file, "format", st, sc, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(at, st, PFGM_DATASET_FORMAT);
    H5Aclose(at);
    int v = 1;
    at = H5Acreate2(file, "version", H5T_STD_I32LE, sc, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(at, H5T_NATIVE_INT, &v);
    H5Aclose(at);
    hid_t ds = H5Dcreate2(file, "images", H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dclose(ds);
    H5Tclose(st);
    H5Sclose(sc);
    H5Sclose(sp);
    H5Fclose(file);
    const char *a6[] = {"info", "--input", p, NULL};
    assert_int_equal(run_prep(f, a6), 3);
    expect_one_line(f, p, "wrong dtype");

    assert_int_equal(fx_count_prefix(f->dir, "out.h5"), 0);
}

static void t_usage(void **state) {
    fixture *f = *state;
    const char *a1[] = {"idx", "--images", f->img, "--bogus", "1", "--out", f->out, NULL};
    assert_int_equal(run_prep(f, a1), 2);
    expect_one_line(f, "--bogus", NULL);
    const char *a2[] = {"idx", "--images", f->img, NULL};
    assert_int_equal(run_prep(f, a2), 2);
    expect_one_line(f, "--out", NULL);
    const char *a3[] = {"convert", NULL};
    assert_int_equal(run_prep(f, a3), 2);
    expect_one_line(f, "unknown command", NULL);
    const char *a4[] = {"folder", "--input", f->dir, "--size", "8", "--channels", "2", "--out",
                        f->out, NULL};
    assert_int_equal(run_prep(f, a4), 2);
    expect_one_line(f, "--channels", NULL);
    const char *a5[] = {"idx", "--images", f->img, "--limit", "-3", "--out", f->out, NULL};
    assert_int_equal(run_prep(f, a5), 2);
    expect_one_line(f, "--limit", NULL);
    const char *a6[] = {"folder", "--input", f->dir, "--size", "8", "--resize", "lanczos",
                        "--out", f->out, NULL};
    assert_int_equal(run_prep(f, a6), 2);
    expect_one_line(f, "--resize 'lanczos'", "bilinear or bicubic");
    const char *a7[] = {"folder", "--input", f->dir, "--size", "8", "--pipeline", "celeba",
                        "--out", f->out, NULL};
    assert_int_equal(run_prep(f, a7), 2);
    expect_one_line(f, "--pipeline 'celeba'", "center or lsun");
    const char *a8[] = {"folder", "--input", f->dir, "--size", "8", "--pipeline", "lsun",
                        "--crop", "20", "--out", f->out, NULL};
    assert_int_equal(run_prep(f, a8), 2);
    expect_one_line(f, "--pipeline lsun", "drop --crop");
    const char *a9[] = {"folder", "--input", f->dir, "--size", "8", "--resize", "bicubic",
                        "--pipeline", "lsun", "--out", f->out, NULL};
    assert_int_equal(run_prep(f, a9), 2);
    expect_one_line(f, "--pipeline lsun", "drop --resize");
    assert_int_equal(fx_count_prefix(f->dir, "out.h5"), 0);
}

/* The real Fashion-MNIST training set, when Debian's dataset-fashion-mnist is installed. */
static void t_fashion_mnist(void **state) {
    fixture *f = *state;
    const char *img = FASHION_DIR "/train-images-idx3-ubyte.gz";
    const char *lab = FASHION_DIR "/train-labels-idx1-ubyte.gz";
    if (!fx_exists(img) || !fx_exists(lab)) {
        print_message("skipping: %s not installed (package dataset-fashion-mnist)\n", img);
        skip();
    }
    const char *a[] = {"idx", "--images", img, "--labels", lab, "--out", f->out, "--quiet", NULL};
    assert_int_equal(run_prep(f, a), 0);
    fx_dataset d;
    assert_true(fx_read_dataset(f->out, &d));
    assert_int_equal(d.count, 60000);
    assert_int_equal(d.C, 1);
    assert_int_equal(d.H, 28);
    assert_int_equal(d.W, 28);
    assert_non_null(d.labels);
    int64_t per_class[10] = {0};
    for (int64_t i = 0; i < d.count; ++i) {
        assert_in_range(d.labels[i], 0, 9);
        per_class[d.labels[i]]++;
    }
    for (int c = 0; c < 10; ++c) assert_int_equal(per_class[c], 6000); /* balanced set */
    fx_free_dataset(&d);
    remove(f->out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_good_run),
        cmocka_unit_test(t_bad_input),
        cmocka_unit_test(t_usage),
        cmocka_unit_test(t_fashion_mnist),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
