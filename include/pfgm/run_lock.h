/* Run-directory lock: one pfgm-train per run directory. Two trainers sharing a run directory
 * would each treat the other's checkpoint temporaries as debris of a crash and delete them,
 * and interleave their metrics lines; the second one to start is refused instead.
 *
 * Mechanism: flock(LOCK_EX | LOCK_NB) on "<run_dir>/.pfgm-train.lock", held on an open file
 * descriptor until pfgm_run_lock_release or the end of the process.
 *  - The kernel drops the lock when the holder dies, however it dies (kill -9, OOM killer,
 *    node reboot for a local disk), so there is never a stale lock to clean up. The file
 *    itself stays after release: its contents ("host H pid P since T") name the last
 *    holder and are informative only; whether the lock is held is the flock alone.
 *  - flock works on local file systems (ext4, xfs, btrfs, tmpfs). On NFS it depends on the
 *    client: Linux (since 2.6.12) emulates flock with POSIX byte-range locks sent to the
 *    server (NLM for NFSv3, the protocol's own locks for NFSv4), so it works across hosts
 *    when the lock service runs and fails with ENOLCK when it is unreachable; a mount with
 *    -o nolock (or local_lock=flock) keeps locks on the client host, so they only stop a
 *    second trainer on the same host. On Lustre it works across nodes only with the `flock`
 *    mount option (`localflock` makes it node-local; without either it fails with ENOSYS).
 *    Where flock fails like this (ENOLCK, EOPNOTSUPP, ENOSYS) the run is NOT refused:
 *    acquire succeeds without the lock and pfgm_run_lock_held says 0, so the trainer can
 *    warn.
 *  - The descriptor is opened O_CLOEXEC, so programs the trainer execs do not hold the
 *    lock. A child made by fork() without exec shares the open file description and keeps
 *    the lock alive until it exits as well.
 *  - In an MPI job only rank 0 takes the lock (the other ranks belong to the same job);
 *    rank 0 must share the outcome with its peers before any of them returns an error, so
 *    that no rank waits alone in a collective. */
#ifndef PFGM_RUN_LOCK_H
#define PFGM_RUN_LOCK_H

#include "pfgm/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Name of the lock file inside the run directory. */
#define PFGM_RUN_LOCK_FILE ".pfgm-train.lock"

typedef struct pfgm_run_lock pfgm_run_lock;

/* Takes the lock of `run_dir`, which must exist (the trainer creates it first). On success
 * *out is a handle to release, the lock file holds "host <hostname> pid <pid> since
 * <YYYY-MM-DDTHH:MM:SSZ>\n", and pfgm_run_lock_held(*out) is 1 (or 0 where the file system
 * has no flock; see above). Errors, with *out = NULL:
 *   PFGM_ERR_IO   another process holds the lock (exit code 3, not retried by
 *                 launch/train_until_done.sh): "<run_dir>: another pfgm-train is training in
 *                 this run directory (host H, pid P since T); wait for it or use another
 *                 --run-dir"; or the directory is missing or the lock file cannot be
 *                 created/written (the message names the path and the cause)
 *   PFGM_ERR_INVALID_ARG  run_dir or out is NULL, or run_dir is empty
 *   PFGM_ERR_NOMEM */
pfgm_status pfgm_run_lock_acquire(const char *run_dir, pfgm_run_lock **out);

/* 1 when the handle holds the flock, 0 when the file system does not support flock and the
 * run goes on unprotected (or l is NULL). */
int pfgm_run_lock_held(const pfgm_run_lock *l);

/* One line for a warning when the lock is not held: "<path>: cannot lock (<strerror>):
 * this file system does not support flock; nothing stops a second pfgm-train on this run
 * directory". "" when the lock is held or l is NULL. Valid until release. */
const char *pfgm_run_lock_note(const pfgm_run_lock *l);

/* The lock file's path ("<run_dir>/.pfgm-train.lock"); "" for NULL. Valid until release. */
const char *pfgm_run_lock_path(const pfgm_run_lock *l);

/* Releases the lock (closes the descriptor) and frees the handle. The lock file stays.
 * NULL is a no-op. */
void pfgm_run_lock_release(pfgm_run_lock *l);

#ifdef __cplusplus
}
#endif
#endif /* PFGM_RUN_LOCK_H */
