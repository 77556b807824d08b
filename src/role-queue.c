/*
 * role-queue.c - the queue role: the only process that writes state_dir.
 *
 * It hands out files in state_dir/incoming to the SMTP role (OPEN, the fd
 * passed over the SOCK_SEQPACKET socket), and on COMMIT makes them durable
 * with a group commit: every COMMIT that arrived while the previous batch
 * was being synced forms the next batch, which a worker thread fsyncs,
 * checks, renames into state_dir/queue and seals with ONE fsync of the
 * queue directory.  Only then is each COMMIT answered "OK", so the SMTP
 * role's "250 queued as" always follows stable storage.  The protocol is
 * described in queue-client.h; replies on one connection go out in the
 * order of the requests.
 *
 * Crash safety: a file is in queue/ only after its data was fsynced; a
 * rename whose directory fsync failed is undone and answered ERR.
 * Anything still in incoming/ was never acknowledged and is removed at
 * start-up.
 *
 * Delivery: the queue manager (qmgr.c) runs on this loop too; every
 * committed message is handed to it at once (qmgr_committed()), and
 * "FLUSH" on this socket (msagatectl queue flush) makes every deferred
 * message due now ("OK <n>"); "SWEEP" (after msagatectl queue delete)
 * forgets and logs the messages whose files were deleted ("OK <n>").  Per-recipient state is in
 * state_dir/status/ID (qstatus.h).
 *
 * Before it drops root the role forks the delivery helper
 * (deliver-helper.h), the one process that keeps a privilege (switching
 * user ids, as `user` with CAP_SETUID/CAP_SETGID), so that
 * local mail can be written as its recipient and alias commands and files
 * run as relay.alias_user.
 */
#include <sys/types.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "deliver-helper.h"
#include "log.h"
#include "qfile.h"
#include "qmgr.h"
#include "qspare.h"
#include "qstatus.h"
#include "roles.h"
#include "sync-backoff.h"
#include "util.h"

#define QPKT_MAX          256     /* largest request or reply packet */
#define QCONN_MAX_FILES   10000   /* open (uncommitted) files per connection */
#define QCONN_MAX         1024    /* connections */
#define QREPLY_HIGH       2048    /* stop reading a connection above this... */
#define QREPLY_LOW        512     /* ...and resume below this */
#define QREAD_BURST       256     /* packets read per callback */
#define QSTOP_GRACE_SECS  60      /* SIGTERM: wait this long for clients */

struct qconn;

/* One reply slot; slots are sent strictly in request order. */
struct qreply {
	TAILQ_ENTRY(qreply) link;
	bool ready;
	int fd;                      /* passed with the reply, or -1 */
	size_t len;
	char text[QPKT_MAX];
};

/* One file handed out by OPEN. */
struct qent {
	TAILQ_ENTRY(qent) conn_link; /* in conn->files */
	TAILQ_ENTRY(qent) batch_link;/* in role->pending, ->batch or ->done */
	struct qconn *conn;          /* NULL once the client is gone */
	struct qreply *reply;        /* the COMMIT's reply slot */
	char qid[QID_LEN + 1];
	int fd;                      /* O_RDWR, ours */
	bool committing;             /* COMMIT received */
	bool in_worker;              /* taken by the worker thread (under mu) */
	/* written by the worker: */
	bool renamed;
	int err;                     /* errno of the failed step, 0 = ok */
	const char *what;            /* the failed step */
	long long size;
};
TAILQ_HEAD(qent_list, qent);

struct qrole;

struct qconn {
	TAILQ_ENTRY(qconn) link;
	struct qrole *q;
	unsigned long id;
	int fd;
	struct event *rev, *wev;
	struct qent_list files;
	size_t n_files;
	TAILQ_HEAD(, qreply) replies;
	size_t n_replies;
	bool paused;                 /* read event removed for backpressure */
	bool dead;                   /* waiting in the reap list */
};

struct qrole {
	struct msagate_config *cfg;  /* as started (state_dir, user) */
	struct event_base *base;
	int listen_fd;
	int ctl_fd;                  /* from the parent: reloads (-1: none) */
	struct event *lev, *kick, *reap, *grace, *notify_ev, *spare_tick;
	struct event *sigterm, *sigint, *sighup, *ctl_ev;
	int in_dfd, q_dfd, st_dfd;   /* incoming/, queue/ and status/ */
	bool sync_fs;                /* queue_sync = "filesystem": syncfs() a batch
	                                (under mu: a reload may change it) */
	bool batch_sync_fs;          /* sync_fs for the worker's batch (worker) */
	struct sync_backoff fs_slow; /* syncfs() too slow lately? (worker only) */
	struct qmgr *qmgr;           /* NULL: delivery not configured */
	struct qspare *spares;       /* delivered files, emptied for reuse */
	TAILQ_HEAD(, qconn) conns, dead_conns;
	size_t n_conns;
	unsigned long next_conn_id;
	/*
	 * The worker thread.  Under mu: pending (COMMITs waiting for the
	 * next batch), done (synced, waiting for the loop to answer),
	 * has_work (the worker is to take pending), busy (it is syncing or
	 * about to), quit.  batch is the worker's own.  When a batch is
	 * done the worker takes what is pending at once, without waiting
	 * for the loop to answer the last one.
	 */
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct qent_list pending, batch, done;
	bool has_work, quit;
	bool busy;
	int notify_r, notify_w;

	bool stopping, draining, grace_over, hard_stop;
	bool started_as_root;        /* before privsep_drop() */
	unsigned long n_committed;
};

static void conn_flush(struct qconn *c);
static void check_exit(struct qrole *q);
static void start_batch(struct qrole *q);

/* qmgr_committed - a new message is in queue/: deliver it now. */
static void
qmgr_committed(struct qrole *q, const char *qid)
{
	if (q->qmgr != NULL)
		qmgr_add(q->qmgr, qid);
}

