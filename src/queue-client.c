/*
 * queue-client.c - the SMTP role's client of the queue role (protocol in
 * queue-client.h), on libevent.
 *
 * One SOCK_SEQPACKET connection, made on first need and again after the
 * queue role restarted.  A few files are kept opened ahead (QC_SPARES):
 * queuec_open() answers from them without a round trip, which takes the
 * queue role's loop out of the wait for DATA's 354.  Requests are queued
 * as packets and answered in order, so the replies are matched first-in
 * first-out.  Every callback
 * runs from a deferred event, never from inside queuec_open/commit/abort.
 * When the connection breaks, every request still waiting completes with
 * "queue unavailable" (the queue role removes the files it had handed
 * out on that connection).
 */
#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "qfile.h"
#include "queue-client.h"
#include "util.h"

#define QC_PKT_MAX 256
#define QC_UNAVAILABLE "queue unavailable"
#define QC_SPARES  8                 /* files opened ahead of DATA */

enum qc_kind { QC_OPEN, QC_COMMIT, QC_SPARE };

struct queuec_req {
	TAILQ_ENTRY(queuec_req) link;
	struct queuec *q;
	enum qc_kind kind;
	queuec_open_cb *open_cb;
	queuec_commit_cb *commit_cb;
	void *ctx;
	bool cancelled;
	char qid[QID_LEN + 1];       /* COMMIT: sent; OPEN: received */
	/* result */
	int fd;
	bool ok;
	char err[160];
};
TAILQ_HEAD(qc_req_list, queuec_req);

struct qc_pkt {
	TAILQ_ENTRY(qc_pkt) link;
	size_t len;
	char buf[64];                /* "COMMIT <qid> <length>" at most */
};

struct queuec {
	struct event_base *base;
	char *path;
	int fd;
	struct event *rev, *wev, *defer;
	struct qc_req_list waiting;  /* sent or queued, reply expected */
	struct qc_req_list done;     /* callbacks to run */
	TAILQ_HEAD(, qc_pkt) outq;
	/* files opened ahead, so that DATA is answered without a round trip */
	struct { int fd; char qid[QID_LEN + 1]; } spare[QC_SPARES];
	unsigned n_spare, n_spare_asked;
	bool spare_failed;           /* no more asking ahead until an OPEN works */
	bool dispatching, freed;
	bool warned;                 /* "unavailable" logged since last success */
};

static void qc_read_cb(evutil_socket_t, short, void *);
static void qc_refill(struct queuec *q);
static void qc_write_cb(evutil_socket_t, short, void *);

static void
qc_complete(struct queuec *q, struct queuec_req *r)
{
	if (r->kind == QC_SPARE) {
		/* failed on its way (the connection goes too): nobody to tell */
		if (r->fd >= 0)
			close(r->fd);
		free(r);
		return;
	}
	TAILQ_INSERT_TAIL(&q->done, r, link);
	event_active(q->defer, EV_TIMEOUT, 0);
}

static void
qc_fail(struct queuec *q, struct queuec_req *r, const char *err)
{
	r->ok = false;
	r->fd = -1;
	snprintf(r->err, sizeof(r->err), "%s", err);
	qc_complete(q, r);
}

/* The connection is gone: every waiting request fails. */
static void
qc_disconnect(struct queuec *q, const char *why)
{
	struct queuec_req *r;
	struct qc_pkt *p;

	if (q->fd < 0)
		return;
	if (why != NULL)
		log_warnx("queue connection lost: %s", why);
	event_free(q->rev);
	event_free(q->wev);
	q->rev = q->wev = NULL;
	close(q->fd);
	q->fd = -1;
	/* the queue role removes a lost connection's files, spares too */
	while (q->n_spare > 0)
		close(q->spare[--q->n_spare].fd);
	q->n_spare_asked = 0;
	q->spare_failed = false;
	while ((p = TAILQ_FIRST(&q->outq)) != NULL) {
		TAILQ_REMOVE(&q->outq, p, link);
		free(p);
	}
	while ((r = TAILQ_FIRST(&q->waiting)) != NULL) {
		TAILQ_REMOVE(&q->waiting, r, link);
		if (r->kind == QC_SPARE)
			free(r);
		else
			qc_fail(q, r, QC_UNAVAILABLE);
	}
}

