/* Checkpoint save and restore for the trainer: assembling the named tensors of the model,
 * the EMA and the Adam moments, the resume policy (auto / never / path), the checks that a
 * checkpoint fits this run, and the broadcast of the restored state to every rank. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pfgm/checkpoint.h"
#include "train/train_internal.h"
#include "util/atomic_file.h"
#include "util/check.h"

/* Tensor list of a section over a host buffer laid out like the parameter buffer. */
static pfgm_status tensors_for(const pfgm_nn_params *p, float *base, int trainable_only, pfgm_ckpt_tensor **out,
                               size_t *count) {
    pfgm_ckpt_tensor *t = calloc((size_t)p->n, sizeof *t);
    if (!t) return pfgm_error(PFGM_ERR_NOMEM, "checkpoint: out of memory");
    size_t n = 0;
    for (int i = 0; i < p->n; ++i) {
        const pfgm_nn_param *it = &p->items[i];
        if (trainable_only && !it->trainable) continue;
        t[n].name = it->name;
        t[n].ndim = it->ndim;
        for (int d = 0; d < it->ndim; ++d) t[n].shape[d] = it->shape[d];
        t[n].data = base + it->offset;
        ++n;
    }
    *out = t;
    *count = n;
    return PFGM_OK;
}

typedef struct sections {
    pfgm_ckpt_tensor *params, *ema, *m, *v;
    size_t n_all, n_trainable;
} sections;

static void sections_free(sections *s) {
    free(s->params);
    free(s->ema);
    free(s->m);
    free(s->v);
}

static pfgm_status sections_make(trainer *t, sections *s) {
    memset(s, 0, sizeof *s);
    pfgm_status st = tensors_for(t->params, t->h_params, 0, &s->params, &s->n_all);
    if (st == PFGM_OK) st = tensors_for(t->params, t->h_ema, 0, &s->ema, &s->n_all);
    if (st == PFGM_OK) st = tensors_for(t->params, t->h_m, 1, &s->m, &s->n_trainable);
    if (st == PFGM_OK) st = tensors_for(t->params, t->h_v, 1, &s->v, &s->n_trainable);
    if (st != PFGM_OK) sections_free(s);
    return st;
}

/* A checkpoint never holds a NaN or an infinity (it would poison every resume). */
static pfgm_status check_finite(const trainer *t) {
    const struct { const char *what; const float *v; } bufs[] = {
        {"parameters", t->h_params}, {"EMA", t->h_ema}, {"Adam m", t->h_m}, {"Adam v", t->h_v}};
    for (size_t k = 0; k < 4; ++k)
        for (int64_t i = 0; i < t->params->floats; ++i)
            if (!isfinite(bufs[k].v[i]))
                return pfgm_error(PFGM_ERR_NUMERIC, "step %lld: the %s hold a non-finite value (element %lld); no checkpoint written",
                                  (long long)t->step, bufs[k].what, (long long)i);
    return PFGM_OK;
}

