/* The sampler under mpirun -np 2, through the library: the samples of a 2-rank draw
 * (whole global batches per rank, gathered round by round) equal, to the bit, those of a
 * one-process draw with the same seed, for uneven batch counts, a single batch (one rank
 * idle) and every solver; a failure on one rank is reported by both with the same status
 * and no rank waits forever. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "pfgm/backend.h"
#include "pfgm/checkpoint.h"
#include "pfgm/comm.h"
#include "pfgm/log.h"
#include "pfgm/sampler.h"
#include "pfgm/trainer.h"
#include "train_testutil.h"

static char dir_[512], data_[600], run_[600], ckpt_[700];
static pfgm_comm *comm_;
static pfgm_backend *be_;
static pfgm_logger lg_;

static void config(pfgm_config *cfg, const char *const *sets, size_t n) {
    pfgm_ckpt *ck = NULL;
    assert_int_equal(pfgm_ckpt_open(ckpt_, &ck), PFGM_OK);
    *cfg = *pfgm_ckpt_config(ck);
    pfgm_ckpt_close(ck);
    for (size_t i = 0; i < n; ++i) assert_int_equal(pfgm_config_set(cfg, sets[i]), PFGM_OK);
    assert_int_equal(pfgm_config_validate(cfg), PFGM_OK);
}

/* num samples on 2 ranks and on this rank alone: the same bits, batches and NFE. */
static void compare(const char *const *sets, size_t n, int64_t num, uint32_t seed, int use_params) {
    pfgm_config cfg;
    config(&cfg, sets, n);
    const size_t bytes = sizeof(float) * (size_t)(num * 64);
    float *x2 = malloc(bytes), *x1 = malloc(bytes);
    assert_non_null(x2);
    assert_non_null(x1);
    memset(x2, 0xff, bytes);
    /* rank 0 alone opens the file; the others receive the weights */
    pfgm_ckpt *ck = NULL;
    if (comm_->rank == 0) assert_int_equal(pfgm_ckpt_open(ckpt_, &ck), PFGM_OK);
    pfgm_sample_options o = {.checkpoint = ck, .num_samples = num, .seed = seed, .use_params = use_params};
    pfgm_sample_result r2, r1;
    assert_int_equal(pfgm_sample_draw(&cfg, &o, comm_, be_, &lg_, x2, &r2), PFGM_OK);
    pfgm_ckpt *own = NULL;
    assert_int_equal(pfgm_ckpt_open(ckpt_, &own), PFGM_OK);
    o.checkpoint = own;
    assert_int_equal(pfgm_sample_draw(&cfg, &o, NULL, be_, &lg_, x1, &r1), PFGM_OK);
    pfgm_ckpt_close(own);
    pfgm_ckpt_close(ck);
    for (int64_t i = 0; i < num * 64; ++i) assert_true(isfinite(x1[i]));
    assert_memory_equal(x1, x2, bytes); /* every rank received every sample */
    assert_int_equal(r1.batches, r2.batches);
    assert_int_equal(r1.nfe_total, r2.nfe_total);
    assert_int_equal(r1.nfe_min, r2.nfe_min);
    assert_int_equal(r1.nfe_max, r2.nfe_max);
    assert_int_equal(r2.samples, num);
    assert_int_equal(r2.failed_rank, -1);
    if (comm_->rank == 0)
        printf("%lld samples, %lld batches, %s: equal to the bit on 1 and 2 ranks (NFE %lld..%lld)\n",
               (long long)num, (long long)r2.batches, pfgm_config_solver_name(cfg.sampling.ode_solver),
               (long long)r2.nfe_min, (long long)r2.nfe_max);
    free(x1);
    free(x2);
}

static void test_same_bits(void **state) {
    (void)state;
    const char *rk45[] = {"sampling.ode_solver=rk45", "sampling.rk45_rtol=1e-3", "sampling.rk45_atol=1e-3"};
    compare(rk45, 3, 10, 3, 0); /* 3 batches (4, 4, 2): rank 0 two, rank 1 one */
    const char *heun[] = {"sampling.ode_solver=improved_euler", "sampling.N=3"};
    compare(heun, 2, 3, 5, 0);  /* one batch: rank 1 idle */
    const char *euler[] = {"sampling.ode_solver=forward_euler", "sampling.N=2"};
    compare(euler, 2, 16, 9, 1); /* 4 batches, 2 each, raw parameters */
    compare(euler, 2, 17, 9, 0); /* 5 batches, the last of 1 sample */
}