static int
qc_connect(struct queuec *q)
{
	struct sockaddr_un sun;
	int fd;

	if (q->fd >= 0)
		return 0;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(q->path) >= sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		goto fail;
	}
	strcpy(sun.sun_path, q->path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		int err = errno;

		close(fd);
		errno = err;
		goto fail;
	}
	q->fd = fd;
	q->rev = event_new(q->base, fd, EV_READ | EV_PERSIST, qc_read_cb, q);
	q->wev = event_new(q->base, fd, EV_WRITE, qc_write_cb, q);
	if (q->rev == NULL || q->wev == NULL)
		fatalx("queue client: event_new");
	event_add(q->rev, NULL);
	if (q->warned)
		log_info("queue connection re-established");
	q->warned = false;
	return 0;
fail:
	if (!q->warned)
		log_warn("queue: cannot connect to %s", q->path);
	q->warned = true;
	return -1;
}

static void
qc_flush(struct queuec *q)
{
	struct qc_pkt *p;
	ssize_t n;

	while (q->fd >= 0 && (p = TAILQ_FIRST(&q->outq)) != NULL) {
		n = send(q->fd, p->buf, p->len, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				event_add(q->wev, NULL);
				return;
			}
			qc_disconnect(q, strerror(errno));
			return;
		}
		TAILQ_REMOVE(&q->outq, p, link);
		free(p);
	}
}

static void
qc_write_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	qc_flush(arg);
}

static void
qc_send(struct queuec *q, const char *verb, const char *qid)
{
	struct qc_pkt *p = xcalloc(1, sizeof(*p));
	int n;

	n = snprintf(p->buf, sizeof(p->buf), "%s%s%s", verb, qid ? " " : "",
	    qid ? qid : "");
	p->len = (size_t)n;
	TAILQ_INSERT_TAIL(&q->outq, p, link);
	qc_flush(q);
}

/* Close any descriptors that came with a message. */
static int
take_fds(struct msghdr *msg, int *fd_out)
{
	struct cmsghdr *ch;
	int nfds = 0;

	*fd_out = -1;
	for (ch = CMSG_FIRSTHDR(msg); ch != NULL; ch = CMSG_NXTHDR(msg, ch)) {
		size_t i, n;

		if (ch->cmsg_level != SOL_SOCKET || ch->cmsg_type != SCM_RIGHTS)
			continue;
		n = (ch->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (i = 0; i < n; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(ch) + i * sizeof(int), sizeof(int));
			if (*fd_out < 0)
				*fd_out = fd;
			else
				close(fd);
			nfds++;
		}
	}
	return nfds;
}