pfgm_status pfgm_train_save_checkpoint(trainer *t) {
    int64_t updates = 0;
    /* the optimizer state, assembled from every rank's shard under ZeRO (a collective) */
    pfgm_status st = pfgm_step_export_state(t->stepper, t->h_m, t->h_v, t->h_ema, &updates);
    if (st != PFGM_OK) return pfgm_error_prefix(st, "writing the checkpoint of step %lld", (long long)t->step);
    if (t->comm->rank == 0) {
        char path[4096], dir[4096];
        sections s;
        pfgm_dataset_position pos;
        pfgm_dataset_get_position(t->data, &pos);
        char *yaml = NULL;
        size_t ylen = 0;
        snprintf(dir, sizeof dir, "%s/checkpoints", t->opt->run_dir);
        st = pfgm_mkdirs(dir);
        if (st == PFGM_OK) st = pfgm_ckpt_path(t->opt->run_dir, t->step, path, sizeof path);
        if (st == PFGM_OK) st = pfgm_backend_download(t->be, t->h_params, t->params->value, t->params->floats);
        if (st == PFGM_OK) st = check_finite(t);
        if (st == PFGM_OK) st = pfgm_config_to_yaml_string(t->cfg, &yaml, &ylen);
        if (st == PFGM_OK) st = sections_make(t, &s);
        if (st == PFGM_OK) {
            pfgm_ckpt_meta meta = {.step = t->step, .epoch = pos.epoch, .epoch_index = pos.index,
                                   .ema_updates = updates, .seed = t->cfg->seed,
                                   .world_size = t->comm->world_size, .batch_size = t->L,
                                   .shard_size = pfgm_dataset_per_rank(t->data),
                                   .dataset_count = pfgm_dataset_count(t->data),
                                   .steps_per_epoch = pfgm_dataset_steps_per_epoch(t->data), .config_yaml = yaml};
            snprintf(meta.backend, sizeof meta.backend, "%s", t->be->kind == PFGM_BACKEND_CUDA ? "cuda" : "cpu");
            pfgm_ckpt_section sec[4] = {{"params", s.params, s.n_all},
                                        {"ema", s.ema, s.n_all},
                                        {"adam/m", s.m, s.n_trainable},
                                        {"adam/v", s.v, s.n_trainable}};
            st = pfgm_ckpt_write(path, &meta, sec, 4);
            sections_free(&s);
        }
        free(yaml);
        if (st == PFGM_OK)
            st = pfgm_ckpt_prune(t->opt->run_dir, t->cfg->checkpoint.keep_last, t->cfg->checkpoint.keep_every, t->step);
        if (st == PFGM_OK) pfgm_log_info(t->lg, "checkpoint %s", path);
        else st = pfgm_error_prefix(st, "writing the checkpoint of step %lld", (long long)t->step);
    }
    /* Rank 0's failure is fatal for the job (the caller aborts); on success every rank
     * leaves together. */
    if (st == PFGM_OK) PFGM_TRY(t->comm->barrier(t->comm));
    return st;
}

/* The model-shape keys a checkpoint must share with the run. */
static pfgm_status check_shape(const trainer *t, const char *path, const pfgm_config *old) {
    const pfgm_config_model *a = &old->model, *b = &t->cfg->model;
    const pfgm_config_data *da = &old->data, *db = &t->cfg->data;
    char oldv[128], newv[128];
#define SHAPE_INT(key, x, y)                                                                                    \
    if ((x) != (y))                                                                                             \
        return pfgm_error(PFGM_ERR_CONFIG, "%s: %s is %lld in the checkpoint but %lld in this run's config (the model's shape would change)", \
                          path, key, (long long)(x), (long long)(y));
    SHAPE_INT("data.image_size", da->image_size, db->image_size);
    SHAPE_INT("data.channels", da->channels, db->channels);
    SHAPE_INT("model.nf", a->nf, b->nf);
    SHAPE_INT("model.num_res_blocks", a->num_res_blocks, b->num_res_blocks);
    SHAPE_INT("model.embedding_type", (int64_t)a->embedding_type, (int64_t)b->embedding_type);
#undef SHAPE_INT
    const struct { const char *key; const pfgm_int_list *x, *y; } lists[] = {
        {"model.ch_mult", &a->ch_mult, &b->ch_mult}, {"model.attn_resolutions", &a->attn_resolutions, &b->attn_resolutions}};
    for (size_t k = 0; k < 2; ++k) {
        const pfgm_int_list *x = lists[k].x, *y = lists[k].y;
        int same = x->n == y->n;
        for (size_t i = 0; same && i < x->n; ++i) same = x->v[i] == y->v[i];
        if (same) continue;
        size_t o = 0, n = 0;
        for (size_t i = 0; i < x->n; ++i) o += (size_t)snprintf(oldv + o, sizeof oldv - o, "%s%lld", i ? "," : "", (long long)x->v[i]);
        for (size_t i = 0; i < y->n; ++i) n += (size_t)snprintf(newv + n, sizeof newv - n, "%s%lld", i ? "," : "", (long long)y->v[i]);
        return pfgm_error(PFGM_ERR_CONFIG, "%s: %s is [%s] in the checkpoint but [%s] in this run's config (the model's shape would change)",
                          path, lists[k].key, oldv, newv);
    }
    return PFGM_OK;
}

