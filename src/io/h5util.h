/* Private HDF5 helpers for the io/ files: silencing the HDF5 error printer while probing
 * files, turning the HDF5 error stack into one line, and scalar attribute access (string
 * and integer attributes, fixed- or variable-length strings). */
#ifndef PFGM_IO_H5UTIL_H
#define PFGM_IO_H5UTIL_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

#include "pfgm/status.h"

/* The HDF5 automatic error printer, saved so it can be put back. */
typedef struct pfgm_h5_quiet {
    H5E_auto2_t func;
    void *data;
} pfgm_h5_quiet;

/* Turns the HDF5 error printer off for the calling thread (errors become pfgm messages). */
void pfgm_h5_quiet_begin(pfgm_h5_quiet *q);
/* Restores the printer saved by pfgm_h5_quiet_begin. */
void pfgm_h5_quiet_end(const pfgm_h5_quiet *q);

/* When st is PFGM_ERR_HDF5, rewrites the thread's message as
 * "<path>: <innermost HDF5 error description> (<original message>)". Must run before the
 * next HDF5 call (which clears the HDF5 error stack). Other statuses get "<path>: " only
 * when the message does not already start with the path. Returns st. */
pfgm_status pfgm_h5_context(pfgm_status st, const char *path);

/* Reads the scalar string attribute `name` of object `obj` into buf (NUL-terminated,
 * truncated to cap - 1 bytes). Fixed- and variable-length strings are both accepted.
 * Returns PFGM_OK, or PFGM_ERR_FORMAT when the attribute is missing or not a string
 * (message: "<path>: attribute '<name>' missing" / "... is not a string"). */
pfgm_status pfgm_h5_read_str_attr(hid_t obj, const char *path, const char *name, char *buf,
                                  size_t cap);

/* Reads the scalar integer attribute `name` (any integer type) as int64. Errors as above. */
pfgm_status pfgm_h5_read_int_attr(hid_t obj, const char *path, const char *name, int64_t *v);

/* Writes a scalar fixed-length string / int64 attribute. Errors: PFGM_ERR_HDF5. */
pfgm_status pfgm_h5_write_str_attr(hid_t obj, const char *name, const char *value);
pfgm_status pfgm_h5_write_int_attr(hid_t obj, const char *name, int64_t value);

#endif /* PFGM_IO_H5UTIL_H */