/* Rank 0 cannot read the weights (a model config that does not match the checkpoint's
 * tensors): every rank returns rank 0's error, naming its file, before any weights travel. */
static void test_failure_on_one_rank(void **state) {
    (void)state;
    pfgm_config cfg;
    const char *nf[] = {"model.nf=32"};
    config(&cfg, nf, 1);
    float x[8 * 64];
    pfgm_ckpt *ck = NULL;
    if (comm_->rank == 0) assert_int_equal(pfgm_ckpt_open(ckpt_, &ck), PFGM_OK);
    pfgm_sample_options o = {.checkpoint = ck, .num_samples = 8, .seed = 1};
    pfgm_sample_result r;
    pfgm_status st = pfgm_sample_draw(&cfg, &o, comm_, be_, &lg_, x, &r);
    pfgm_ckpt_close(ck);
    assert_int_equal(st, PFGM_ERR_FORMAT);
    assert_int_equal(r.failed_rank, 0);
    assert_non_null(strstr(pfgm_error_message(), "rank 0: "));
    assert_non_null(strstr(pfgm_error_message(), "ckpt_00000004.h5"));
    /* the communicator is still usable: nobody is left inside a collective */
    int64_t one = 1;
    assert_int_equal(comm_->allreduce(comm_, &one, 1, PFGM_I64, PFGM_REDUCE_SUM), PFGM_OK);
    assert_int_equal(one, 2);
}

int main(int argc, char **argv) {
    if (pfgm_comm_mpi_create(&argc, &argv, &comm_) != PFGM_OK || pfgm_backend_create("cpu", &be_) != PFGM_OK) {
        fprintf(stderr, "test_sampler_mpi: %s\n", pfgm_error_message());
        return 1;
    }
    pfgm_logger_init(&lg_, comm_->rank);
    lg_.level = PFGM_LOG_WARN;
    int64_t ok = 1;
    if (comm_->rank == 0) {
        /* one process trains the fixture checkpoint (4 steps of configs/tiny.yaml) */
        fx_mkdtemp(dir_, sizeof dir_);
        fx_join(data_, sizeof data_, dir_, "data.h5");
        fx_join(run_, sizeof run_, dir_, "run");
        pfgm_comm *single = NULL;
        pfgm_config cfg;
        pfgm_train_options o = {.run_dir = run_, .resume = "auto"};
        pfgm_train_result r;
        if (fx_write_dataset(data_, 64, 1, 8, 1) != PFGM_OK || pfgm_comm_single_create(&single) != PFGM_OK ||
            tr_config(&cfg, data_, 4, NULL, 0) != PFGM_OK || pfgm_train(&cfg, &o, single, be_, &lg_, &r) != PFGM_OK) {
            fprintf(stderr, "test_sampler_mpi: fixture checkpoint: %s\n", pfgm_error_message());
            ok = 0;
        }
        pfgm_comm_destroy(single);
        pfgm_ckpt_path(run_, 4, ckpt_, sizeof ckpt_);
    }
    if (comm_->broadcast(comm_, &ok, 1, PFGM_I64, 0) != PFGM_OK || !ok ||
        comm_->broadcast(comm_, dir_, sizeof dir_, PFGM_U8, 0) != PFGM_OK ||
        comm_->broadcast(comm_, ckpt_, sizeof ckpt_, PFGM_U8, 0) != PFGM_OK) {
        pfgm_comm_destroy(comm_);
        return 1;
    }
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_same_bits), cmocka_unit_test(test_failure_on_one_rank)};
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    comm_->barrier(comm_);
    if (comm_->rank == 0) fx_rm_rf(dir_);
    pfgm_backend_destroy(be_);
    pfgm_comm_destroy(comm_);
    return rc;
}