/* ---- state_dir ---------------------------------------------------- */

/* mkdir DIR 0700 if missing; as root give it to the role's user. */
static bool
prepare_dir(const char *path, const struct passwd *pw)
{
	struct stat st;
	bool created = false;

	if (mkdir(path, 0700) == 0)
		created = true;
	else if (errno != EEXIST)
		fatal("queue: cannot create %s", path);
	if (lstat(path, &st) < 0)
		fatal("queue: %s", path);
	if (!S_ISDIR(st.st_mode))
		fatalx("queue: %s is not a directory", path);
	if (pw != NULL && (st.st_uid != pw->pw_uid || st.st_gid != pw->pw_gid)) {
		if (chown(path, pw->pw_uid, pw->pw_gid) < 0)
			fatal("queue: chown %s", path);
	}
	if (created)
		log_info("queue: created %s", path);
	return created;
}

static void
prepare_state_dir(const struct msagate_config *cfg)
{
	const struct passwd *pw = NULL;
	char path[4096];
	struct stat st;
	bool created;

	if (geteuid() == 0) {
		if (cfg->user == NULL || (pw = getpwnam(cfg->user)) == NULL)
			fatalx("queue: unknown user %s", cfg->user ? cfg->user : "(none)");
	}
	/* state_dir itself: create it if missing, but only chown what we made */
	if (stat(cfg->state_dir, &st) < 0) {
		if (errno != ENOENT)
			fatal("queue: %s", cfg->state_dir);
		prepare_dir(cfg->state_dir, pw);
	}
	if (snprintf(path, sizeof(path), "%s/incoming", cfg->state_dir) >= (int)sizeof(path))
		fatalx("queue: state_dir too long");
	created = prepare_dir(path, pw);
	snprintf(path, sizeof(path), "%s/queue", cfg->state_dir);
	created |= prepare_dir(path, pw);
	snprintf(path, sizeof(path), "%s/" QSTATUS_DIR, cfg->state_dir);
	created |= prepare_dir(path, pw);
	if (created) {
		/* the new directories themselves must survive a crash */
		int fd = open(cfg->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		if (fd < 0 || fsync(fd) < 0)
			log_warn("queue: fsync %s", cfg->state_dir);
		if (fd >= 0)
			close(fd);
	}
}

static int
open_subdir(const struct msagate_config *cfg, const char *sub)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", cfg->state_dir, sub);
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		fatal("queue: cannot open %s", path);
	return fd;
}

/* incoming/name holds (the start of) a message written for that name. */
static bool
incoming_names_itself(struct qrole *q, const char *name)
{
	int fd = openat(q->in_dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW |
	    O_NONBLOCK);
	bool yes;

	if (fd < 0)
		return false;
	yes = qfile_names_itself(fd, name);
	close(fd);
	return yes;
}

/* Remove what a crash left in incoming/: it was never acknowledged. */
static void
clean_incoming(struct qrole *q)
{
	DIR *d;
	struct dirent *de;
	int fd, n = 0, n_empty = 0;

	if ((fd = dup(q->in_dfd)) < 0 || (d = fdopendir(fd)) == NULL)
		fatal("queue: cannot read incoming/");
	while ((de = readdir(d)) != NULL) {
		bool empty;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		/* spares and files opened ahead of DATA were never written */
		empty = qspare_is_spare(de->d_name) ||
		    !incoming_names_itself(q, de->d_name);
		if (unlinkat(q->in_dfd, de->d_name, 0) < 0)
			log_warn("queue: cannot remove incoming/%s", de->d_name);
		else if (empty)
			n_empty++;
		else
			n++;
	}
	closedir(d);
	if (n + n_empty > 0 && fsync(q->in_dfd) < 0)
		log_warn("queue: fsync incoming/");
	if (n > 0)
		log_info("queue: removed %d unfinished message%s from incoming/ "
		    "(never acknowledged)", n, n == 1 ? "" : "s");
	if (n_empty > 0)
		log_debug("queue: removed %d empty file%s from incoming/",
		    n_empty, n_empty == 1 ? "" : "s");
}

static void
count_queue(struct qrole *q)
{
	DIR *d;
	struct dirent *de;
	int fd;
	unsigned long n = 0;

	if ((fd = dup(q->q_dfd)) < 0 || (d = fdopendir(fd)) == NULL)
		fatal("queue: cannot read queue/");
	while ((de = readdir(d)) != NULL)
		if (qid_valid(de->d_name))
			n++;
	closedir(d);
	log_info("queue: %lu message%s in the queue (delivery is not configured)",
	    n, n == 1 ? "" : "s");
}

/* ---- the worker thread: fsync, check, rename, fsync directory ------- */

/*
 * Check that a synced file starts with a queue file header naming its own
 * id (a recycled file still holding a delivered message does not); sets
 * e->err.
 */
static void
check_synced(struct qent *e)
{
	struct stat st;

	if (fstat(e->fd, &st) < 0) {
		e->err = errno;
		e->what = "fstat";
		return;
	}
	e->size = (long long)st.st_size;
	if (!qfile_names_itself(e->fd, e->qid)) {
		e->err = EINVAL;
		e->what = "not a queue file for this id (empty or no header)";
	}
}

/*
 * Make the data of every file of the batch durable.  With a batch of
 * several files and queue_sync = "filesystem", one syncfs() writes them
 * all and issues one cache flush (the kernel reports any write-back error
 * on the filesystem since the previous call on the same descriptor, so an
 * error fails the whole batch: at worst a 452 too many), and each file is
 * then asked for a write-back error of its own, which syncfs() may have
 * reported to an earlier batch; otherwise one fdatasync() per file, after
 * starting the write-back of all of them so the disk sees them together.
 */
