/* pfgm-sample's work (include/pfgm/sampler.h): EMA weights -> prior -> backward ODE ->
 * uint8 images -> PNG grid + HDF5 samples. The network is the ODE's field callback. */
#include "pfgm/sampler.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pfgm/checkpoint.h"
#include "pfgm/ddpmpp.h"
#include "pfgm/ode.h"
#include "pfgm/prior.h"
#include "pfgm/samples.h"
#include "util/atomic_file.h"
#include "util/check.h"

/* The ODE's field callback: one evaluation-mode forward of DDPM++ (spec §1.6). */
static pfgm_status network_field(void *user, int64_t B, const float *x, const float *z, float *v_x, float *v_z) {
    pfgm_ddpmpp *m = user;
    pfgm_backend *be = pfgm_ddpmpp_params(m)->be;
    const pfgm_ddpmpp_desc *d = pfgm_ddpmpp_get_desc(m);
    int64_t N = d->channels * d->image_size * d->image_size;
    const float *nx = NULL, *nz = NULL;
    PFGM_TRY(pfgm_ddpmpp_forward(m, B, x, z, NULL, &nx, &nz));
    PFGM_TRY(be->copy(be, v_x, nx, sizeof(float) * (size_t)(B * N), PFGM_COPY_D2D));
    PFGM_TRY(be->copy(be, v_z, nz, sizeof(float) * (size_t)B, PFGM_COPY_D2D));
    return PFGM_OK;
}

/* Loads the checkpoint's EMA (or raw parameters) into the model by the authors' names. */
static pfgm_status load_weights(pfgm_ddpmpp *m, const char *path, int use_params) {
    pfgm_nn_params *p = pfgm_ddpmpp_params(m);
    float *host = calloc((size_t)p->floats, sizeof(float));
    pfgm_ckpt_tensor *t = calloc((size_t)p->n, sizeof *t);
    pfgm_status st = PFGM_OK;
    if (!host || !t) st = pfgm_error(PFGM_ERR_NOMEM, "%s: out of memory loading weights", path);
    for (int i = 0; st == PFGM_OK && i < p->n; ++i) {
        const pfgm_nn_param *it = &p->items[i];
        t[i] = (pfgm_ckpt_tensor){.name = it->name, .ndim = it->ndim, .data = host + it->offset};
        for (int k = 0; k < it->ndim; ++k) t[i].shape[k] = it->shape[k];
    }
    if (st == PFGM_OK) st = pfgm_ckpt_read_section(path, use_params ? "params" : "ema", t, (size_t)p->n);
    if (st == PFGM_OK) st = pfgm_backend_upload(p->be, p->value, host, p->floats);
    free(host);
    free(t);
    return st;
}

static pfgm_ode_options ode_options(const pfgm_config *c) {
    pfgm_ode_options o = pfgm_ode_options_default();
    o.method = c->sampling.ode_solver == PFGM_SOLVER_FORWARD_EULER   ? PFGM_ODE_EULER
               : c->sampling.ode_solver == PFGM_SOLVER_IMPROVED_EULER ? PFGM_ODE_HEUN
                                                                   : PFGM_ODE_RK45;
    o.z_max = c->sampling.z_max;
    o.z_min = c->sampling.z_min;
    o.gamma = c->training.gamma;
    o.z_exp = c->sampling.z_exp;
    o.steps = c->sampling.N;
    o.rtol = c->sampling.rk45_rtol;
    o.atol = c->sampling.rk45_atol;
    o.z_replicas = c->data.image_size * c->data.image_size; /* the authors' (B, C+1, H, W) state */
    return o;
}

