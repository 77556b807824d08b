/*
 * queue-client.h - the SMTP role's side of the queue role's UNIX socket.
 *
 * Protocol (SOCK_SEQPACKET, one request per packet, text):
 *   "OPEN"        -> "OK <qid>" with an O_WRONLY fd of state_dir/incoming/<qid>
 *                    passed by SCM_RIGHTS, or "ERR <text>".  The file may be
 *                    a recycled one still holding a delivered message
 *                    (qspare.h): the client writes from offset 0.
 *   "COMMIT <qid> <length>"
 *                 -> "OK <qid>" once the file is cut to the length the
 *                    client wrote (a recycled file may be longer; a
 *                    shorter one is refused), fsynced, renamed into queue/
 *                    and the directory fsynced; or "ERR <text>"
 *   "ABORT <qid>" -> no reply; the incoming file is removed
 * The queue role batches COMMITs that arrive together (group commit).
 * The client keeps a few files opened ahead (spares, not written until
 * used) so that DATA can be answered at once; they go with the connection.
 */
#ifndef MSAGATE_QUEUE_CLIENT_H
#define MSAGATE_QUEUE_CLIENT_H

struct event_base;
struct queuec;
struct queuec_req;

/* fd >= 0 and qid on success; fd == -1 and err on failure. */
typedef void queuec_open_cb(void *ctx, int fd, const char *qid, const char *err);
/* ok != 0 on success; err otherwise. */
typedef void queuec_commit_cb(void *ctx, int ok, const char *err);

struct queuec *queuec_new(struct event_base *base, const char *socket_path);
void queuec_free(struct queuec *q);

/* Callbacks never run from inside these calls.  Returns a handle. */
struct queuec_req *queuec_open(struct queuec *q, queuec_open_cb *cb, void *ctx);
struct queuec_req *queuec_commit(struct queuec *q, const char *qid,
                                 long long len, queuec_commit_cb *cb, void *ctx);
void queuec_abort(struct queuec *q, const char *qid);
/* The caller no longer wants the answer (session gone). */
void queuec_req_cancel(struct queuec_req *r);
/* Files opened ahead and not handed out yet (tests, logs). */
unsigned queuec_spare_count(const struct queuec *q);

#endif