static void
sync_data(struct qrole *q, struct qent_list *batch, int n)
{
	struct qent *e;

	if (n >= 2 && q->batch_sync_fs && sync_backoff_allows(&q->fs_slow, now_ms())) {
		uint64_t t0 = now_ms();
		int err = syncfs(q->q_dfd) < 0 ? errno : 0;
		uint64_t t1 = now_ms();

		/* other writers on the filesystem: see sync-backoff.h */
		if (sync_backoff_note(&q->fs_slow, t1 - t0, t1))
			log_warnx("queue: syncfs of state_dir's filesystem took %llu ms, "
			    "%d times in a row (other writers on it?): one fdatasync "
			    "per message for the next %d s", (unsigned long long)(t1 - t0),
			    SYNC_BACKOFF_RUN, SYNC_BACKOFF_MS / 1000);

		TAILQ_FOREACH(e, batch, batch_link) {
			e->err = err;
			e->what = "syncfs";
#ifdef SYNC_FILE_RANGE_WRITE
			/*
			 * syncfs() reports a write-back error once per
			 * filesystem, maybe to another batch: ask each file for
			 * its own (no flush: its pages are clean by now).
			 */
			if (err == 0 && sync_file_range(e->fd, 0, 0,
			    SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
			    SYNC_FILE_RANGE_WAIT_AFTER) < 0) {
				e->err = errno;
				e->what = "write-back";
			}
#endif
		}
		return;
	}
#ifdef SYNC_FILE_RANGE_WRITE
	if (n >= 2)
		TAILQ_FOREACH(e, batch, batch_link)
			(void)sync_file_range(e->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
#endif
	TAILQ_FOREACH(e, batch, batch_link) {
		e->err = fdatasync(e->fd) < 0 ? errno : 0;
		e->what = "fsync";
	}
}

static void
sync_batch(struct qrole *q, struct qent_list *batch)
{
	struct qent *e;
	bool any_renamed = false;
	int n = 0;

	TAILQ_FOREACH(e, batch, batch_link) {
		e->renamed = false;
		n++;
	}
	sync_data(q, batch, n);
	TAILQ_FOREACH(e, batch, batch_link) {
		if (e->err != 0)
			continue;
		check_synced(e);
		if (e->err != 0)
			continue;
		if (renameat(q->in_dfd, e->qid, q->q_dfd, e->qid) < 0) {
			e->err = errno;
			e->what = "rename";
			continue;
		}
		e->renamed = true;
		any_renamed = true;
	}
	/*
	 * One directory fsync makes every rename of the batch durable, and
	 * the delivered files renamed out of queue/ before it (qspare.h).
	 */
	if (any_renamed && q->spares != NULL)
		qspare_sync_start(q->spares);
	if (any_renamed && fsync(q->q_dfd) < 0) {
		int err = errno;

		TAILQ_FOREACH(e, batch, batch_link) {
			if (e->renamed) {
				e->err = err;
				e->what = "fsync of queue/";
			}
		}
	} else if (any_renamed && q->spares != NULL) {
		qspare_sync_done(q->spares);
	}
	TAILQ_FOREACH(e, batch, batch_link) {
		if (e->err != 0) {
			/* nothing half-done may stay: not in queue/, not in incoming/ */
			(void)unlinkat(e->renamed ? q->q_dfd : q->in_dfd, e->qid, 0);
		}
		close(e->fd);
		e->fd = -1;
	}
}

static void *
worker_main(void *arg)
{
	struct qrole *q = arg;
	struct qent *e;
	bool wake;
	unsigned n;

	(void)pthread_setname_np(pthread_self(), "queue-commit");
	pthread_mutex_lock(&q->mu);
	for (;;) {
		while (!q->has_work && !q->quit)
			pthread_cond_wait(&q->cv, &q->mu);
		if (!q->has_work)
			break;
		/* everything pending is this batch */
		q->batch_sync_fs = q->sync_fs;
		TAILQ_INIT(&q->batch);
		n = 0;
		while ((e = TAILQ_FIRST(&q->pending)) != NULL) {
			TAILQ_REMOVE(&q->pending, e, batch_link);
			e->in_worker = true;
			TAILQ_INSERT_TAIL(&q->batch, e, batch_link);
			n++;
		}
		pthread_mutex_unlock(&q->mu);
		log_debug("queue: syncing a batch of %u", n);
		sync_batch(q, &q->batch);
		pthread_mutex_lock(&q->mu);
		wake = TAILQ_EMPTY(&q->done);    /* else a wake-up is on its way */
		TAILQ_CONCAT(&q->done, &q->batch, batch_link);
		/* what arrived meanwhile is the next batch, started now */
		q->has_work = !TAILQ_EMPTY(&q->pending);
		q->busy = q->has_work;
		if (wake)
			while (write(q->notify_w, "x", 1) < 0 && errno == EINTR)
				;
	}
	pthread_mutex_unlock(&q->mu);
	return NULL;
}

/* ---- connections ---------------------------------------------------- */

static struct qreply *
reply_slot(struct qconn *c)
{
	struct qreply *r = xcalloc(1, sizeof(*r));

	r->fd = -1;
	TAILQ_INSERT_TAIL(&c->replies, r, link);
	c->n_replies++;
	return r;
}

static void
reply_set(struct qreply *r, int fd, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
reply_set(struct qreply *r, int fd, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(r->text, sizeof(r->text), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	r->len = (size_t)n < sizeof(r->text) ? (size_t)n : sizeof(r->text) - 1;
	r->fd = fd;
	r->ready = true;
}

/* Take the connection out of service; it is freed from the reap event. */
static void
conn_fail(struct qconn *c)
{
	struct qrole *q = c->q;

	if (c->dead)
		return;
	c->dead = true;
	event_del(c->rev);
	event_del(c->wev);
	TAILQ_REMOVE(&q->conns, c, link);
	TAILQ_INSERT_TAIL(&q->dead_conns, c, link);
	event_active(q->reap, EV_TIMEOUT, 0);
}

/* Forget one uncommitted file: close and unlink it. */
static void
ent_discard(struct qrole *q, struct qent *e)
{
	if (e->fd >= 0)
		close(e->fd);
	if (unlinkat(q->in_dfd, e->qid, 0) < 0 && errno != ENOENT)
		log_warn("queue: %s: cannot remove incoming file", e->qid);
	free(e);
}

/*
 * Never written: one of the files a client opens ahead of DATA (empty, or
 * a recycled file still holding a delivered message).
 */
static bool
ent_empty(const struct qent *e)
{
	return !e->committing && e->fd >= 0 && !qfile_names_itself(e->fd, e->qid);
}

static void
conn_free(struct qconn *c)
{
	struct qrole *q = c->q;
	struct qent *e;
	struct qreply *r;
	unsigned n_open = 0, n_empty = 0;

	while ((e = TAILQ_FIRST(&c->files)) != NULL) {
		bool taken;

		TAILQ_REMOVE(&c->files, e, conn_link);
		pthread_mutex_lock(&q->mu);
		taken = e->committing && e->in_worker;
		if (e->committing && !taken)
			TAILQ_REMOVE(&q->pending, e, batch_link);
		pthread_mutex_unlock(&q->mu);
		if (taken) {
			/* the worker has it; completion sees conn == NULL */
			e->conn = NULL;
			e->reply = NULL;
			continue;
		}
		if (ent_empty(e))
			n_empty++;
		else
			n_open++;
		ent_discard(q, e);
	}
	while ((r = TAILQ_FIRST(&c->replies)) != NULL) {
		TAILQ_REMOVE(&c->replies, r, link);
		if (r->fd >= 0)
			close(r->fd);
		free(r);
	}
	if (n_empty > 0)
		log_debug("queue: connection %lu closed with %u empty file%s (removed)",
		    c->id, n_empty, n_empty == 1 ? "" : "s");
	if (n_open > 0)
		log_info("queue: connection %lu closed with %u unfinished file%s (removed)",
		    c->id, n_open, n_open == 1 ? "" : "s");
	else
		log_debug("queue: connection %lu closed", c->id);
	event_free(c->rev);
	event_free(c->wev);
	close(c->fd);
	q->n_conns--;
	free(c);
}

static void
reap_cb(evutil_socket_t fd, short what, void *arg)
{
	struct qrole *q = arg;
	struct qconn *c;

	(void)fd;
	(void)what;
	while ((c = TAILQ_FIRST(&q->dead_conns)) != NULL) {
		TAILQ_REMOVE(&q->dead_conns, c, link);
		conn_free(c);
	}
	check_exit(q);
}

static struct qent *
conn_find(struct qconn *c, const char *qid)
{
	struct qent *e;

	TAILQ_FOREACH(e, &c->files, conn_link)
		if (strcmp(e->qid, qid) == 0)
			return e;
	return NULL;
}

/*
 * A spare (a delivered message's file) renamed to incoming/qid and
 * opened: no inode created.  It may still hold the old message: the
 * writer writes from offset 0 and do_commit cuts the file to the length
 * the writer sends with COMMIT (qspare.h).
 * -1 if there is none or it fails (the caller creates a file then).
 */
static int
open_recycled(struct qrole *q, const char *qid)
{
	struct stat st;
	int fd;

	if (q->spares == NULL || qspare_take(q->spares, qid) < 0)
		return -1;
	fd = openat(q->in_dfd, qid, O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
		return fd;
	log_warn("queue: cannot reuse a spare queue file as incoming/%s", qid);
	if (fd >= 0)
		close(fd);
	(void)unlinkat(q->in_dfd, qid, 0);
	return -1;
}

static void
do_open(struct qconn *c)
{
	struct qrole *q = c->q;
	struct qent *e;
	char qid[QID_LEN + 1];
	int fd = -1, cfd, tries;

	if (c->n_files >= QCONN_MAX_FILES) {
		log_warnx("queue: connection %lu: too many open queue files", c->id);
		reply_set(reply_slot(c), -1, "ERR %s", "too many open queue files");
		return;
	}
	for (tries = 0; tries < 10; tries++) {
		qmgr_qid_new(qid);
		fd = open_recycled(q, qid);
		if (fd >= 0)
			break;
		fd = openat(q->in_dfd, qid, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC |
		    O_NOFOLLOW, 0600);
		if (fd >= 0 || errno != EEXIST)
			break;
	}
	if (fd < 0) {
		int err = errno;

		log_warn("queue: cannot create incoming/%s", qid);
		reply_set(reply_slot(c), -1, "ERR cannot create queue file: %s",
		    strerror(err));
		return;
	}
	/* the client gets its own write-only descriptor */
	if ((cfd = openat(q->in_dfd, qid, O_WRONLY | O_CLOEXEC | O_NOFOLLOW)) < 0) {
		int err = errno;

		log_warn("queue: cannot reopen incoming/%s", qid);
		reply_set(reply_slot(c), -1, "ERR cannot open queue file: %s",
		    strerror(err));
		close(fd);
		unlinkat(q->in_dfd, qid, 0);
		return;
	}
	e = xcalloc(1, sizeof(*e));
	memcpy(e->qid, qid, sizeof(qid));
	e->fd = fd;
	e->conn = c;
	TAILQ_INSERT_TAIL(&c->files, e, conn_link);
	c->n_files++;
	reply_set(reply_slot(c), cfd, "OK %s", qid);
	log_debug("queue: %s: opened for connection %lu", qid, c->id);
}

/*
 * Cut e's file to the length its writer says it wrote: a recycled file
 * (qspare.h) still holds the end of a delivered message past it.  A file
 * shorter than that lost data.  0, or -1 with the reason in *why.
 */
static int
cut_to_length(struct qent *e, long long len, const char **why)
{
	struct stat st;

	if (fstat(e->fd, &st) < 0) {
		*why = "cannot stat the queue file";
		log_warn("queue: %s: %s", e->qid, *why);
		return -1;
	}
	if ((long long)st.st_size < len) {
		*why = "queue file shorter than written";
		log_warnx("queue: %s: %s (%lld < %lld bytes)", e->qid, *why,
		    (long long)st.st_size, len);
		return -1;
	}
	if ((long long)st.st_size > len && ftruncate(e->fd, (off_t)len) < 0) {
		*why = "cannot cut the queue file to its length";
		log_warn("queue: %s: %s", e->qid, *why);
		return -1;
	}
	return 0;
}

/* COMMIT <qid> [<length>] (the length: see queue-client.h) */
static void
do_commit(struct qconn *c, char *arg)
{
	struct qrole *q = c->q;
	struct qent *e;
	char *qid = arg, *len_s = strchr(arg, ' '), *end;
	long long len = -1;
	const char *why;
	bool idle;

	if (len_s != NULL) {
		*len_s++ = '\0';
		errno = 0;
		len = strtoll(len_s, &end, 10);
		if (*len_s < '0' || *len_s > '9' || *end != '\0' || errno != 0) {
			reply_set(reply_slot(c), -1, "ERR %s", "bad length");
			return;
		}
	}
	if (!qid_valid(qid) || (e = conn_find(c, qid)) == NULL) {
		reply_set(reply_slot(c), -1, "ERR %s", "unknown queue id");
		return;
	}
	if (e->committing) {
		reply_set(reply_slot(c), -1, "ERR %s", "commit already in progress");
		return;
	}
	if (len >= 0 && cut_to_length(e, len, &why) < 0) {
		reply_set(reply_slot(c), -1, "ERR %s", why);
		return;                 /* the client's ABORT removes it */
	}
	e->committing = true;
	e->reply = reply_slot(c);
	pthread_mutex_lock(&q->mu);
	TAILQ_INSERT_TAIL(&q->pending, e, batch_link);
	idle = !q->busy;
	pthread_mutex_unlock(&q->mu);
	if (idle) {
		/* let the loop read what else is ready, then start the batch */
		struct timeval zero = { 0, 0 };
		evtimer_add(q->kick, &zero);
	}
}

static void
do_abort(struct qconn *c, const char *qid)
{
	struct qent *e;

	if (!qid_valid(qid) || (e = conn_find(c, qid)) == NULL) {
		log_debug("queue: connection %lu: ABORT of unknown id", c->id);
		return;
	}
	if (e->committing) {
		log_warnx("queue: %s: ABORT during COMMIT ignored", qid);
		return;
	}
	TAILQ_REMOVE(&c->files, e, conn_link);
	c->n_files--;
	log_debug("queue: %s: aborted", qid);
	ent_discard(c->q, e);
}

/* msagatectl queue flush: every deferred message is due now. */
static void
do_flush(struct qconn *c)
{
	struct qrole *q = c->q;
	size_t n = 0;

	if (q->qmgr != NULL)
		n = qmgr_flush(q->qmgr);
	log_info("queue: flush requested: %zu deferred message%s due now", n,
	    n == 1 ? "" : "s");
	reply_set(reply_slot(c), -1, "OK %zu", n);
}

/* SWEEP: msagatectl deleted messages; log their removal now */
static void
do_sweep(struct qconn *c)
{
	struct qrole *q = c->q;
	size_t n = q->qmgr != NULL ? qmgr_sweep_deleted(q->qmgr) : 0;

	reply_set(reply_slot(c), -1, "OK %zu", n);
}

static void
handle_packet(struct qconn *c, char *buf, size_t n)
{
	if (n > 0 && buf[n - 1] == '\n')
		buf[--n] = '\0';
	if (strlen(buf) != n) {
		log_warnx("queue: connection %lu: NUL byte in request", c->id);
		conn_fail(c);
		return;
	}
	if (strcmp(buf, "OPEN") == 0)
		do_open(c);
	else if (strncmp(buf, "COMMIT ", 7) == 0)
		do_commit(c, buf + 7);
	else if (strncmp(buf, "ABORT ", 6) == 0)
		do_abort(c, buf + 6);
	else if (strcmp(buf, "FLUSH") == 0)
		do_flush(c);
	else if (strcmp(buf, "SWEEP") == 0)
		do_sweep(c);
	else {
		char safe[64];

		log_warnx("queue: connection %lu: unknown request '%s'", c->id,
		    log_safe(safe, sizeof(safe), buf, 40));
		reply_set(reply_slot(c), -1, "ERR %s", "unknown request");
	}
}

static void
conn_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct qconn *c = arg;
	char buf[QPKT_MAX + 1];
	ssize_t n;
	int i;

	(void)what;
	for (i = 0; i < QREAD_BURST && !c->dead && c->n_replies < QREPLY_HIGH; i++) {
		n = recv(fd, buf, QPKT_MAX, MSG_DONTWAIT | MSG_TRUNC);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			if (errno == EINTR)
				continue;
			log_warn("queue: connection %lu: recv", c->id);
			conn_fail(c);
			return;
		}
		if (n == 0) {
			conn_fail(c);
			return;
		}
		if (n >= QPKT_MAX) {
			log_warnx("queue: connection %lu: oversized request", c->id);
			conn_fail(c);
			return;
		}
		buf[n] = '\0';
		handle_packet(c, buf, (size_t)n);
	}
	if (c->dead)
		return;
	conn_flush(c);
	if (!c->dead && c->n_replies >= QREPLY_HIGH && !c->paused) {
		event_del(c->rev);
		c->paused = true;
	}
}

/* Send the ready replies at the head of the queue, in order. */
static void
conn_flush(struct qconn *c)
{
	struct qreply *r;
	ssize_t n;

	if (c->dead)
		return;
	while ((r = TAILQ_FIRST(&c->replies)) != NULL && r->ready) {
		n = send_fds(c->fd, r->text, r->len, &r->fd, r->fd >= 0 ? 1 : 0,
		    MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				event_add(c->wev, NULL);
				return;
			}
			if (errno != EPIPE && errno != ECONNRESET)
				log_warn("queue: connection %lu: send", c->id);
			conn_fail(c);
			return;
		}
		TAILQ_REMOVE(&c->replies, r, link);
		c->n_replies--;
		if (r->fd >= 0)
			close(r->fd);
		free(r);
	}
	if (c->paused && c->n_replies < QREPLY_LOW && !c->q->draining) {
		c->paused = false;
		event_add(c->rev, NULL);
		event_active(c->rev, EV_READ, 0);
	}
}

static void
conn_write_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	conn_flush(arg);
}

