/* The trainer's device communicator (pfgm_train_options.device_comm) under mpirun -np 2, on
 * the CPU backend: a run whose collectives on backend memory go through a second, counting
 * communicator gives the same checkpoint to the bit as a run with device_comm = NULL, and
 * that communicator carries exactly the gradient average (with the default ZeRO-1: one F32
 * AVG reduce-scatter of each bucket per step, the buckets adding up to the trainable
 * floats, and one all-gather of the parameters per bucket) and, with field.reference:
 * global, the charges all-gather (one per step), while the control collectives (the
 * finite agreement, the norm's block sums) stay on comm. A device communicator with other ranks is
 * refused on every rank. (On GPUs the device communicator is NCCL: tests/gpu_mpi.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <mpi.h>

#include "pfgm/backend.h"
#include "pfgm/checkpoint.h"
#include "pfgm/comm.h"
#include "pfgm/ddpmpp.h"
#include "pfgm/log.h"
#include "pfgm/step.h"
#include "pfgm/trainer.h"
#include "train_testutil.h"

static char dir_[512], data_[600];
static pfgm_comm *comm_, *inner_;
static pfgm_backend *be_;
static pfgm_logger lg_;

/* ---- a communicator that counts what passes through it ---------------------------------- */

static struct {
    int allreduce_avg_f32, allreduce_other, allgather, broadcast, barrier, iallreduce;
    size_t avg_count, gather_count;
    size_t rs_floats, ag_floats; /* per-rank blocks started by ireduce_scatter / iallgather */
} seen_;

static pfgm_status cnt_iallreduce(pfgm_comm *c, void *buf, size_t count, pfgm_dtype t, pfgm_redop op,
                                  pfgm_comm_req **req) {
    seen_.iallreduce++;
    return inner_->iallreduce(inner_, buf, count, t, op, req);
}
static pfgm_status cnt_ireduce_scatter(pfgm_comm *c, void *buf, size_t count, pfgm_dtype t, pfgm_redop op,
                                       pfgm_comm_req **req) {
    if (t == PFGM_F32 && op == PFGM_REDUCE_AVG) seen_.rs_floats += count;
    else seen_.allreduce_other++;
    return inner_->ireduce_scatter(inner_, buf, count, t, op, req);
}
static pfgm_status cnt_iallgather(pfgm_comm *c, void *buf, size_t count, pfgm_dtype t, pfgm_comm_req **req) {
    seen_.ag_floats += count;
    return inner_->iallgather(inner_, buf, count, t, req);
}

static pfgm_status cnt_allreduce(pfgm_comm *c, void *buf, size_t count, pfgm_dtype t, pfgm_redop op) {
    if (t == PFGM_F32 && op == PFGM_REDUCE_AVG) {
        seen_.allreduce_avg_f32++;
        seen_.avg_count = count;
    } else {
        seen_.allreduce_other++;
    }
    return inner_->allreduce(inner_, buf, count, t, op);
}
static pfgm_status cnt_allgather(pfgm_comm *c, const void *send, void *recv, size_t count, pfgm_dtype t) {
    seen_.allgather++;
    seen_.gather_count = count;
    return inner_->allgather(inner_, send, recv, count, t);
}
static pfgm_status cnt_broadcast(pfgm_comm *c, void *buf, size_t count, pfgm_dtype t, int root) {
    seen_.broadcast++;
    return inner_->broadcast(inner_, buf, count, t, root);
}
static pfgm_status cnt_barrier(pfgm_comm *c) {
    seen_.barrier++;
    return inner_->barrier(inner_);
}
static void cnt_abort(pfgm_comm *c, int code) { inner_->abort(inner_, code); }

static pfgm_comm counting_comm(void) {
    pfgm_comm c = *inner_;
    c.name = "counting";
    c.allreduce = cnt_allreduce;
    c.allgather = cnt_allgather;
    c.broadcast = cnt_broadcast;
    c.barrier = cnt_barrier;
    c.abort = cnt_abort;
    c.iallreduce = cnt_iallreduce;
    c.ireduce_scatter = cnt_ireduce_scatter;
    c.iallgather = cnt_iallgather;
    c.destroy = NULL;
    return c;
}

/* ---- runs ----------------------------------------------------------------------------------- */

static pfgm_status train(const char *run, int64_t n_iters, const char *reference, pfgm_comm *device_comm,
                         int64_t *trainable) {
    pfgm_config cfg;
    char ref[64];
    snprintf(ref, sizeof ref, "field.reference=%s", reference);
    const char *extra[] = {ref};
    pfgm_status st = tr_config(&cfg, data_, n_iters, extra, 1);
    if (st != PFGM_OK) return st;
    pfgm_train_options o = {.run_dir = run, .resume = "never", .device_comm = device_comm};
    pfgm_train_result r;
    st = pfgm_train(&cfg, &o, comm_, be_, &lg_, &r);
    if (trainable && st == PFGM_OK) {
        /* the trainable float count of the model this config builds */
        pfgm_ddpmpp_desc desc;
        pfgm_ddpmpp *model = NULL;
        *trainable = 0;
        pfgm_status ds = pfgm_ddpmpp_desc_from_config(&cfg, &desc);
        desc.param_multiple = pfgm_step_param_multiple(comm_->world_size);
        if (ds == PFGM_OK &&
            pfgm_ddpmpp_create(be_, &desc, cfg.training.small_batch_size, PFGM_DDPMPP_TRAIN, &model) == PFGM_OK)
            *trainable = pfgm_ddpmpp_params(model)->trainable_floats;
        pfgm_ddpmpp_destroy(model);
    }
    return st;
}

