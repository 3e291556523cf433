/* Gradient buckets and ZeRO-1 through whole trainings (src/train/grad_sync.c), under mpirun:
 *   W = 2 (test train_zero): one all-reduce after backward (bucket_mb 0, zero 0), many small
 *     buckets overlapped with backward (zero 0), the same buckets with ZeRO-1, and the
 *     default (25 MiB, ZeRO-1) all give the same checkpoint to the bit (parameters, EMA, Adam
 *     m and v); a run that switches ZeRO on or off at a restart equals the straight run; and
 *     the logged gradient norms are the same bits.
 *   W = 3 (test train_zero_np3): buckets with ZeRO-1 are deterministic run to run, and a
 *     restart mid-run with the same settings is exact; zero on and off are compared and the
 *     count of differing datasets printed (the sum of three ranks may associate differently
 *     in the two collectives, so equality is not required there). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <mpi.h>

#include "pfgm/backend.h"
#include "pfgm/checkpoint.h"
#include "pfgm/comm.h"
#include "pfgm/log.h"
#include "pfgm/trainer.h"
#include "train_testutil.h"

static char dir_[512], data_[600];
static pfgm_comm *comm_;
static pfgm_backend *be_;
static pfgm_logger lg_;

/* Trains run to n_iters (resuming what is there) with distributed.bucket_mb and .zero. */
static pfgm_status train(const char *run, int64_t n_iters, const char *bucket_mb, int zero) {
    pfgm_config cfg;
    char b[64], z[64];
    snprintf(b, sizeof b, "distributed.bucket_mb=%s", bucket_mb);
    snprintf(z, sizeof z, "distributed.zero=%d", zero);
    const char *extra[] = {b, z, "optim.grad_clip=0.5"}; /* clipping active: the norm matters */
    pfgm_status st = tr_config(&cfg, data_, n_iters, extra, 3);
    if (st != PFGM_OK) return st;
    pfgm_train_options o = {.run_dir = run, .resume = "auto"};
    pfgm_train_result r;
    return pfgm_train(&cfg, &o, comm_, be_, &lg_, &r);
}

static void path_of(char *out, size_t cap, const char *name) { snprintf(out, cap, "%s/%s", dir_, name); }

/* Number of checkpoint datasets of step `step` that differ between runs a and b (rank 0). */
static int differ(const char *a, const char *b, int64_t step, int *datasets) {
    char ca[800], cb[800], first[256];
    assert_int_equal(pfgm_ckpt_path(a, step, ca, sizeof ca), PFGM_OK);
    assert_int_equal(pfgm_ckpt_path(b, step, cb, sizeof cb), PFGM_OK);
    int d = tr_ckpt_differences(ca, cb, datasets, first, sizeof first);
    printf("W = %d: %s vs %s: %d of %d datasets differ%s%s\n", comm_->world_size, strrchr(a, '/') + 1,
           strrchr(b, '/') + 1, d, *datasets, d ? ", first: " : "", d ? first : "");
    return d;
}

/* The grad_norm of every step record of run's metrics.jsonl, in order. */
static int norms(const char *run, double *out, int cap) {
    char m[800];
    snprintf(m, sizeof m, "%s/metrics.jsonl", run);
    FILE *f = fopen(m, "r");
    if (!f) return -1;
    char line[4096];
    int n = 0;
    while (n < cap && fgets(line, sizeof line, f)) {
        json_t *o = json_loads(line, 0, NULL);
        json_t *g = o ? json_object_get(o, "grad_norm") : NULL;
        if (g && json_is_number(g)) out[n++] = json_number_value(g);
        json_decref(o);
    }
    fclose(f);
    return n;
}

static void test_two_ranks(void **state) {
    (void)state;
    if (comm_->world_size != 2) skip();
    const int64_t K = 4;
    char plain[700], buck[700], zero[700], dflt[700], on[700], off[700];
    path_of(plain, sizeof plain, "plain");
    path_of(buck, sizeof buck, "buckets");
    path_of(zero, sizeof zero, "zero");
    path_of(dflt, sizeof dflt, "default");
    path_of(on, sizeof on, "switch-on");
    path_of(off, sizeof off, "switch-off");
    assert_int_equal(train(plain, K, "0", 0), PFGM_OK);
    assert_int_equal(train(buck, K, "0.03", 0), PFGM_OK);
    assert_int_equal(train(zero, K, "0.03", 1), PFGM_OK);
    assert_int_equal(train(dflt, K, "25", 1), PFGM_OK);
    /* ZeRO switched on, then off, at a restart at step 2 */
    assert_int_equal(train(on, 2, "0.03", 0), PFGM_OK);
    assert_int_equal(train(on, K, "0.03", 1), PFGM_OK);
    assert_int_equal(train(off, 2, "0.03", 1), PFGM_OK);
    assert_int_equal(train(off, K, "0", 0), PFGM_OK);
    if (comm_->rank != 0) return;
    int n = 0;
    const char *others[] = {buck, zero, dflt, on, off};
    for (size_t i = 0; i < sizeof others / sizeof others[0]; ++i) {
        assert_int_equal(differ(plain, others[i], K, &n), 0);
        assert_true(n > 80);
    }
    double a[16], b[16];
    assert_int_equal(norms(plain, a, 16), K);
    assert_int_equal(norms(zero, b, 16), K);
    for (int i = 0; i < K; ++i) assert_memory_equal(&a[i], &b[i], sizeof(double));
}

static void test_three_ranks(void **state) {
    (void)state;
    if (comm_->world_size != 3) skip();
    const int64_t K = 4;
    char z1[700], z2[700], rs[700], z0[700];
    path_of(z1, sizeof z1, "zero-a");
    path_of(z2, sizeof z2, "zero-b");
    path_of(rs, sizeof rs, "zero-restart");
    path_of(z0, sizeof z0, "nozero");
    assert_int_equal(train(z1, K, "0.05", 1), PFGM_OK);
    assert_int_equal(train(z2, K, "0.05", 1), PFGM_OK);
    assert_int_equal(train(rs, 2, "0.05", 1), PFGM_OK);
    assert_int_equal(train(rs, K, "0.05", 1), PFGM_OK);
    assert_int_equal(train(z0, K, "0.05", 0), PFGM_OK);
    if (comm_->rank != 0) return;
    int n = 0;
    assert_int_equal(differ(z1, z2, K, &n), 0);
    assert_true(n > 80);
    assert_int_equal(differ(z1, rs, K, &n), 0);
    (void)differ(z1, z0, K, &n); /* printed, not required */
}

int main(int argc, char **argv) {
    if (pfgm_comm_mpi_create(&argc, &argv, &comm_) != PFGM_OK || pfgm_backend_create("cpu", &be_) != PFGM_OK) {
        fprintf(stderr, "test_train_zero: %s\n", pfgm_error_message());
        return 1;
    }
    pfgm_logger_init(&lg_, comm_->rank);
    lg_.level = PFGM_LOG_WARN;
    tr_shared_dataset(comm_, dir_, sizeof dir_, data_, sizeof data_, "test_train_zero");
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_two_ranks), cmocka_unit_test(test_three_ranks)};
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    int any = failed != 0;
    MPI_Allreduce(MPI_IN_PLACE, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (comm_->rank == 0) fx_rm_rf(dir_);
    pfgm_backend_destroy(be_);
    pfgm_comm_destroy(comm_);
    return any ? 1 : 0;
}