/* One reply: it answers the oldest waiting request. */
static void
qc_reply(struct queuec *q, char *text, int fd)
{
	struct queuec_req *r = TAILQ_FIRST(&q->waiting);

	if (r == NULL) {
		if (fd >= 0)
			close(fd);
		qc_disconnect(q, "unexpected reply");
		return;
	}
	TAILQ_REMOVE(&q->waiting, r, link);
	r->fd = -1;
	if (strncmp(text, "ERR", 3) == 0 && (text[3] == ' ' || text[3] == '\0')) {
		if (fd >= 0)
			close(fd);
		snprintf(r->err, sizeof(r->err), "%.150s",
		    text[3] ? text + 4 : "queue error");
		r->ok = false;
	} else if (strncmp(text, "OK ", 3) == 0 && qid_valid(text + 3)) {
		if (r->kind == QC_OPEN || r->kind == QC_SPARE) {
			if (fd < 0) {
				qc_fail(q, r, "queue sent no file");
				qc_disconnect(q, "OPEN reply without a file");
				return;
			}
			memcpy(r->qid, text + 3, QID_LEN + 1);
			r->fd = fd;
			r->ok = true;
		} else {
			if (fd >= 0)
				close(fd);
			if (strcmp(r->qid, text + 3) != 0) {
				qc_fail(q, r, QC_UNAVAILABLE);
				qc_disconnect(q, "COMMIT reply for another id");
				return;
			}
			r->ok = true;
		}
	} else {
		if (fd >= 0)
			close(fd);
		qc_fail(q, r, QC_UNAVAILABLE);
		qc_disconnect(q, "malformed reply");
		return;
	}
	if (r->kind == QC_SPARE) {
		q->n_spare_asked--;
		/* an error (disk full...) stops the asking ahead for now */
		q->spare_failed = !r->ok;
		if (r->ok && q->n_spare < QC_SPARES) {
			q->spare[q->n_spare].fd = r->fd;
			memcpy(q->spare[q->n_spare].qid, r->qid, QID_LEN + 1);
			q->n_spare++;
		} else if (r->ok) {
			close(r->fd);
			qc_send(q, "ABORT", r->qid);
		}
		free(r);
		return;
	}
	if (r->kind == QC_OPEN && r->ok && q->spare_failed) {
		/* the queue role hands out files again: ask ahead again */
		q->spare_failed = false;
		qc_refill(q);
	}
	if (r->cancelled && r->kind == QC_OPEN && r->ok) {
		/* nobody wants this file any more */
		close(r->fd);
		r->fd = -1;
		qc_send(q, "ABORT", r->qid);
		free(r);
		return;
	}
	qc_complete(q, r);
}

static void
qc_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct queuec *q = arg;
	char buf[QC_PKT_MAX + 1];
	union {
		struct cmsghdr hdr;
		char buf[CMSG_SPACE(sizeof(int) * 4)];
	} cm;
	struct msghdr msg;
	struct iovec iov;
	ssize_t n;
	int rfd;

	(void)what;
	while (q->fd == fd) {
		memset(&msg, 0, sizeof(msg));
		iov.iov_base = buf;
		iov.iov_len = QC_PKT_MAX;
		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;
		msg.msg_control = cm.buf;
		msg.msg_controllen = sizeof(cm.buf);
		n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				qc_disconnect(q, strerror(errno));
			return;
		}
		take_fds(&msg, &rfd);
		if (n == 0) {
			if (rfd >= 0)
				close(rfd);
			qc_disconnect(q, TAILQ_EMPTY(&q->waiting) ? NULL :
			    "closed by the queue role");
			return;
		}
		if ((msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0 ||
		    memchr(buf, '\0', (size_t)n) != NULL) {
			if (rfd >= 0)
				close(rfd);
			qc_disconnect(q, "malformed packet");
			return;
		}
		buf[n] = '\0';
		qc_reply(q, buf, rfd);
	}
}

static void
qc_free_now(struct queuec *q)
{
	struct queuec_req *r;

	qc_disconnect(q, NULL);      /* moves waiting requests to done, closes spares */
	while ((r = TAILQ_FIRST(&q->done)) != NULL) {
		TAILQ_REMOVE(&q->done, r, link);
		if (r->fd >= 0)
			close(r->fd);
		free(r);
	}
	event_free(q->defer);
	free(q->path);
	free(q);
}

/* Run the callbacks of completed requests, oldest first. */
static void
qc_defer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct queuec *q = arg;
	struct queuec_req *r;

	(void)fd;
	(void)what;
	q->dispatching = true;
	while (!q->freed && (r = TAILQ_FIRST(&q->done)) != NULL) {
		TAILQ_REMOVE(&q->done, r, link);
		if (r->cancelled) {
			if (r->fd >= 0) {
				close(r->fd);
				if (q->fd >= 0)
					qc_send(q, "ABORT", r->qid);
			}
		} else if (r->kind == QC_OPEN) {
			r->open_cb(r->ctx, r->ok ? r->fd : -1, r->ok ? r->qid : NULL,
			    r->ok ? NULL : r->err);
		} else {
			r->commit_cb(r->ctx, r->ok, r->ok ? NULL : r->err);
		}
		free(r);
	}
	q->dispatching = false;
	if (q->freed)
		qc_free_now(q);
}

