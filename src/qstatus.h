/*
 * qstatus.h - per-recipient delivery state of one queued message:
 * state_dir/status/ID, an append-only text file next to queue/ID.
 *
 * One line per event, fields separated by TAB, values printable ASCII
 * without TAB (delivery_printable()):
 *   S <idx> <final> <time> <dsn> <detail>   delivered to final address
 *   B <idx> <final> <time> <dsn> <detail>   failed permanently (bounced)
 *   D <idx> <final> <time> <dsn> <detail>   deferred (last error)
 *   C <idx>                                  envelope recipient idx finished
 *   W <time> <dsn-id>                        delay warning sent (queue id)
 * idx is the position of the envelope recipient in the queue file; final
 * is the address after alias expansion.  S, B and C lines are fsynced
 * before anything depends on them, so a delivered recipient is never
 * delivered again after a crash; D lines are informational.  A torn last
 * line (crash while appending) is ignored by the reader, and the writer
 * starts a fresh line after it.
 *
 * Used by the queue manager (writes and reads) and msagatectl (reads).
 */
#ifndef MSAGATE_QSTATUS_H
#define MSAGATE_QSTATUS_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define QSTATUS_DIR       "status"
#define QSTATUS_MAX_BYTES (16 * 1024 * 1024)  /* read at most this much */

struct qstatus_entry {
	char kind;                   /* 'S', 'B', 'D', 'C' */
	size_t idx;
	char *final;                 /* NULL for 'C' */
	time_t when;
	char *dsn;
	char *detail;
};

struct qstatus {
	struct qstatus_entry *e;     /* S, B, D and C lines */
	size_t n, cap;
	bool warned;                 /* a W line: the delay warning went out */
};

/* Read status/ID (dfd = the status directory).  A missing file is an
 * empty status.  0, or -1 with errno. */
int qstatus_load(int dfd, const char *id, struct qstatus *st);
/* Parse the text of a status file (exported for the unit tests). */
void qstatus_parse(struct qstatus *st, const char *text, size_t len);
void qstatus_free(struct qstatus *st);

/* Recipient idx has a 'C' line. */
bool qstatus_rcpt_complete(const struct qstatus *st, size_t idx);
/* final address of recipient idx has an 'S' or 'B' line. */
bool qstatus_final_done(const struct qstatus *st, size_t idx, const char *final);
/* The last S/B/D entry of recipient idx, or NULL. */
const struct qstatus_entry *qstatus_last(const struct qstatus *st, size_t idx);

/* Open status/ID for appending (created 0600); -1 with errno. */
int qstatus_open(int dfd, const char *id);
/*
 * Append one event to fd (and to st when not NULL).  final/dsn/detail may
 * be NULL for 'C'.  Not synced: call fdatasync() before relying on it.
 * 0, or -1 with errno.
 */
int qstatus_append(int fd, struct qstatus *st, char kind, size_t idx,
    const char *final, const char *dsn, const char *detail);
/*
 * The same event, but kept in memory: its line is added to out (to be
 * written later) and to st when not NULL.  0 (cannot fail).
 */
struct sbuf;
int qstatus_append_mem(struct sbuf *out, struct qstatus *st, char kind,
    size_t idx, const char *final, const char *dsn, const char *detail);
/*
 * Append the W line (delay warning dsn_id queued) to fd and set
 * st->warned when st is not NULL.  Not synced.  0, or -1 with errno.
 */
int qstatus_append_warned(int fd, struct qstatus *st, const char *dsn_id);

#endif
