/* pfgm-prep split over MPI ranks (docs/data-format.md, "Parallel prep"): the binary
 * (PFGM_PREP_BIN) run alone and under `$MPIEXEC -n 2` and `-n 3` must write byte-identical
 * /images and /labels (and the same attributes) for the same seed:
 *   a folder of 200 small images, PNG and JPEG mixed (some .jpg names hold PNG data and the
 *   reverse, gray and colour, several sizes), default pipeline on 1, 2, 3 ranks, and with
 *   --limit 37 --channels 1, --resize bicubic --crop 18, --pipeline lsun on 1 and 3;
 *   an IDX file with gzipped labels, with --limit (1, 2, 3 ranks) and whole (1 and 3), and
 *   CIFAR-10 batches (1, 2, 3; each rank streams its part of the records);
 * And the error path: a truncated JPEG that only the last rank decodes, a text file in the
 * last rank's part, and an IDX file cut short (seen only by the rank whose part ends it)
 * make every rank exit 3 with one "pfgm-prep: <file>: ..." line, and
 * leave nothing in the output's folder (no output, no temporary, no part file). A
 * successful run leaves only the output there. Peak memory (wait4's ru_maxrss) grows by
 * less than half the output between converting one image and 300 (t_memory_bounded).
 * Labels e2e mpi (tests/prep_parallel.cmake). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "data_fixtures.h"
#include "pfgm/dataset.h"
#include "pfgm/prep.h"

enum { N_IMAGES = 200 };

typedef struct fixture {
    char dir[256], imgs[320], outdir[320];
    char err[16384];
    long maxrss_kb; /* peak resident memory of the last run and its descendants */
} fixture;

static const char *env_or_fail(const char *name) {
    const char *v = getenv(name);
    if (!v || !v[0]) fail_msg("%s is not set (tests/prep_parallel.cmake sets it)", name);
    return v;
}

static void slurp(const char *path, char *buf, size_t cap) {
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(buf, 1, cap - 1, f) : 0;
    buf[n] = '\0';
    if (f) fclose(f);
}

/* Runs pfgm-prep with `ranks` processes (1: directly, no launcher) and args (NULL-ended);
 * returns the exit status, stderr in f->err. */
static int run_prep(fixture *f, int ranks, const char *const *args) {
    const char *argv[48];
    int n = 0;
    char np[16];
    snprintf(np, sizeof np, "%d", ranks);
    if (ranks > 1) {
        argv[n++] = env_or_fail("MPIEXEC");
        argv[n++] = "-n";
        argv[n++] = np;
        argv[n++] = "--oversubscribe";
    }
    argv[n++] = env_or_fail("PFGM_PREP_BIN");
    for (int i = 0; args[i] && n < 46; ++i) argv[n++] = args[i];
    argv[n++] = "--quiet";
    argv[n] = NULL;
    char errp[400];
    snprintf(errp, sizeof errp, "%s/stderr.txt", f->dir);
    pid_t pid = fork();
    if (pid == 0) {
        int e = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int o = open("/dev/null", O_WRONLY);
        dup2(e, STDERR_FILENO);
        dup2(o, STDOUT_FILENO);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    int status = 0;
    struct rusage ru;
    wait4(pid, &status, 0, &ru); /* ru_maxrss also covers the descendants it waited for */
    f->maxrss_kb = ru.ru_maxrss;
    slurp(errp, f->err, sizeof f->err);
    remove(errp);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

/* Image k of the folder: size, channels and format vary with k; pixels are smooth
 * gradients with a k-dependent phase (JPEG-friendly, all distinct). */
static void write_image(const char *dir, int k) {
    const uint32_t w = 20 + (uint32_t)(k % 7) * 3, h = 18 + (uint32_t)(k % 5) * 4;
    const int ch = k % 4 == 3 ? 1 : 3;
    uint8_t *px = malloc((size_t)w * h * (size_t)ch);
    for (uint32_t y = 0; y < h; ++y)
        for (uint32_t x = 0; x < w; ++x)
            for (int c = 0; c < ch; ++c)
                px[((size_t)y * w + x) * (size_t)ch + (size_t)c] =
                    (uint8_t)((k * 37 + (int)x * (5 + c) + (int)y * (3 + 2 * c)) & 0xff);
    const int jpeg = k % 3 != 0;
    const int misnamed = k % 10 == 5; /* the name says the other format */
    char p[400];
    snprintf(p, sizeof p, "%s/img_%03d.%s", dir, k, (jpeg ^ misnamed) ? "jpg" : "png");
    if (jpeg)
        fx_write_jpeg(p, w, h, ch, px, 85);
    else
        fx_write_png(p, w, h, ch == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, 8, px,
                     (size_t)w * (size_t)ch, NULL, 0);
    free(px);
}

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    fx_mkdtemp(f->dir, sizeof f->dir);
    fx_join(f->imgs, sizeof f->imgs, f->dir, "imgs");
    fx_join(f->outdir, sizeof f->outdir, f->dir, "out");
    mkdir(f->imgs, 0755);
    mkdir(f->outdir, 0755);
    for (int k = 0; k < N_IMAGES; ++k) write_image(f->imgs, k);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    fx_rm_rf(f->dir);
    free(f);
    return 0;
}

/* Number of entries in dir (the output folder must hold exactly what a run left). */
static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) ++n;
    if (d) closedir(d);
    return n;
}