static void
accept_cb(evutil_socket_t lfd, short what, void *arg)
{
	struct qrole *q = arg;
	struct qconn *c;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	int fd;

	(void)what;
	for (;;) {
		fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
			    errno != ECONNABORTED)
				log_warn("queue: accept");
			return;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 ||
		    (cred.uid != 0 && cred.uid != geteuid())) {
			log_warnx("queue: refused a connection from uid %ld",
			    (long)cred.uid);
			close(fd);
			continue;
		}
		if (q->n_conns >= QCONN_MAX) {
			log_warnx("queue: too many connections");
			close(fd);
			continue;
		}
		c = xcalloc(1, sizeof(*c));
		c->q = q;
		c->fd = fd;
		c->id = ++q->next_conn_id;
		TAILQ_INIT(&c->files);
		TAILQ_INIT(&c->replies);
		c->rev = event_new(q->base, fd, EV_READ | EV_PERSIST, conn_read_cb, c);
		c->wev = event_new(q->base, fd, EV_WRITE, conn_write_cb, c);
		if (c->rev == NULL || c->wev == NULL)
			fatalx("queue: event_new");
		event_add(c->rev, NULL);
		TAILQ_INSERT_TAIL(&q->conns, c, link);
		q->n_conns++;
		log_debug("queue: connection %lu from pid %ld", c->id, (long)cred.pid);
	}
}

