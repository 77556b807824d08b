/*
 * qspare.h - recycled queue files: a bounded pool of delivered messages'
 * files in state_dir/incoming that new messages are written into instead
 * of freshly created files.
 *
 * Why: creating and deleting one inode per message is the most expensive
 * thing the queue role does on a busy ext4 without a journal (the inode
 * allocator scans past every inode freed in the last seconds, see
 * bench/README), and freeing and allocating its data blocks comes next.
 * A delivered message's file is renamed into incoming/ as "spare.N"; one
 * of at most QSPARE_KEEP_MAX bytes keeps its content, a larger one is
 * truncated to zero.  The next OPEN renames a spare to the new queue id,
 * its writer (the SMTP role) writes from offset 0 and says at COMMIT how
 * much it wrote, and the queue role cuts the file to that length before
 * the sync (queue-client.h), so nothing of the old message outlives the
 * new one's commit.  Until then a spare holds a
 * delivered message, in the daemon's own 0700 state directory, like the
 * freed blocks of any deleted file; the SMTP role's descriptor for the
 * file is write-only, so it never reads what the file held.  Spares are never acknowledged mail:
 * like everything in incoming/ they are removed at start-up and at a
 * clean stop, and a file in incoming/ counts as a message only when its
 * header names it (qfile_names_itself).
 *
 * A spare is handed out only once a sync of queue/ that started after its
 * rename has finished (qspare_sync_start/done around the commit's fsync
 * of queue/): its old name cannot come back after a power loss and show
 * the new message's data under the delivered message's name.  Oldest
 * spares go first.  A pool nobody took from for a while is emptied
 * (qspare_idle, then qspare_clear): on a quiet server delivered mail does
 * not wait in spares.
 *
 * Thread-safe: the delivery workers put, the event loop takes.
 */
#ifndef MSAGATE_QSPARE_H
#define MSAGATE_QSPARE_H

#include <stdbool.h>
#include <stddef.h>

#define QSPARE_PREFIX "spare."
#define QSPARE_MAX    256      /* files kept at most */
#define QSPARE_KEEP_MAX (64 * 1024)  /* larger files are emptied when put */

struct qspare;

/* A pool for the directory in_dfd (incoming/), at most `max` files. */
struct qspare *qspare_new(int in_dfd, size_t max);
void qspare_free(struct qspare *sp);

/*
 * qspare_put - recycle the file `name` in directory dfd, `size` bytes
 * long (-1: unknown): rename it into incoming/ as a spare, truncated
 * when larger than QSPARE_KEEP_MAX or of unknown size.  Returns 0 when it
 * was taken, 1 when the pool is full (nothing done: the caller unlinks as
 * before), -1 with errno when the rename failed (ENOENT: the name is
 * gone).  A file that cannot be truncated is unlinked, not kept.
 */
int qspare_put(struct qspare *sp, int dfd, const char *name, long long size);

/*
 * qspare_take - rename the oldest spare to incoming/`name` (which must not
 * exist).  Returns 0, or -1 if the pool has no spare that may be used yet
 * (ENOENT) or the rename failed (errno; EEXIST: `name` exists, the spare
 * stays in the pool).
 */
int qspare_take(struct qspare *sp, const char *name);

/* Around each fsync of queue/: started before it, done after a success. */
void qspare_sync_start(struct qspare *sp);
void qspare_sync_done(struct qspare *sp);

/*
 * true if the pool holds spares and none was taken since the previous
 * call (call it every QSPARE_IDLE_SECS; then qspare_clear).
 */
bool qspare_idle(struct qspare *sp);
#ifndef QSPARE_IDLE_SECS
#define QSPARE_IDLE_SECS 60
#endif

/* Unlink every spare in the pool (a clean stop, an idle pool). */
void qspare_clear(struct qspare *sp);

/* Number of spares in the pool now. */
size_t qspare_count(struct qspare *sp);

/* true if a name in incoming/ is a spare's. */
bool qspare_is_spare(const char *name);

#endif