/* The two files hold the same /images, /labels and attributes. */
static void expect_same(const char *a, const char *b) {
    fx_dataset da, db;
    assert_true(fx_read_dataset(a, &da));
    assert_true(fx_read_dataset(b, &db));
    assert_int_equal(da.count, db.count);
    assert_int_equal(da.C, db.C);
    assert_int_equal(da.H, db.H);
    assert_int_equal(da.W, db.W);
    assert_int_equal(da.seed, db.seed);
    assert_memory_equal(da.images, db.images, (size_t)(da.count * da.C * da.H * da.W));
    assert_true((da.labels == NULL) == (db.labels == NULL));
    if (da.labels) assert_memory_equal(da.labels, db.labels, (size_t)da.count * sizeof(int32_t));
    fx_free_dataset(&da);
    fx_free_dataset(&db);
    pfgm_dataset_info ia, ib;
    assert_int_equal(pfgm_dataset_probe(a, &ia), PFGM_OK);
    assert_int_equal(pfgm_dataset_probe(b, &ib), PFGM_OK);
    assert_string_equal(ia.source, ib.source);
    assert_int_equal(ia.checksum, 1);
    assert_int_equal(ib.checksum, 1);
}

/* Runs the folder conversion with extra options on 1 rank and on 3 (and 2 when with_two:
 * the option variants skip it to keep the test short) and compares the files. */
static void folder_case(fixture *f, const char *tag, const char *const *extra, int64_t want_count,
                        int with_two) {
    char out[3][400];
    for (int r = 1; r <= 3; ++r) {
        if (r == 2 && !with_two) continue;
        snprintf(out[r - 1], sizeof out[r - 1], "%s/%s_%d.h5", f->outdir, tag, r);
        const char *args[24] = {"folder", "--input", f->imgs, "--size", "16", "--seed", "7",
                                "--out", out[r - 1]};
        int n = 9;
        for (int i = 0; extra[i]; ++i) args[n++] = extra[i];
        args[n] = NULL;
        const int rc = run_prep(f, r, args);
        if (rc != 0) fail_msg("%s on %d rank(s): exit %d: %s", tag, r, rc, f->err);
        /* only the outputs (the 1-rank one and this one): no part file, no temporary */
        assert_int_equal(count_entries(f->outdir), r > 1 ? 2 : 1);
        if (r > 1) {
            expect_same(out[0], out[r - 1]);
            remove(out[r - 1]);
        }
    }
    pfgm_dataset_info info;
    assert_int_equal(pfgm_dataset_probe(out[0], &info), PFGM_OK);
    assert_int_equal(info.count, want_count);
    printf("  %-8s 1, %s3 ranks: identical (%lld images; source \"%s\")\n", tag,
           with_two ? "2, " : "", (long long)info.count, info.source);
    remove(out[0]);
}

static void t_folder_identical(void **state) {
    fixture *f = *state;
    const char *none[] = {NULL};
    folder_case(f, "default", none, N_IMAGES, 1);
    const char *limit[] = {"--limit", "37", "--channels", "1", NULL};
    folder_case(f, "limit", limit, 37, 0);
    const char *bicubic[] = {"--resize", "bicubic", "--crop", "18", NULL};
    folder_case(f, "bicubic", bicubic, N_IMAGES, 0);
    const char *lsun[] = {"--pipeline", "lsun", NULL};
    folder_case(f, "lsun", lsun, N_IMAGES, 0);
}

/* Runs head + --out outdir/<tag>_<r>.h5 on 1 and 3 ranks (and 2 when with_two) and
 * compares the files. */
