/* The NCCL communicator's entry points in a build without NCCL (no CUDA, or NCCL not found,
 * or -DPFGM_NCCL=OFF): available() says 0, create() refuses with a message naming the way
 * to get it, and set_backend() refuses (there is no NCCL communicator to set). In an NCCL
 * build src/comm/comm_nccl.c defines them and this file is empty. */
#include "pfgm/comm.h"

#ifndef PFGM_HAVE_NCCL

int pfgm_comm_nccl_available(void) { return 0; }

pfgm_status pfgm_comm_nccl_create(pfgm_comm *host, int *device, pfgm_comm **out) {
    (void)host;
    (void)device;
    if (out) *out = NULL;
    return pfgm_error(PFGM_ERR_UNSUPPORTED,
                      "this build of pfgm has no NCCL communicator (multi-rank training on GPUs needs it): "
                      "configure with the CUDA toolkit and NCCL installed (-DPFGM_NCCL=ON)");
}

pfgm_status pfgm_comm_nccl_set_backend(pfgm_comm *c, const struct pfgm_backend *be) {
    (void)c;
    (void)be;
    return pfgm_error(PFGM_ERR_UNSUPPORTED, "this build of pfgm has no NCCL communicator");
}

#else
typedef int pfgm_comm_nccl_none_unused; /* ISO C: a translation unit is not empty */
#endif
