/* Checked-call macros: one generic macro, parameterised by the success test, the
 * error-to-string function and the message's ending, with one-line aliases per library
 * (MPI, HDF5, libyaml, CUDA, cuBLAS, NCCL). Each failure records "statement failed: reason
 * (file:line)" as the thread's error message (HDF5: "statement failed: reason", without a
 * source location, see below) and returns (or jumps to a cleanup label with) a pfgm_status.
 * Library code never exits; only main() maps a status to an exit code. Private header. */
#ifndef PFGM_UTIL_CHECK_H
#define PFGM_UTIL_CHECK_H

#include "pfgm/status.h"

/* " (file:line)" of the statement, as one string literal. */
#define PFGM_STR_(x) #x
#define PFGM_XSTR_(x) PFGM_STR_(x)
#define PFGM_AT_ " (" __FILE__ ":" PFGM_XSTR_(__LINE__) ")"

/* Generic form. `type` is the call's result type, `ok(r)` the success test on the result,
 * `why(r)` a const char * describing the failure, `code` the pfgm_status to return, `where`
 * a string literal ending the message: PFGM_AT_, or "" where the failure is the user's file
 * and the caller names it (HDF5). */
#define PFGM_CHECK_GEN(call, type, ok, why, code, where)                             \
    do {                                                                           \
        type pfgm_r_ = (call);                                                     \
        if (!(ok(pfgm_r_)))                                                        \
            return pfgm_error((code), "%s failed: %s%s", #call, why(pfgm_r_), where); \
    } while (0)

/* Same test, but sets `st` and jumps to `label` so the caller can release resources. */
#define PFGM_CHECK_GEN_GOTO(call, type, ok, why, code, where, label)                 \
    do {                                                                           \
        type pfgm_r_ = (call);                                                     \
        if (!(ok(pfgm_r_))) {                                                      \
            st = pfgm_error((code), "%s failed: %s%s", #call, why(pfgm_r_), where); \
            goto label;                                                            \
        }                                                                          \
    } while (0)

/* pfgm's own calls: propagate a non-OK status unchanged (the message is already set). */
#define PFGM_TRY(call)                                                             \
    do {                                                                           \
        pfgm_status pfgm_s_ = (call);                                              \
        if (pfgm_s_ != PFGM_OK) return pfgm_s_;                                    \
    } while (0)
#define PFGM_TRY_GOTO(call, label)                                                 \
    do {                                                                           \
        st = (call);                                                               \
        if (st != PFGM_OK) goto label;                                             \
    } while (0)

/* --- success tests and reasons shared by the aliases ---------------------------------- */
#define PFGM_OK_NONNEG_(r) ((r) >= 0)
#define PFGM_OK_ONE_(r) ((r) == 1)
#define PFGM_WHY_YAML_(r) "libyaml error"

/* MPI: success is MPI_SUCCESS; the reason is MPI_Error_string (pfgm_mpi_strerror). */
const char *pfgm_mpi_strerror(int code);
#define PFGM_MPI_OK_(r) ((r) == 0 /* MPI_SUCCESS */)
#define PFGM_MPI_CHECK(call) \
    PFGM_CHECK_GEN(call, int, PFGM_MPI_OK_, pfgm_mpi_strerror, PFGM_ERR_MPI, PFGM_AT_)
#define PFGM_MPI_CHECK_GOTO(call, label) \
    PFGM_CHECK_GEN_GOTO(call, int, PFGM_MPI_OK_, pfgm_mpi_strerror, PFGM_ERR_MPI, PFGM_AT_, label)

/* HDF5: herr_t and hid_t both signal failure with a negative value. The reason is HDF5's own
 * description, read from its error stack at once (the next HDF5 call clears it) by
 * pfgm_h5_strerror (src/io/h5util.c): the stack on one line, "<outermost>: <innermost
 * description>", e.g. "unable to open file: file signature not found", valid until the
 * thread's next call. No source location: an HDF5 failure is almost always about the
 * user's file, which the io/ entry points name (pfgm_h5_context, src/io/h5util.h). */
const char *pfgm_h5_strerror(void);
#define PFGM_WHY_HDF5_(r) pfgm_h5_strerror()
#define PFGM_H5_CHECK(call) \
    PFGM_CHECK_GEN(call, long long, PFGM_OK_NONNEG_, PFGM_WHY_HDF5_, PFGM_ERR_HDF5, "")
#define PFGM_H5_CHECK_GOTO(call, label) \
    PFGM_CHECK_GEN_GOTO(call, long long, PFGM_OK_NONNEG_, PFGM_WHY_HDF5_, PFGM_ERR_HDF5, "", label)

/* libyaml: the parser/emitter calls return 1 on success, 0 on failure. */
#define PFGM_YAML_CHECK(call) \
    PFGM_CHECK_GEN(call, int, PFGM_OK_ONE_, PFGM_WHY_YAML_, PFGM_ERR_YAML, PFGM_AT_)
#define PFGM_YAML_CHECK_GOTO(call, label) \
    PFGM_CHECK_GEN_GOTO(call, int, PFGM_OK_ONE_, PFGM_WHY_YAML_, PFGM_ERR_YAML, PFGM_AT_, label)

/* CUDA, cuBLAS, NCCL: only expanded in src/backend/cuda/ and src/comm/comm_nccl.c, which
 * include the vendor headers that declare the result types and string functions. */
#define PFGM_CUDA_OK_(r) ((r) == cudaSuccess)
#define PFGM_CUDA_CHECK(call) \
    PFGM_CHECK_GEN(call, cudaError_t, PFGM_CUDA_OK_, cudaGetErrorString, PFGM_ERR_CUDA, PFGM_AT_)
#define PFGM_CUBLAS_OK_(r) ((r) == CUBLAS_STATUS_SUCCESS)
#define PFGM_CUBLAS_CHECK(call)                                                          \
    PFGM_CHECK_GEN(call, cublasStatus_t, PFGM_CUBLAS_OK_, cublasGetStatusString, PFGM_ERR_CUBLAS, \
                   PFGM_AT_)
#define PFGM_NCCL_OK_(r) ((r) == ncclSuccess)
#define PFGM_NCCL_CHECK(call) \
    PFGM_CHECK_GEN(call, ncclResult_t, PFGM_NCCL_OK_, ncclGetErrorString, PFGM_ERR_NCCL, PFGM_AT_)

#endif /* PFGM_UTIL_CHECK_H */