pfgm_status pfgm_sample(const pfgm_config *cfg, const pfgm_sample_options *o, pfgm_backend *be,
                        const pfgm_logger *lg, pfgm_sample_result *res) {
    memset(res, 0, sizeof *res);
    if (o->num_samples < 1) return pfgm_error(PFGM_ERR_INVALID_ARG, "number of samples must be >= 1");
    const int64_t C = cfg->data.channels, H = cfg->data.image_size, N = C * H * H;
    const int64_t Bmax = cfg->sampling.batch_size < o->num_samples ? cfg->sampling.batch_size : o->num_samples;
    pfgm_ddpmpp_desc desc;
    PFGM_TRY(pfgm_ddpmpp_desc_from_config(cfg, &desc));
    PFGM_TRY(pfgm_mkdirs(o->out_dir));

    pfgm_status st = PFGM_OK;
    pfgm_ddpmpp *model = NULL;
    pfgm_ode_solver *solver = NULL;
    float *x = NULL, *host = NULL;
    uint8_t *images = NULL;
    struct timespec ts0, ts1;
    clock_gettime(CLOCK_MONOTONIC, &ts0);
    PFGM_TRY_GOTO(pfgm_ddpmpp_create(be, &desc, Bmax, PFGM_DDPMPP_INFER, &model), done);
    PFGM_TRY_GOTO(load_weights(model, o->checkpoint, o->use_params), done);
    pfgm_ode_options oo = ode_options(cfg);
    PFGM_TRY_GOTO(pfgm_ode_create(be, Bmax, N, &oo, &solver), done);
    PFGM_TRY_GOTO(be->alloc(be, sizeof(float) * (size_t)(Bmax * N), (void **)&x), done);
    host = malloc(sizeof(float) * (size_t)(Bmax * N));
    images = malloc((size_t)(o->num_samples * N));
    if (!host || !images) {
        st = pfgm_error(PFGM_ERR_NOMEM, "sampler: cannot allocate %lld images", (long long)o->num_samples);
        goto done;
    }
    int64_t batches = (o->num_samples + Bmax - 1) / Bmax;
    double nfe_sum = 0.0;
    for (int64_t i = 0; i < batches; ++i) {
        int64_t B = o->num_samples - i * Bmax < Bmax ? o->num_samples - i * Bmax : Bmax;
        pfgm_rng r = {.seed = o->seed, .rank = 0, .stream = PFGM_STREAM_PRIOR, .step = (uint64_t)i};
        pfgm_ode_stats stats = {0};
        PFGM_TRY_GOTO(pfgm_prior_sample(be, &r, Bmax, N, cfg->sampling.z_max, cfg->sampling.upper_norm, x, NULL), done);
        if (B == Bmax) {
            PFGM_TRY_GOTO(pfgm_ode_solve(solver, x, network_field, model, &stats), done);
        } else {
            /* the last, partial batch: a solver sized for it (the batch-global RK45 step
             * depends on the batch, as in the authors' sampler) */
            pfgm_ode_solver *small = NULL;
            PFGM_TRY_GOTO(pfgm_ode_create(be, B, N, &oo, &small), done);
            st = pfgm_ode_solve(small, x, network_field, model, &stats);
            pfgm_ode_destroy(small);
            if (st != PFGM_OK) goto done;
        }
        PFGM_TRY_GOTO(pfgm_backend_download(be, host, x, B * N), done);
        pfgm_samples_to_uint8(B * N, host, images + i * Bmax * N);
        nfe_sum += (double)stats.nfe;
        res->rho_guard += stats.rho_guard;
        pfgm_log_info(lg, "batch %lld/%lld: %lld samples, NFE %lld", (long long)(i + 1), (long long)batches,
                      (long long)B, (long long)stats.nfe);
    }
    res->samples = o->num_samples;
    res->mean_nfe = nfe_sum / (double)batches;
    {
        char path[4096];
        int64_t grid = o->num_samples < o->grid_max ? o->num_samples : o->grid_max;
        int64_t nrow = (int64_t)ceil(sqrt((double)grid));
        snprintf(path, sizeof path, "%s/samples.png", o->out_dir);
        PFGM_TRY_GOTO(pfgm_samples_write_png_grid(path, images, grid, C, H, H, nrow, 2), done);
        snprintf(path, sizeof path, "%s/samples.h5", o->out_dir);
        pfgm_ckpt_meta meta;
        int64_t step = -1;
        if (pfgm_ckpt_read_meta(o->checkpoint, &meta) == PFGM_OK) {
            step = meta.step;
            pfgm_ckpt_meta_free(&meta);
        }
        pfgm_samples_meta sm = {.checkpoint = o->checkpoint, .step = step, .solver = pfgm_config_solver_name(cfg->sampling.ode_solver),
                                .nfe = res->mean_nfe, .seed = o->seed};
        PFGM_TRY_GOTO(pfgm_samples_write_h5(path, images, o->num_samples, C, H, H, &sm), done);
    }
    clock_gettime(CLOCK_MONOTONIC, &ts1);
    res->seconds = (double)(ts1.tv_sec - ts0.tv_sec) + 1e-9 * (double)(ts1.tv_nsec - ts0.tv_nsec);
done:
    if (x) be->free(be, x);
    free(host);
    free(images);
    pfgm_ode_destroy(solver);
    pfgm_ddpmpp_destroy(model);
    return st;
}
