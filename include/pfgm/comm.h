/* The communication interface: rank, world size, local rank, and the collectives the
 * trainer uses (gradient all-reduce, all-gather of charges for `field.reference: global`,
 * broadcast of the initial weights' checksum, barrier, abort). Implementations:
 *   single  one process, no MPI (collectives are copies)
 *   mpi     Open MPI on host buffers (the CPU backend's all-reduce)
 *   nccl    NCCL on device buffers, bootstrapped over MPI (CUDA builds)
 * Counts are element counts of the given dtype, never bytes (STYLE.md). Buffers are in the
 * memory the implementation documents (host for single/mpi). No MPI or NCCL type appears
 * here, so every layer can include it. */
#ifndef PFGM_COMM_H
#define PFGM_COMM_H

#include <stddef.h>
#include <stdint.h>

#include "pfgm/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    PFGM_F32 = 0, PFGM_F64, PFGM_I32, PFGM_I64, PFGM_U8, PFGM_U32, PFGM_U64
} pfgm_dtype;

/* Size in bytes of one element of dtype (0 for an unknown dtype). */
size_t pfgm_dtype_size(pfgm_dtype t);

typedef enum {
    PFGM_REDUCE_SUM = 0,
    PFGM_REDUCE_AVG, /* sum / world_size; floating dtypes only */
    PFGM_REDUCE_MAX,
    PFGM_REDUCE_MIN
} pfgm_redop;

typedef struct pfgm_comm pfgm_comm;

/* A started non-blocking collective (iallreduce, ireduce_scatter, iallgather). Owned by the
 * communicator; the caller passes it to wait() exactly once, which releases it. */
typedef struct pfgm_comm_req pfgm_comm_req;

struct pfgm_comm {
    const char *name;  /* "single", "mpi", "nccl" */
    int rank;          /* 0 .. world_size-1 */
    int world_size;
    int local_rank;    /* rank among the processes on this host (selects the GPU) */
    int local_size;    /* processes on this host */
    char host[64];
    void *impl;

    /* In place: buf[count] on every rank becomes the reduction over ranks.
     * Errors: PFGM_ERR_INVALID_ARG (AVG of an integer dtype), PFGM_ERR_MPI/NCCL. */
    pfgm_status (*allreduce)(pfgm_comm *c, void *buf, size_t count, pfgm_dtype t, pfgm_redop op);
    /* recv[world_size * count] = concatenation of every rank's send[count], rank order. */
    pfgm_status (*allgather)(pfgm_comm *c, const void *send, void *recv, size_t count, pfgm_dtype t);
    /* buf[count] of `root` is copied to every rank. */
    pfgm_status (*broadcast)(pfgm_comm *c, void *buf, size_t count, pfgm_dtype t, int root);
    pfgm_status (*barrier)(pfgm_comm *c);

    /* Non-blocking collectives, for the gradient buckets (src/train/grad_sync.c). Each
     * starts the collective and returns at once with *req; the buffer must not be read or
     * written until wait(req) returns. Every rank starts the same collectives in the same
     * order. A reduction's per-element result equals the blocking allreduce's for the same
     * count (the same reduction; for AVG on single/mpi the same multiply by 1/world_size after
     * the sum, on nccl ncclAvg as the blocking call uses). In memory as for the blocking calls (host for single/mpi, device for nccl).
     *   iallreduce      in place on buf[count], as allreduce.
     *   ireduce_scatter in place on buf[world_size * count]: on completion block `rank`
     *                   (buf + rank * count) holds the reduction over ranks of every rank's
     *                   block `rank`; the other blocks hold unspecified values.
     *   iallgather      in place on buf[world_size * count]: block `rank` is this rank's
     *                   contribution; on completion block r holds rank r's block, every r.
     * Errors: PFGM_ERR_INVALID_ARG (dtype, AVG of an integer dtype, count over the
     * implementation's limit), PFGM_ERR_MPI/NCCL/CUDA, PFGM_ERR_NOMEM. */
    pfgm_status (*iallreduce)(pfgm_comm *c, void *buf, size_t count, pfgm_dtype t, pfgm_redop op,
                              pfgm_comm_req **req);
    pfgm_status (*ireduce_scatter)(pfgm_comm *c, void *buf, size_t count, pfgm_dtype t, pfgm_redop op,
                                   pfgm_comm_req **req);
    pfgm_status (*iallgather)(pfgm_comm *c, void *buf, size_t count, pfgm_dtype t, pfgm_comm_req **req);
    /* Lets the started collectives advance without blocking: MPI moves a non-blocking
     * collective only inside MPI calls (no progress thread in Open MPI's default build), so
     * the step calls this between layers of the backward pass. A no-op where the transport
     * progresses by itself (NCCL's kernels, one process). Errors: PFGM_ERR_MPI. */
    pfgm_status (*progress)(pfgm_comm *c);
    /* Completes req and releases it. single/mpi: the host buffer holds the result on return.
     * nccl: the backend's compute stream is ordered after the collective (work it issues
     * later sees the result); the host need not block. Errors: PFGM_ERR_MPI/NCCL (the
     * request is released either way). */
    pfgm_status (*wait)(pfgm_comm *c, pfgm_comm_req *req);
    /* Ends the whole job with `code` (MPI_Abort); never returns. Used on a fatal error so
     * that no peer waits forever in a collective. */
    void (*abort)(pfgm_comm *c, int code);
    /* Releases the communicator (MPI_Finalize for the MPI implementation that owns MPI). */
    void (*destroy)(pfgm_comm *c);
};