/* Rank 0: chooses and opens the checkpoint (or none) under the resume policy:
 *   never  a fresh start; refused when the run directory holds checkpoints;
 *   auto   the newest usable checkpoint (damaged newer ones moved to checkpoints/damaged/);
 *          a run directory with checkpoints of which none is usable is an error: a fresh
 *          start there would throw the run away;
 *   fresh  auto, except that when no checkpoint is usable they are all moved to
 *          checkpoints/damaged/ and the run starts from step 0 (refused while a usable one
 *          exists);
 *   PATH   that file, opened and verified. */
static pfgm_status choose(const trainer *t, pfgm_ckpt **ck) {
    const char *mode = t->opt->resume ? t->opt->resume : "auto";
    const char *run = t->opt->run_dir;
    *ck = NULL;
    if (strcmp(mode, "never") == 0) {
        int64_t *steps = NULL;
        size_t n = 0;
        PFGM_TRY(pfgm_ckpt_list(run, &steps, &n));
        free(steps);
        if (n > 0)
            return pfgm_error(PFGM_ERR_CONFIG, "%s: holds %zu checkpoint(s) and --resume never was given (use another --run-dir, or --resume auto)",
                              run, n);
        return PFGM_OK;
    }
    if (strcmp(mode, "auto") == 0 || strcmp(mode, "fresh") == 0) {
        pfgm_ckpt_scan scan;
        /* fresh changes nothing unless it starts over: no damaged file is moved before that */
        PFGM_TRY(pfgm_ckpt_open_latest(run, strcmp(mode, "auto") == 0, t->lg, ck, &scan));
        if (*ck && strcmp(mode, "fresh") == 0) {
            char found[4096];
            snprintf(found, sizeof found, "%s", pfgm_ckpt_file(*ck));
            pfgm_ckpt_close(*ck);
            *ck = NULL;
            return pfgm_error(PFGM_ERR_CONFIG, "%s: --resume fresh starts over only when no checkpoint is usable, and %s is (resume with --resume auto, or use another --run-dir)",
                              run, found);
        }
        if (*ck || scan.damaged == 0) return PFGM_OK;
        if (strcmp(mode, "fresh") == 0) {
            size_t moved = 0;
            PFGM_TRY(pfgm_ckpt_move_all_damaged(run, t->lg, &moved));
            pfgm_log_warn(t->lg, "--resume fresh: none of the %zu checkpoints was usable; moved %zu to %s/checkpoints/damaged/ and starting from step 0",
                          scan.found, moved, run);
            return PFGM_OK;
        }
        return pfgm_error(PFGM_ERR_FORMAT, "%s: holds %zu checkpoint(s) and none is usable (newest problem: %s); nothing was changed. Inspect them, or pass --resume fresh to move them to checkpoints/damaged/ and start over from step 0",
                          run, scan.damaged, scan.newest_problem);
    }
    PFGM_TRY(pfgm_ckpt_open(mode, ck));
    pfgm_status st = pfgm_ckpt_verify(*ck);
    if (st != PFGM_OK) {
        pfgm_ckpt_close(*ck);
        *ck = NULL;
    }
    return st;
}

/* What the data position depends on: (world size, per-rank batch, images in the file). The
 * position of a checkpoint is exact for a run with the same three; otherwise it is mapped by
 * the number of images the whole job consumed in the interrupted epoch
 * (pfgm_dataset_position_map), and only when the user allows it with --allow-reshard. A version-1 checkpoint records neither L nor the file's
 * size: L comes from its config, the size is taken as unchanged. */