/* ---- batches --------------------------------------------------------- */

static void
kick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	start_batch(arg);
}

/* Hand everything pending to the worker (if it is idle). */
static void
start_batch(struct qrole *q)
{
	pthread_mutex_lock(&q->mu);
	if (!q->busy && !TAILQ_EMPTY(&q->pending)) {
		q->has_work = true;
		q->busy = true;
		pthread_cond_signal(&q->cv);
	}
	pthread_mutex_unlock(&q->mu);
}

/* The worker finished a batch: answer each COMMIT. */
static void
notify_cb(evutil_socket_t fd, short what, void *arg)
{
	struct qrole *q = arg;
	char buf[64];
	struct qent *e;
	struct qent_list done;

	(void)what;
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	TAILQ_INIT(&done);
	pthread_mutex_lock(&q->mu);
	TAILQ_CONCAT(&done, &q->done, batch_link);
	pthread_mutex_unlock(&q->mu);

	while ((e = TAILQ_FIRST(&done)) != NULL) {
		struct qconn *c = e->conn;

		TAILQ_REMOVE(&done, e, batch_link);
		if (c != NULL) {
			TAILQ_REMOVE(&c->files, e, conn_link);
			c->n_files--;
		}
		if (c == NULL || c->dead) {
			/* nobody heard an OK: take it back (no 250 was given) */
			if (e->err == 0) {
				if (unlinkat(q->q_dfd, e->qid, 0) < 0)
					log_warn("queue: %s: cannot remove", e->qid);
				log_warnx("queue: %s: client went away before the "
				    "commit was confirmed; removed", e->qid);
			}
			free(e);
			continue;
		}
		if (e->err == 0) {
			q->n_committed++;
			log_debug("queue: %s: committed, %lld bytes", e->qid, e->size);
			reply_set(e->reply, -1, "OK %s", e->qid);
			qmgr_committed(q, e->qid);
		} else {
			const char *why = e->err == EINVAL ? "" : strerror(e->err);

			log_warnx("queue: %s: commit failed: %s%s%s", e->qid,
			    e->what, *why ? ": " : "", why);
			reply_set(e->reply, -1, "ERR %s%s%s", e->what,
			    *why ? ": " : "", why);
		}
		free(e);
		conn_flush(c);
	}
	check_exit(q);
}