static void check_mode(const char *reference) {
    const int64_t steps = 3;
    char a[700], b[700], ca[800], cb[800];
    snprintf(a, sizeof a, "%s/plain-%s", dir_, reference);
    snprintf(b, sizeof b, "%s/device-%s", dir_, reference);
    assert_int_equal(train(a, steps, reference, NULL, NULL), PFGM_OK);
    memset(&seen_, 0, sizeof seen_);
    pfgm_comm counting = counting_comm();
    int64_t trainable = 0;
    assert_int_equal(train(b, steps, reference, &counting, &trainable), PFGM_OK);
    const int global = strcmp(reference, "global") == 0;
    printf("rank %d, field.reference %s: device comm saw %zu floats reduce-scattered and %zu all-gathered per rank, "
           "%d all-reduces, %d all-gathers of %zu, %d other reductions, %d broadcasts, %d barriers\n",
           comm_->rank, reference, seen_.rs_floats, seen_.ag_floats, seen_.allreduce_avg_f32 + seen_.iallreduce,
           seen_.allgather, seen_.gather_count, seen_.allreduce_other, seen_.broadcast, seen_.barrier);
    assert_int_equal(seen_.allreduce_avg_f32 + seen_.iallreduce, 0);
    assert_int_equal(seen_.allgather, global ? steps : 0);
    assert_int_equal(seen_.allreduce_other + seen_.broadcast + seen_.barrier, 0);
    if (global) assert_true(seen_.gather_count > 0);
    if (comm_->rank != 0) return; /* rank 0 wrote the files */
    assert_true(trainable > 0);
    assert_int_equal((int64_t)seen_.rs_floats * comm_->world_size, steps * trainable);
    assert_int_equal((int64_t)seen_.ag_floats * comm_->world_size, steps * trainable);
    assert_int_equal(pfgm_ckpt_path(a, steps, ca, sizeof ca), PFGM_OK);
    assert_int_equal(pfgm_ckpt_path(b, steps, cb, sizeof cb), PFGM_OK);
    int datasets = 0;
    char first[256];
    int differ = tr_ckpt_differences(ca, cb, &datasets, first, sizeof first);
    printf("field.reference %s: %d datasets compared, %d differ%s%s\n", reference, datasets, differ,
           differ ? ", first: " : "", differ ? first : "");
    assert_int_equal(differ, 0);
    assert_true(datasets > 80);
}

static void test_local(void **state) { (void)state; check_mode("local"); }
static void test_global(void **state) { (void)state; check_mode("global"); }

/* A one-process device communicator next to a two-rank comm: refused on both ranks, before
 * any collective (so neither waits for the other). */
static void test_mismatch_refused(void **state) {
    (void)state;
    pfgm_comm *single = NULL;
    assert_int_equal(pfgm_comm_single_create(&single), PFGM_OK);
    char run[700];
    snprintf(run, sizeof run, "%s/mismatch", dir_);
    assert_int_equal(train(run, 1, "local", single, NULL), PFGM_ERR_INVALID_ARG);
    assert_non_null(strstr(pfgm_error_message(), "device communicator (single) has rank 0 of 1"));
    pfgm_comm_destroy(single);
}

int main(int argc, char **argv) {
    if (pfgm_comm_mpi_create(&argc, &argv, &comm_) != PFGM_OK || pfgm_comm_mpi_create(&argc, &argv, &inner_) != PFGM_OK ||
        pfgm_backend_create("cpu", &be_) != PFGM_OK) {
        fprintf(stderr, "test_train_device_comm: %s\n", pfgm_error_message());
        return 1;
    }
    pfgm_logger_init(&lg_, comm_->rank);
    lg_.level = PFGM_LOG_WARN;
    tr_shared_dataset(comm_, dir_, sizeof dir_, data_, sizeof data_, "test_train_device_comm");
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_local), cmocka_unit_test(test_global),
                                       cmocka_unit_test(test_mismatch_refused)};
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    int any = failed != 0;
    MPI_Allreduce(MPI_IN_PLACE, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (comm_->rank == 0) fx_rm_rf(dir_);
    pfgm_backend_destroy(be_);
    pfgm_comm_destroy(inner_);
    pfgm_comm_destroy(comm_);
    return any ? 1 : 0;
}