static pfgm_status map_position(const trainer *t, const pfgm_ckpt *ck, pfgm_dataset_position *pos) {
    const pfgm_ckpt_meta *m = pfgm_ckpt_meta_of(ck);
    const char *path = pfgm_ckpt_file(ck);
    const int64_t W0 = m->world_size, L0 = m->batch_size > 0 ? m->batch_size : pfgm_ckpt_config(ck)->training.batch_size;
    const int64_t C1 = pfgm_dataset_count(t->data), C0 = m->dataset_count > 0 ? m->dataset_count : C1;
    const int64_t W1 = t->comm->world_size, L1 = t->L, spe1 = pfgm_dataset_steps_per_epoch(t->data);
    /* The reader's block rows and shuffle window shape the order inside an epoch as well;
     * the saved values are those of the checkpoint's config (defaults for an older one). */
    const pfgm_config_data *d0 = &pfgm_ckpt_config(ck)->data, *d1 = &t->cfg->data;
    pos->epoch = m->epoch;
    pos->index = m->epoch_index;
    if (d0->block_images != d1->block_images || d0->shuffle_window != d1->shuffle_window) {
        if (!t->opt->allow_reshard)
            return pfgm_error(PFGM_ERR_CONFIG, "%s: the data position was saved with data.block_images %lld and data.shuffle_window %lld; this run has %lld and %lld, which reorder the interrupted epoch (pass --allow-reshard to keep the position anyway)",
                              path, (long long)d0->block_images, (long long)d0->shuffle_window,
                              (long long)d1->block_images, (long long)d1->shuffle_window);
        pfgm_log_info(t->lg, "data.block_images %lld -> %lld, data.shuffle_window %lld -> %lld: within epoch %lld a few images may be seen twice or not at all",
                      (long long)d0->block_images, (long long)d1->block_images, (long long)d0->shuffle_window,
                      (long long)d1->shuffle_window, (long long)pos->epoch);
    }
    if (W0 == W1 && L0 == L1 && C0 == C1) {
        if (pos->index >= spe1)
            return pfgm_error(PFGM_ERR_FORMAT, "%s: data position (epoch %lld, index %lld) is outside this run's epoch of %lld batches",
                              path, (long long)pos->epoch, (long long)pos->index, (long long)spe1);
        return PFGM_OK;
    }
    if (!t->opt->allow_reshard)
        return pfgm_error(PFGM_ERR_CONFIG, "%s: the data position was saved with world size %lld, training.batch_size %lld and %lld images; this run has world size %lld, training.batch_size %lld and %lld images (pass --allow-reshard to map the position by the number of images consumed)",
                          path, (long long)W0, (long long)L0, (long long)C0, (long long)W1, (long long)L1, (long long)C1);
    pfgm_dataset_position np = pfgm_dataset_position_map(*pos, W0 * L0, W1 * L1, spe1);
    pfgm_log_info(t->lg, "re-sharded the data position of %s: world size %lld -> %lld, batch %lld -> %lld, %lld -> %lld images: epoch %lld batch %lld (%lld images consumed) -> epoch %lld batch %lld",
                  path, (long long)W0, (long long)W1, (long long)L0, (long long)L1, (long long)C0, (long long)C1,
                  (long long)pos->epoch, (long long)pos->index, (long long)(pos->index * W0 * L0), (long long)np.epoch,
                  (long long)np.index);
    *pos = np;
    return PFGM_OK;
}