static void records_case(fixture *f, const char *tag, const char *const *head, int with_two) {
    char out[3][400];
    for (int r = 1; r <= 3; ++r) {
        if (r == 2 && !with_two) continue;
        snprintf(out[r - 1], sizeof out[r - 1], "%s/%s_%d.h5", f->outdir, tag, r);
        const char *args[16];
        int n = 0;
        for (int i = 0; head[i]; ++i) args[n++] = head[i];
        args[n++] = "--out";
        args[n++] = out[r - 1];
        args[n] = NULL;
        const int rc = run_prep(f, r, args);
        if (rc != 0) fail_msg("%s on %d rank(s): exit %d: %s", tag, r, rc, f->err);
    }
    if (with_two) expect_same(out[0], out[1]);
    expect_same(out[0], out[2]);
    assert_int_equal(count_entries(f->outdir), with_two ? 3 : 2);
    for (int r = 0; r < 3; ++r) remove(out[r]);
    printf("  %-8s 1, %s3 ranks: identical, labels included\n", tag, with_two ? "2, " : "");
}

/* CIFAR-10: five small batches of 7, 3, 5, 1, 4 records (labels 0..9). */
static void t_cifar_identical(void **state) {
    fixture *f = *state;
    char dir[400];
    fx_join(dir, sizeof dir, f->dir, "cifar");
    mkdir(dir, 0755);
    const int per[5] = {7, 3, 5, 1, 4};
    int k = 0;
    for (int b = 0; b < 5; ++b) {
        uint8_t *buf = malloc((size_t)per[b] * 3073);
        for (int i = 0; i < per[b]; ++i, ++k) {
            buf[(size_t)i * 3073] = (uint8_t)(k % 10);
            for (int p = 0; p < 3072; ++p) buf[(size_t)i * 3073 + 1 + (size_t)p] = fx_pixel(k, p / 1024, (p / 32) % 32, p % 32);
        }
        char p[500];
        snprintf(p, sizeof p, "%s/data_batch_%d.bin", dir, b + 1);
        fx_write_bytes(p, buf, (size_t)per[b] * 3073);
        free(buf);
    }
    const char *head[] = {"cifar10", "--input", dir, "--seed", "3", NULL};
    records_case(f, "cifar10", head, 1);
}

static void t_idx_identical(void **state) {
    fixture *f = *state;
    enum { N = 101, S = 6 };
    uint8_t *img = malloc((size_t)N * S * S), lab[N];
    for (int i = 0; i < N; ++i) {
        lab[i] = (uint8_t)(i % 10);
        for (int p = 0; p < S * S; ++p) img[i * S * S + p] = fx_pixel(i, 0, p / S, p % S);
    }
    char ip[400], lp[400];
    fx_join(ip, sizeof ip, f->dir, "img.idx");
    fx_join(lp, sizeof lp, f->dir, "lab.idx.gz");
    const uint32_t di[3] = {N, S, S}, dl[1] = {N};
    fx_write_idx(ip, PFGM_IDX_MAGIC_IMAGES, 3, di, img, (size_t)N * S * S, 0);
    fx_write_idx(lp, PFGM_IDX_MAGIC_LABELS, 1, dl, lab, N, 1);
    free(img);
    const char *head[] = {"idx", "--images", ip, "--labels", lp, "--limit", "60", NULL};
    records_case(f, "idx", head, 1);
    const char *whole[] = {"idx", "--images", ip, "--labels", lp, NULL};
    records_case(f, "idx-all", whole, 0);

    /* a truncated images file: only the rank whose part ends the file reads that far */
    fx_truncate(ip, 16 + (off_t)(N - 1) * S * S);
    char out[400];
    snprintf(out, sizeof out, "%s/idx_bad.h5", f->outdir);
    const char *bad[] = {"idx", "--images", ip, "--labels", lp, "--limit", "5", "--out", out, NULL};
    assert_int_equal(run_prep(f, 3, bad), 3);
    const char *l = strstr(f->err, "pfgm-prep: ");
    if (!l || !strstr(l, ip) || !strstr(l, "truncated")) fail_msg("stderr: '%s'", f->err);
    assert_int_equal(count_entries(f->outdir), 0);
}