/* ---- stopping -------------------------------------------------------- */

static void
check_exit(struct qrole *q)
{
	struct qconn *c;

	if (!q->stopping)
		return;
	if (!q->draining && (q->n_conns == 0 || q->grace_over || q->hard_stop)) {
		q->draining = true;
		TAILQ_FOREACH(c, &q->conns, link)
			event_del(c->rev);
		start_batch(q);
	}
	if (q->draining) {
		bool idle;

		pthread_mutex_lock(&q->mu);
		idle = !q->busy && TAILQ_EMPTY(&q->pending) && TAILQ_EMPTY(&q->done);
		pthread_mutex_unlock(&q->mu);
		if (idle)
			event_base_loopbreak(q->base);
	}
}

/* A pool of spares nobody took from since the last tick is emptied. */
static void
spare_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct qrole *q = arg;

	(void)fd;
	(void)what;
	if (qspare_idle(q->spares)) {
		qspare_clear(q->spares);
		log_debug("queue: idle for %d s: spare queue files removed",
		    QSPARE_IDLE_SECS);
	}
}

static void
grace_cb(evutil_socket_t fd, short what, void *arg)
{
	struct qrole *q = arg;

	(void)fd;
	(void)what;
	log_info("queue: clients still connected after %d s; stopping",
	    QSTOP_GRACE_SECS);
	q->grace_over = true;
	check_exit(q);
}