struct queuec *
queuec_new(struct event_base *base, const char *socket_path)
{
	struct queuec *q = xcalloc(1, sizeof(*q));

	q->base = base;
	q->path = xstrdup(socket_path);
	q->fd = -1;
	TAILQ_INIT(&q->waiting);
	TAILQ_INIT(&q->done);
	TAILQ_INIT(&q->outq);
	q->defer = event_new(base, -1, 0, qc_defer_cb, q);
	if (q->defer == NULL)
		fatalx("queue client: event_new");
	return q;
}

void
queuec_free(struct queuec *q)
{
	if (q == NULL)
		return;
	if (q->dispatching) {
		q->freed = true;
		return;
	}
	qc_free_now(q);
}

static struct queuec_req *
qc_new_req(struct queuec *q, enum qc_kind kind, void *ctx)
{
	struct queuec_req *r = xcalloc(1, sizeof(*r));

	r->q = q;
	r->kind = kind;
	r->ctx = ctx;
	r->fd = -1;
	return r;
}

/* Ask for files until QC_SPARES are at hand or on their way. */
static void
qc_refill(struct queuec *q)
{
	while (q->fd >= 0 && !q->spare_failed &&
	    q->n_spare + q->n_spare_asked < QC_SPARES) {
		struct queuec_req *r = qc_new_req(q, QC_SPARE, NULL);

		TAILQ_INSERT_TAIL(&q->waiting, r, link);
		q->n_spare_asked++;
		qc_send(q, "OPEN", NULL);
	}
}

/*
 * A file from the spares when there is one (answered from the deferred
 * event, without a round trip to the queue role), else an OPEN; either
 * way the spares are topped up behind it.
 */
struct queuec_req *
queuec_open(struct queuec *q, queuec_open_cb *cb, void *ctx)
{
	struct queuec_req *r = qc_new_req(q, QC_OPEN, ctx);

	r->open_cb = cb;
	if (qc_connect(q) < 0) {
		qc_fail(q, r, QC_UNAVAILABLE);
		return r;
	}
	if (q->n_spare > 0) {
		q->n_spare--;
		r->fd = q->spare[q->n_spare].fd;
		memcpy(r->qid, q->spare[q->n_spare].qid, QID_LEN + 1);
		r->ok = true;
		qc_complete(q, r);
	} else {
		TAILQ_INSERT_TAIL(&q->waiting, r, link);
		qc_send(q, "OPEN", NULL);
	}
	qc_refill(q);
	return r;
}

struct queuec_req *
queuec_commit(struct queuec *q, const char *qid, long long len,
    queuec_commit_cb *cb, void *ctx)
{
	struct queuec_req *r = qc_new_req(q, QC_COMMIT, ctx);
	char arg[QID_LEN + 24];

	r->commit_cb = cb;
	if (!qid_valid(qid)) {
		qc_fail(q, r, "invalid queue id");
		return r;
	}
	memcpy(r->qid, qid, QID_LEN + 1);
	/* a new connection would not know the file: the queue removed it */
	if (q->fd < 0) {
		qc_fail(q, r, QC_UNAVAILABLE);
		return r;
	}
	TAILQ_INSERT_TAIL(&q->waiting, r, link);
	snprintf(arg, sizeof(arg), "%s %lld", r->qid, len);
	qc_send(q, "COMMIT", arg);
	return r;
}

void
queuec_abort(struct queuec *q, const char *qid)
{
	/* without a connection the queue role already removed the file */
	if (q->fd < 0 || !qid_valid(qid))
		return;
	qc_send(q, "ABORT", qid);
}

void
queuec_req_cancel(struct queuec_req *r)
{
	if (r != NULL)
		r->cancelled = true;
}

unsigned
queuec_spare_count(const struct queuec *q)
{
	return q->n_spare;
}
