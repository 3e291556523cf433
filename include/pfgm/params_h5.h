/* Parameter files of the network: one HDF5 dataset /<group>/<name> per tensor of a parameter
 * table (pfgm/nn.h), under the authors' state_dict names, so that the authors' released
 * weights (converted by launch/pth_to_h5.py; the layout of testvectors/
 * ddpmpp_tiny_reference.h5) load into the C network, and the C network's weights load into
 * theirs. These are io's: the network layer knows no file format (docs/architecture.md
 * "Layers"; docs/model.md "Parameter files").
 *
 * Every message is one line that names the file, and the dataset where there is one; HDF5's
 * own reason is appended to PFGM_ERR_HDF5 messages. */
#ifndef PFGM_PARAMS_H5_H
#define PFGM_PARAMS_H5_H

#include "pfgm/ddpmpp.h"
#include "pfgm/nn.h"
#include "pfgm/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Reads <group>/<name> for every parameter of t into dst, a backend buffer of t->floats floats
 * laid out as the table (padding left zero). float32 and float64 datasets are accepted
 * (converted to float32). The group must hold exactly the table's names, each shaped as
 * pfgm_nn_param.shape. Errors: PFGM_ERR_INVALID_ARG (no buffers), PFGM_ERR_IO (missing or
 * unreadable file), PFGM_ERR_FORMAT (not HDF5, no such group, a missing, extra or mis-shaped
 * dataset, a non-float type), PFGM_ERR_HDF5, PFGM_ERR_NOMEM. */
pfgm_status pfgm_nn_params_read_h5(const pfgm_nn_params *t, const char *path, const char *group, float *dst);
/* Writes a new file `path` (a temporary name, fsynced and renamed: a failure leaves nothing):
 * float32 datasets <group>/<name> from src (backend buffer of t->floats), root attributes
 * format = "pfgm-params", param_order (names in registration order) and param_count.
 * Errors: PFGM_ERR_INVALID_ARG (no buffers), PFGM_ERR_IO, PFGM_ERR_HDF5, PFGM_ERR_NOMEM. */
pfgm_status pfgm_nn_params_write_h5(const pfgm_nn_params *t, const char *path, const char *group, const float *src);
/* read_h5/write_h5 on the value buffer. */
pfgm_status pfgm_nn_params_load_h5(pfgm_nn_params *t, const char *path, const char *group);
pfgm_status pfgm_nn_params_save_h5(const pfgm_nn_params *t, const char *path, const char *group);

/* The model's parameters from `path`, group `group` (normally "params"; "ema" for the EMA of a
 * converted checkpoint): pfgm_nn_params_load_h5 on pfgm_ddpmpp_params(m). */
pfgm_status pfgm_ddpmpp_load_h5(pfgm_ddpmpp *m, const char *path, const char *group);
/* Writes the model's parameters to a new file in that layout (pfgm_nn_params_save_h5). */
pfgm_status pfgm_ddpmpp_save_h5(pfgm_ddpmpp *m, const char *path, const char *group);

#ifdef __cplusplus
}
#endif
#endif /* PFGM_PARAMS_H5_H */