static void
sigterm_cb(evutil_socket_t sig, short what, void *arg)
{
	struct qrole *q = arg;
	struct timeval tv = { QSTOP_GRACE_SECS, 0 };

	(void)what;
	if (q->stopping) {
		q->hard_stop = true;
	} else {
		log_info("queue: %s: stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
		q->stopping = true;
		event_del(q->lev);
		evtimer_add(q->grace, &tv);
	}
	check_exit(q);
}

static void
sighup_cb(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	(void)arg;
	log_info("queue: SIGHUP: reloads come from msagated (send it SIGHUP)");
}

/* keep_str - *n becomes a copy of o (the running value). */
static void
keep_str(char **n, const char *o)
{
	char *old = *n;

	*n = o != NULL ? xstrdup(o) : NULL;
	free(old);
}

/*
 * keep_started - settings the queue role cannot change while it runs stay
 * as started in n (the reloaded configuration), with a log line when they
 * differ: directories, sockets and the user (msagated says so itself),
 * the delivery helper's (forked as root at start: alias user, commands,
 * files, minimum uid, and whether it exists at all for Maildir delivery
 * as other users) and the number of delivery threads.
 */
static void
keep_started(const struct msagate_config *o, struct msagate_config *n,
    bool started_as_root)
{
	bool helper_keys = n->relay.allow_alias_commands != o->relay.allow_alias_commands ||
	    n->relay.allow_alias_files != o->relay.allow_alias_files ||
	    n->relay.delivery_min_uid != o->relay.delivery_min_uid ||
	    n->relay.alias_command_timeout_ms != o->relay.alias_command_timeout_ms ||
	    strcmp(n->relay.alias_user ? n->relay.alias_user : "",
	    o->relay.alias_user ? o->relay.alias_user : "") != 0;

	keep_str(&n->user, o->user);
	keep_str(&n->state_dir, o->state_dir);
	keep_str(&n->run_dir, o->run_dir);
	keep_str(&n->queue_socket, o->queue_socket);
	keep_str(&n->pid_file, o->pid_file);
	keep_str(&n->auth.userdb_socket, o->auth.userdb_socket);
	if (helper_keys)
		log_warnx("queue: reload: relay.allow_alias_commands, allow_alias_files, "
		    "alias_user, alias_command_timeout and delivery.min_uid change "
		    "only on a restart of msagated");
	n->relay.allow_alias_commands = o->relay.allow_alias_commands;
	n->relay.allow_alias_files = o->relay.allow_alias_files;
	n->relay.delivery_min_uid = o->relay.delivery_min_uid;
	n->relay.alias_command_timeout_ms = o->relay.alias_command_timeout_ms;
	keep_str(&n->relay.alias_user, o->relay.alias_user);
	if (n->relay.delivery_workers != o->relay.delivery_workers) {
		log_warnx("queue: reload: relay.delivery_workers changes only on a "
		    "restart of msagated");
		n->relay.delivery_workers = o->relay.delivery_workers;
	}
	/* Maildir delivery as the recipients needs the helper forked at start */
	if (started_as_root && !deliver_helper_privileged() &&
	    n->relay.delivery_method != NULL && o->relay.delivery_method != NULL &&
	    strcmp(n->relay.delivery_method, "maildir") == 0 &&
	    strcmp(o->relay.delivery_method, "maildir") != 0) {
		log_warnx("queue: reload: a change of relay.delivery to maildir needs a "
		    "restart of msagated (the delivery helper is started only then); "
		    "delivering by %s until then", o->relay.delivery_method);
		keep_str(&n->relay.delivery_method, o->relay.delivery_method);
		keep_str(&n->relay.delivery_path, o->relay.delivery_path);
		keep_str(&n->relay.delivery_socket, o->relay.delivery_socket);
	}
}

/*
 * reload - deliver with the relay settings of the configuration on cfd
 * from now on.  The parent has checked it already; what cannot change
 * while the role runs stays as started (keep_started).
 */
static void
reload(struct qrole *q, int cfd)
{
	struct config_errors errs = { 0 };
	struct msagate_config *n;
	FILE *fp;

	if ((fp = fdopen(cfd, "r")) == NULL) {
		log_warn("queue: reload");
		close(cfd);
		return;
	}
	n = config_load_fp(fp, q->cfg->file, &errs);
	for (size_t i = 0; i < errs.n; i++)
		log_warnx("queue: reload: %s", errs.msg[i]);
	if (n != NULL && errs.n > 0) {
		config_free(n);
		n = NULL;
	}
	config_errors_free(&errs);
	if (n == NULL) {
		log_warnx("queue: reload: keeping the running settings");
		return;
	}
	if (q->qmgr == NULL) {
		/*
		 * Starting the queue manager now would race the commits in
		 * flight (a message found by the scan and handed over again
		 * by its commit): only a start does that.
		 */
		log_warnx("queue: reload: delivery was not configured at start; "
		    "restart msagated to start delivering");
		config_free(n);
		return;
	}
	keep_started(q->cfg, n, q->started_as_root);
	{
		bool fs = n->queue_sync_fs;

		if (qmgr_reconfigure(q->qmgr, n) == 0) {        /* takes n */
			pthread_mutex_lock(&q->mu);
			q->sync_fs = fs;
			pthread_mutex_unlock(&q->mu);
		}
	}
}

/* ctl_cb - the parent's socket: a reload (a descriptor of the checked
 * configuration file, which may be readable by root only), or EOF. */
static void
ctl_cb(evutil_socket_t fd, short what, void *arg)
{
	struct qrole *q = arg;
	int cfd;
	char tag;
	int r = recv_fd(fd, &cfd, &tag);

	(void)what;
	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (r <= 0) {
		event_del(q->ctl_ev);    /* the parent is gone: SIGTERM follows */
		return;
	}
	if (tag != 'R' || cfd < 0) {
		log_warnx("queue: unknown message from msagated; ignored");
		if (cfd >= 0)
			close(cfd);
		return;
	}
	log_info("queue: reloading the relay settings");
	reload(q, cfd);
}

/* ---- main ------------------------------------------------------------ */

static void
raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static struct event *
new_event(struct qrole *q, int fd, short what, event_callback_fn cb)
{
	struct event *ev = event_new(q->base, fd, what, cb, q);

	if (ev == NULL)
		fatalx("queue: event_new");
	return ev;
}

int
role_queue_main(struct msagate_config *cfg, int listen_fd, int ctl_fd)
{
	struct qrole qr, *q = &qr;
	struct qconn *c;
	int p[2];

	memset(q, 0, sizeof(*q));
	q->cfg = cfg;
	q->listen_fd = listen_fd;
	q->ctl_fd = ctl_fd;
	q->started_as_root = geteuid() == 0;
	TAILQ_INIT(&q->conns);
	TAILQ_INIT(&q->dead_conns);
	TAILQ_INIT(&q->pending);
	TAILQ_INIT(&q->batch);
	TAILQ_INIT(&q->done);

	signal(SIGPIPE, SIG_IGN);
	raise_nofile();
	prepare_state_dir(cfg);
	/* the only part that keeps root: writing as recipients, alias commands */
	deliver_helper_start(cfg);
	privsep_drop(cfg, "queue");

	q->in_dfd = open_subdir(cfg, "incoming");
	q->q_dfd = open_subdir(cfg, "queue");
	q->sync_fs = cfg->queue_sync_fs;
	q->st_dfd = open_subdir(cfg, QSTATUS_DIR);
	clean_incoming(q);

	if (set_nonblock(listen_fd) < 0)
		fatal("queue: listening socket");
	if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0)
		fatal("queue: pipe");
	q->notify_r = p[0];
	q->notify_w = p[1];
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->cv, NULL);
	{
		/* the thread starts with every signal blocked */
		sigset_t all, old;

		sigfillset(&all);
		pthread_sigmask(SIG_BLOCK, &all, &old);
		if (pthread_create(&q->th, NULL, worker_main, q) != 0)
			fatalx("queue: cannot start the sync thread");
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}

	if ((q->base = event_base_new()) == NULL)
		fatalx("queue: event_base_new");
	q->lev = new_event(q, listen_fd, EV_READ | EV_PERSIST, accept_cb);
	q->notify_ev = new_event(q, q->notify_r, EV_READ | EV_PERSIST, notify_cb);
	q->kick = new_event(q, -1, 0, kick_cb);
	q->reap = new_event(q, -1, 0, reap_cb);
	q->grace = new_event(q, -1, 0, grace_cb);
	q->sigterm = evsignal_new(q->base, SIGTERM, sigterm_cb, q);
	q->sigint = evsignal_new(q->base, SIGINT, sigterm_cb, q);
	q->sighup = evsignal_new(q->base, SIGHUP, sighup_cb, q);
	if (q->sigterm == NULL || q->sigint == NULL || q->sighup == NULL)
		fatalx("queue: evsignal_new");
	event_add(q->lev, NULL);
	event_add(q->notify_ev, NULL);
	event_add(q->sigterm, NULL);
	event_add(q->sigint, NULL);
	event_add(q->sighup, NULL);
	if (ctl_fd >= 0) {
		if (set_nonblock(ctl_fd) < 0)
			fatal("queue: control socket");
		q->ctl_ev = new_event(q, ctl_fd, EV_READ | EV_PERSIST, ctl_cb);
		event_add(q->ctl_ev, NULL);
	}

	q->spares = qspare_new(q->in_dfd, QSPARE_MAX);
	q->spare_tick = new_event(q, -1, EV_PERSIST, spare_tick_cb);
	{
		struct timeval tv = { QSPARE_IDLE_SECS, 0 };

		event_add(q->spare_tick, &tv);
	}
	q->qmgr = qmgr_new(cfg, q->base, q->in_dfd, q->q_dfd, q->st_dfd);
	if (q->qmgr != NULL) {
		qmgr_set_spares(q->qmgr, q->spares);
		qmgr_scan(q->qmgr);
	}
	else
		count_queue(q);

	log_info("queue: ready, state_dir %s", cfg->state_dir);
	event_base_dispatch(q->base);
	/* deliveries in progress finish (bounded by the methods' timeouts) */
	qmgr_stop(q->qmgr);

	/* stopped: last replies (best effort), then uncommitted files go */
	TAILQ_FOREACH(c, &q->conns, link)
		conn_flush(c);
	while ((c = TAILQ_FIRST(&q->conns)) != NULL) {
		TAILQ_REMOVE(&q->conns, c, link);
		conn_free(c);
	}
	while ((c = TAILQ_FIRST(&q->dead_conns)) != NULL) {
		TAILQ_REMOVE(&q->dead_conns, c, link);
		conn_free(c);
	}
	pthread_mutex_lock(&q->mu);
	q->quit = true;
	pthread_cond_signal(&q->cv);
	pthread_mutex_unlock(&q->mu);
	pthread_join(q->th, NULL);
	qmgr_free(q->qmgr);
	qspare_clear(q->spares);
	qspare_free(q->spares);

	log_info("queue: stopped, %lu message%s committed", q->n_committed,
	    q->n_committed == 1 ? "" : "s");
	event_free(q->lev);
	event_free(q->notify_ev);
	event_free(q->kick);
	event_free(q->reap);
	event_free(q->grace);
	event_free(q->spare_tick);
	event_free(q->sigterm);
	event_free(q->sigint);
	event_free(q->sighup);
	if (q->ctl_ev != NULL)
		event_free(q->ctl_ev);
	event_base_free(q->base);
	close(q->notify_r);
	close(q->notify_w);
	close(q->in_dfd);
	close(q->q_dfd);
	close(q->st_dfd);
	pthread_mutex_destroy(&q->mu);
	pthread_cond_destroy(&q->cv);
	return 0;
}