/* A one-process communicator: rank 0 of 1. Errors: PFGM_ERR_NOMEM. */
pfgm_status pfgm_comm_single_create(pfgm_comm **out);

/* The MPI communicator over MPI_COMM_WORLD. Calls MPI_Init_thread(FUNNELED) unless MPI is
 * already initialised (then destroy() leaves MPI running). The local rank comes from
 * MPI_Comm_split_type(MPI_COMM_TYPE_SHARED). argc/argv may be NULL.
 * Errors: PFGM_ERR_MPI with MPI's message, PFGM_ERR_NOMEM. */
pfgm_status pfgm_comm_mpi_create(int *argc, char ***argv, pfgm_comm **out);

/* 1 when this process was started by a launcher (mpirun/srun environment variables
 * OMPI_COMM_WORLD_SIZE, PMI_SIZE, PMIX_RANK or SLURM_STEP_NUM_TASKS > 1), else 0. The
 * binaries use it to choose mpi over single without forcing MPI_Init on plain runs. */
int pfgm_comm_launched_by_mpi(void);

/* 1 when pfgm was built with the NCCL communicator, else 0. */
int pfgm_comm_nccl_available(void);

/* The NCCL communicator over the ranks of `host` (normally the MPI communicator), for
 * collectives on DEVICE buffers (cudaMalloc'd memory of this rank's GPU). Collective over
 * `host`, which bootstraps it and must outlive it; barrier() is host's, and abort() aborts
 * NCCL (ncclCommAbort) and then host (MPI_Abort).
 *   GPU choice: the rank's GPU is local_rank among the visible devices (CUDA_VISIBLE_DEVICES
 *   is respected), or device 0 when each rank sees exactly one GPU (a per-rank mask, as
 *   `srun --gpus-per-task=1` sets). *device (out) is that index, for
 *   pfgm_backend_cuda_create(). Two ranks on one GPU (same PCI bus id on one host) or more
 *   local ranks than visible GPUs is an error naming the host and ranks, on every rank.
 *   Bootstrap: rank 0's ncclUniqueId is broadcast over host, then host's barrier, then a
 *   non-blocking ncclCommInitRankConfig polled with the timeout below.
 *   Collectives run on the communicator's own stream after the device's previously issued
 *   work (cudaDeviceSynchronize), and have completed when they return; F32/F64 AVG is
 *   ncclAvg. Counts are element counts as everywhere.
 *   Hangs and asynchronous errors: while waiting, the NCCL asynchronous error state is
 *   polled; an error, or no completion within PFGM_NCCL_TIMEOUT_S seconds (environment,
 *   default 600), prints one line naming the rank, host and collective to stderr, calls
 *   ncclCommAbort and aborts the job through host (exit status of PFGM_ERR_NCCL): no rank
 *   waits forever.
 * Errors (the same on every rank for the checks before NCCL starts): PFGM_ERR_UNSUPPORTED
 * (built without NCCL, no CUDA device), PFGM_ERR_CONFIG (GPU assignment, a bad
 * PFGM_NCCL_TIMEOUT_S), PFGM_ERR_CUDA, PFGM_ERR_NCCL, host's errors, PFGM_ERR_NOMEM. */
pfgm_status pfgm_comm_nccl_create(pfgm_comm *host, int *device, pfgm_comm **out);

struct pfgm_backend;
/* NCCL communicator only: names the CUDA backend whose stream writes and reads the buffers of
 * the non-blocking collectives. A start then records an event on that stream and the
 * communication stream waits for it (no host sync); wait() polls the collective with the hang
 * protection above (PFGM_NCCL_TIMEOUT_S counted from wait's entry), then makes that stream wait
 * for it. Without it (or be NULL): a start waits for all the device's work
 * (cudaDeviceSynchronize) and wait() returns once the collective completed. Call with no
 * collective in flight. Errors: PFGM_ERR_INVALID_ARG (c not NCCL, be not CUDA, be on another
 * device, collectives in flight), PFGM_ERR_UNSUPPORTED (built without NCCL), PFGM_ERR_CUDA. */
pfgm_status pfgm_comm_nccl_set_backend(pfgm_comm *c, const struct pfgm_backend *be);

/* What the binaries do: the MPI communicator when pfgm_comm_launched_by_mpi(), else the
 * single-process one (so a plain run needs no MPI_Init). Errors: as the constructors. */
pfgm_status pfgm_comm_create_auto(int *argc, char ***argv, pfgm_comm **out);

/* Destroys a communicator (NULL is a no-op). */
void pfgm_comm_destroy(pfgm_comm *c);

#ifdef __cplusplus
}
#endif
#endif /* PFGM_COMM_H */