/* Rank 0: checks the open checkpoint fits this run and reads it into host staging. */
static pfgm_status load_rank0(trainer *t, pfgm_ckpt *ck, int64_t ints[5]) {
    const pfgm_ckpt_meta *meta = pfgm_ckpt_meta_of(ck);
    const char *path = pfgm_ckpt_file(ck);
    pfgm_status st = check_shape(t, path, pfgm_ckpt_config(ck));
    if (st == PFGM_OK && meta->seed != t->cfg->seed)
        st = pfgm_error(PFGM_ERR_CONFIG, "%s: seed is %lld in the checkpoint but %lld in this run's config (resume would not continue the same run)",
                        path, (long long)meta->seed, (long long)t->cfg->seed);
    pfgm_dataset_position pos = {0, 0};
    if (st == PFGM_OK) st = map_position(t, ck, &pos);
    sections s;
    if (st == PFGM_OK) st = sections_make(t, &s);
    if (st == PFGM_OK) {
        memset(t->h_params, 0, sizeof(float) * (size_t)t->params->floats);
        memset(t->h_ema, 0, sizeof(float) * (size_t)t->params->floats);
        memset(t->h_m, 0, sizeof(float) * (size_t)t->params->floats);
        memset(t->h_v, 0, sizeof(float) * (size_t)t->params->floats);
        st = pfgm_ckpt_read(ck, "params", s.params, s.n_all);
        if (st == PFGM_OK) st = pfgm_ckpt_read(ck, "ema", s.ema, s.n_all);
        if (st == PFGM_OK) st = pfgm_ckpt_read(ck, "adam/m", s.m, s.n_trainable);
        if (st == PFGM_OK) st = pfgm_ckpt_read(ck, "adam/v", s.v, s.n_trainable);
        sections_free(&s);
    }
    ints[0] = meta->step;
    ints[1] = pos.epoch;
    ints[2] = pos.index;
    ints[3] = meta->ema_updates;
    ints[4] = meta->world_size;
    return st;
}

pfgm_status pfgm_train_resume(trainer *t) {
    pfgm_comm *c = t->comm;
    char path[4096] = "";
    /* ints: step, epoch, index (mapped to this run), ema_updates, old world size, status of rank 0 */
    int64_t ints[6] = {-1, 0, 0, 0, 0, PFGM_OK};
    if (c->rank == 0) {
        pfgm_ckpt *ck = NULL;
        pfgm_status st = choose(t, &ck);
        if (st == PFGM_OK && ck) {
            snprintf(path, sizeof path, "%s", pfgm_ckpt_file(ck));
            st = load_rank0(t, ck, ints);
            /* checkpoints newer than the one resumed from belong to another trajectory */
            size_t moved = 0;
            if (st == PFGM_OK) st = pfgm_ckpt_move_newer(t->opt->run_dir, ints[0], t->lg, &moved);
        }
        pfgm_ckpt_close(ck);
        ints[5] = st;
        if (st != PFGM_OK || !ck) ints[0] = -1;
    }
    /* Every rank learns rank 0's verdict, so a bad checkpoint stops all ranks cleanly. */
    PFGM_TRY(c->broadcast(c, ints, 6, PFGM_I64, 0));
    if (ints[5] != PFGM_OK) {
        if (c->rank == 0) return (pfgm_status)ints[5];
        return pfgm_error((pfgm_status)ints[5], "rank 0 could not resume (see its message)");
    }
    if (ints[0] < 0) return PFGM_OK; /* fresh start */
    size_t n = (size_t)t->params->floats;
    PFGM_TRY(c->broadcast(c, t->h_params, n, PFGM_F32, 0));
    PFGM_TRY(c->broadcast(c, t->h_ema, n, PFGM_F32, 0));
    PFGM_TRY(c->broadcast(c, t->h_m, n, PFGM_F32, 0));
    PFGM_TRY(c->broadcast(c, t->h_v, n, PFGM_F32, 0));
    PFGM_TRY(pfgm_backend_upload(t->be, t->params->value, t->h_params, t->params->floats));
    PFGM_TRY(pfgm_optim_import(t->optim, t->h_m, t->h_v, t->h_ema, ints[3]));
    pfgm_dataset_position pos = {.epoch = ints[1], .index = ints[2]};
    PFGM_TRY(pfgm_dataset_set_position(t->data, &pos));
    t->step = ints[0];
    t->resumed_from = ints[0];
    if (c->rank == 0) pfgm_log_info(t->lg, "resumed from %s at step %lld", path, (long long)t->step);
    return PFGM_OK;
}