/* stderr holds "pfgm-prep: <needle1>...<needle2>" (the launcher may add its own lines). */
static void expect_error_line(const fixture *f, const char *n1, const char *n2) {
    const char *l = strstr(f->err, "pfgm-prep: ");
    if (!l) fail_msg("no 'pfgm-prep: ' line in stderr: '%s'", f->err);
    if (strstr(l + 1, "pfgm-prep: ")) fail_msg("more than one pfgm-prep line: '%s'", f->err);
    const char *end = strchr(l, '\n');
    if (!end) fail_msg("unterminated line: '%s'", l);
    if (!strstr(l, n1) || strstr(l, n1) > end) fail_msg("'%s' lacks '%s'", l, n1);
    if (n2 && (!strstr(l, n2) || strstr(l, n2) > end)) fail_msg("'%s' lacks '%s'", l, n2);
}

static void t_errors_on_one_rank(void **state) {
    fixture *f = *state;
    char out[400], bad[400];
    snprintf(out, sizeof out, "%s/bad.h5", f->outdir);
    /* the last file in name order: in the last rank's part. (Each failing run costs about 2 s
     * of Open MPI's own handling of a non-zero exit, so this test has only three.) */
    snprintf(bad, sizeof bad, "%s/zz_cut.jpg", f->imgs);
    char good[400];
    snprintf(good, sizeof good, "%s/img_001.jpg", f->imgs);
    assert_int_equal(fx_copy_file(good, bad), 0);
    struct stat sb;
    assert_int_equal(stat(bad, &sb), 0);
    fx_truncate(bad, sb.st_size / 2);
    const char *args[] = {"folder", "--input", f->imgs, "--size", "16", "--out", out, NULL};
    int rc = run_prep(f, 3, args);
    assert_int_equal(rc, 3);
    expect_error_line(f, bad, "corrupt JPEG");
    assert_int_equal(count_entries(f->outdir), 0);
    remove(bad);

    snprintf(bad, sizeof bad, "%s/zz_notes.txt", f->imgs);
    fx_write_bytes(bad, "not an image\n", 13);
    rc = run_prep(f, 2, args);
    assert_int_equal(rc, 3);
    expect_error_line(f, bad, "not a PNG or JPEG file");
    assert_int_equal(count_entries(f->outdir), 0);
    remove(bad);
    printf("  a bad file in the last rank's part (3 ranks: truncated JPEG, 2: a text file): "
           "exit 3, one line, nothing left\n");
}

/* Memory does not grow with the dataset: 300 RGB images of 128 x 128 make a 14.7 MB file;
 * the peak resident memory of converting all of them exceeds that of converting one
 * (--limit 1, same listing and permutation) by less than half the file, on one process
 * and on 2 ranks (the largest process of the job, launcher included). A converter that
 * held the images would grow by the whole 14.7 MB. Measured growth on the development
 * machine is in the test's output. */
static void t_memory_bounded(void **state) {
    fixture *f = *state;
    enum { N = 300, S = 128 };
    char dir[400];
    fx_join(dir, sizeof dir, f->dir, "big");
    mkdir(dir, 0755);
    uint8_t *px = malloc((size_t)S * S * 3);
    for (int k = 0; k < N; ++k) {
        for (int i = 0; i < S * S * 3; ++i) px[i] = (uint8_t)((i / 3 % S) * (k % 7 + 1) + i / (3 * S) * 3 + k);
        char p[500];
        snprintf(p, sizeof p, "%s/%04d.jpg", dir, k);
        fx_write_jpeg(p, S, S, 3, px, 75);
    }
    free(px);
    const long file_kb = (long)N * S * S * 3 / 1024;
    for (int ranks = 1; ranks <= 2; ++ranks) {
        char out[400];
        snprintf(out, sizeof out, "%s/big.h5", f->outdir);
        const char *one[] = {"folder", "--input", dir, "--size", "128", "--limit", "1", "--out", out, NULL};
        const char *all[] = {"folder", "--input", dir, "--size", "128", "--out", out, NULL};
        assert_int_equal(run_prep(f, ranks, one), 0);
        const long base = f->maxrss_kb;
        remove(out);
        assert_int_equal(run_prep(f, ranks, all), 0);
        const long full = f->maxrss_kb;
        remove(out);
        printf("  peak memory, %d rank(s): %ld kB for 1 image, %ld kB for %d (a %ld kB file): "
               "+%ld kB\n", ranks, base, full, N, file_kb, full - base);
        assert_true(full - base < file_kb / 2);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_folder_identical),
        cmocka_unit_test(t_idx_identical),
        cmocka_unit_test(t_cifar_identical),
        cmocka_unit_test(t_errors_on_one_rank),
        cmocka_unit_test(t_memory_bounded),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
