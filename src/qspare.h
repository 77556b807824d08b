/*
 * qspare.h - recycled queue files: a bounded pool of empty files in
 * state_dir/incoming that new messages are written into instead of
 * freshly created files.
 *
 * Why: creating and deleting one inode per message is the most expensive
 * thing the queue role does on a busy ext4 without a journal (the inode
 * allocator scans past every inode freed in the last seconds, see
 * bench/README).  A delivered message's file is renamed into incoming/
 * as "spare.N" and truncated to zero, and the next OPEN renames it to the
 * new queue id.  Spares are never acknowledged mail: like everything in
 * incoming/ they are removed at start-up, and a crash at any point leaves
 * at worst an extra empty file.
 *
 * Thread-safe: the delivery workers put, the event loop takes.
 */
#ifndef MSAGATE_QSPARE_H
#define MSAGATE_QSPARE_H

#include <stdbool.h>
#include <stddef.h>

#define QSPARE_PREFIX "spare."
#define QSPARE_MAX    256      /* files kept at most */

struct qspare;

/* A pool for the directory in_dfd (incoming/), at most `max` files. */
struct qspare *qspare_new(int in_dfd, size_t max);
void qspare_free(struct qspare *sp);

/*
 * qspare_put - recycle the file `name` in directory dfd: rename it into
 * incoming/ as a spare and truncate it.  Returns 0 when it was taken,
 * 1 when the pool is full (nothing done: the caller unlinks as before),
 * -1 with errno when the rename failed (ENOENT: the name is gone).  A file
 * that cannot be truncated is unlinked, not kept.
 */
int qspare_put(struct qspare *sp, int dfd, const char *name);

/*
 * qspare_take - rename a spare to incoming/`name` (which must not exist).
 * Returns 0, or -1 if the pool is empty or the rename failed (errno;
 * EEXIST: `name` exists, the spare stays in the pool).
 */
int qspare_take(struct qspare *sp, const char *name);

/* Unlink every spare in the pool (a clean stop). */
void qspare_clear(struct qspare *sp);

/* Number of spares in the pool now. */
size_t qspare_count(struct qspare *sp);

/* true if a name in incoming/ is a spare's. */
bool qspare_is_spare(const char *name);

#endif
