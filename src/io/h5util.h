/* Private HDF5 helpers for the io/ files: silencing the HDF5 error printer while probing
 * files, turning the HDF5 error stack into one line (pfgm_h5_strerror, declared in
 * util/check.h for PFGM_H5_CHECK) and naming the file in front of it, and scalar attribute
 * access (string and integer attributes, fixed- or variable-length strings). */
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

/* The process-wide HDF5 lock. HDF5 is thread-safe only when built with its thread-safety
 * option (off by default; the Debian 1.10.8 of the development machine has it on,
 * H5is_library_threadsafe = 1, other builds and sites may not), and the dataset reader's
 * prefetch thread (dataset_stream.c) reads while the trainer may write a checkpoint. So
 * every HDF5 call of the io/ files runs between pfgm_h5_quiet_begin and
 * pfgm_h5_quiet_end (which take and release this lock) or between pfgm_h5_lock and
 * pfgm_h5_unlock: no two threads are in the library at once with any build. Recursive: a
 * holder may take it again. The one process-wide mutable object of the library, because
 * the library it guards is process-wide. */
void pfgm_h5_lock(void);
void pfgm_h5_unlock(void);

/* Takes the HDF5 lock and turns the HDF5 error printer off (errors become pfgm messages):
 * until pfgm_h5_quiet_end, each HDF5 failure is recorded silently instead, for
 * pfgm_h5_context. */
void pfgm_h5_quiet_begin(pfgm_h5_quiet *q);
/* Restores the printer saved by pfgm_h5_quiet_begin and releases the HDF5 lock. */
void pfgm_h5_quiet_end(const pfgm_h5_quiet *q);

/* Puts "<path>: " in front of the thread's message unless it already starts with the path.
 * A PFGM_ERR_HDF5 message that lacks what HDF5 reported (one recorded without PFGM_H5_CHECK,
 * which reads the error stack itself) gets ": <outermost>: <innermost description>"
 * appended, e.g. "x.h5: H5Fopen failed: unable to open file: truncated file: eof = 2048,
 * ...", from the error stack or, when later HDF5 calls have cleared it, from the last
 * failure recorded since pfgm_h5_quiet_begin. Messages stay one line and carry no source
 * location. Returns st. */
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
