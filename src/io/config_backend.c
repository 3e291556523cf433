/* distributed.* -> a backend: the one place where the configuration chooses and sets up the
 * compute backend (include/pfgm/config.h, docs/config-reference.md "distributed"). */
#include "pfgm/config.h"

pfgm_status pfgm_config_backend_create(const pfgm_config *cfg, int device, pfgm_backend **out) {
    *out = NULL;
    if (cfg->distributed.backend == PFGM_BACKEND_CUDA) {
        pfgm_cuda_options o = {.device = device, .allow_tf32 = cfg->distributed.allow_tf32 ? 1 : 0};
        return pfgm_backend_cuda_create(&o, out);
    }
    return pfgm_backend_create("cpu", out);
}
