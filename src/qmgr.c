/*
 * qmgr.c - the queue manager (see qmgr.h): the scheduler on the queue
 * role's event loop, the delivery worker threads, and one delivery
 * attempt of one message (aliases, local/remote split, the delivery
 * method, status file, bounces, removal).
 *
 * Scheduling: every message the role knows is in exactly one place: the
 * ready list (due now), the waiting list (deferred, with a time), or with
 * a worker.  At most relay.delivery_workers messages are with workers; the rest wait
 * in the ready list in arrival order.  Workers hand results back through
 * a pipe that wakes the event loop.
 *
 * Crash safety: a recipient is marked delivered (fsynced 'S' line) only
 * after the method said so, so a kill -9 in between means one more
 * delivery after the restart, never none.  A bounce is queued (fsynced)
 * before its recipients are marked bounced.  The queue file is removed
 * before the status file.  Removal is not flushed to disk on its own (the
 * next commit batch or the kernel's write-back does it): a kill -9 cannot
 * undo an unlink, and a power loss just after a delivery may bring the
 * message back for one more delivery (at least once, as in Postfix),
 * never lose one.  A delivered message's file is reused for a new one
 * (qspare.h): a queue file that is empty or names another message in its
 * header is such a file under an old name a crash brought back, and only
 * the name is removed (forget_stale_name).
 */
#include <sys/queue.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "aliases.h"
#include "deliver-helper.h"
#include "delivery.h"
#include "dsn.h"
#include "log.h"
#include "qmgr.h"
#include "qspare.h"
#include "qstatus.h"
#include "util.h"

#define ALIASES_RECHECK_SECS 1
#define QMGR_WORKER_NICE     10  /* delivery threads, see worker_lower_priority */
/* without relay.relayhost and with relay.mx_lookup off; t/95 matches it */
#define ONWARD_DETAIL "no relayhost and MX lookup is off (relay.mx_lookup)"

enum qmsg_state { QM_READY, QM_WAITING, QM_BUSY };
enum qmsg_outcome { QO_DONE, QO_DEFER, QO_GONE };

struct qmsg {
	TAILQ_ENTRY(qmsg) link;
	char id[QID_LEN + 1];
	enum qmsg_state state;
	unsigned tries;
	time_t next_try;
	bool no_status;              /* committed since start-up, no status file
	                                written: nothing to read or remove */
	/* set by the worker */
	enum qmsg_outcome outcome;
	char bounce_id[QID_LEN + 1];   /* a bounce it queued, or "" */
	char warn_id[QID_LEN + 1];     /* a delay warning it queued, or "" */
};
TAILQ_HEAD(qmsg_list, qmsg);

/*
 * The settings of one configuration: a reload (qmgr_reconfigure) makes a
 * new generation, and an attempt keeps the one it started with until it
 * ends, so a delivery in progress never sees its method freed under it.
 */
struct qgen {
	unsigned refs;               /* under qmgr.mu: the qmgr's and attempts' */
	const struct msagate_config *cfg;
	struct msagate_config *own_cfg;  /* freed with it (a reload's), or NULL */
	const struct delivery_method *method;
	void *mctx;
	/* onward relay of foreign recipients (NULL: no relayhost) */
	const struct delivery_method *onward;
	void *octx;
	time_t lifetime;
	time_t delay_warning;        /* 0: no delay warnings */
	unsigned retry_min, retry_max;
};

struct qmgr {
	struct qgen *g;              /* the current settings (under mu) */
	struct event_base *base;
	int in_dfd, q_dfd, st_dfd;
	struct qspare *spares;       /* delivered files recycled here, or NULL */

	/* aliases: shared by the workers, refreshed under alias_mu */
	pthread_mutex_t alias_mu;
	char *alias_path;            /* relay.aliases of the current settings */
	struct aliases *aliases;
	time_t alias_checked;
	bool alias_warned;

	/* event-loop side */
	struct qmsg_list ready, waiting;
	size_t n_ready, n_waiting, n_busy;
	time_t timer_at;             /* when the retry timer fires; 0: not armed */
	struct event *timer, *notify_ev;
	bool stopping;

	/* worker side, under mu */
	pthread_t *th;
	size_t n_threads, n_workers;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct qmsg_list jobs, done;
	bool quit;
	int notify_r, notify_w;
};

static pthread_mutex_t qid_mu = PTHREAD_MUTEX_INITIALIZER;

void
qmgr_qid_new(char out[QID_LEN + 1])
{
	pthread_mutex_lock(&qid_mu);
	qid_new(out);
	pthread_mutex_unlock(&qid_mu);
}

unsigned
qmgr_retry_delay(unsigned tries, unsigned min, unsigned max)
{
	unsigned d = min > 0 ? min : 1;

	while (tries-- > 1 && d < max)
		d = d > max / 2 ? max : d * 2;
	return d > max ? max : d;
}

/* A duration from the configuration (ms; 0 = unset) in whole seconds. */
static time_t
cfg_secs(int ms, time_t def)
{
	if (ms <= 0)
		return def;
	return ms < 1000 ? 1 : (time_t)((ms + 999) / 1000);
}

/* ---- settings generations ------------------------------------------ */

/*
 * gen_new - the delivery methods and schedule of cfg; NULL (logged) if
 * the delivery configuration is unusable.  own: cfg is freed with it.
 */
static struct qgen *
gen_new(const struct msagate_config *cfg, struct msagate_config *own)
{
	struct qgen *g = xcalloc(1, sizeof(*g));
	char *err = NULL;

	g->refs = 1;
	g->cfg = cfg;
	g->lifetime = cfg_secs(cfg->relay.queue_lifetime_ms, QMGR_LIFETIME);
	g->delay_warning = cfg_secs(cfg->relay.delay_warning_ms, 0);
	g->retry_min = (unsigned)cfg_secs(cfg->relay.retry_min_ms, QMGR_RETRY_MIN);
	g->retry_max = (unsigned)cfg_secs(cfg->relay.retry_max_ms, QMGR_RETRY_MAX);
	if (g->retry_max < g->retry_min)
		g->retry_max = g->retry_min;
	g->method = delivery_method_find(cfg->relay.delivery_method);
	if (g->method == NULL) {
		log_warnx("queue: unknown delivery method \"%s\"",
		    cfg->relay.delivery_method ? cfg->relay.delivery_method : "");
		free(g);
		return NULL;
	}
	if ((g->mctx = g->method->init(cfg, &err)) == NULL) {
		log_warnx("queue: delivery method %s: %s", g->method->name,
		    err ? err : "cannot initialise");
		free(err);
		free(g);
		return NULL;
	}
	if ((cfg->relay.relayhost != NULL && cfg->relay.relayhost[0] != '\0') ||
	    cfg->relay.mx_lookup) {
		g->onward = &delivery_smtp;
		if ((g->octx = g->onward->init(cfg, &err)) == NULL) {
			log_warnx("queue: onward relay: %s", err ? err : "cannot initialise");
			free(err);
			g->method->free(g->mctx);
			free(g);
			return NULL;
		}
	}
	g->own_cfg = own;
	return g;
}

static void
gen_free(struct qgen *g)
{
	if (g == NULL)
		return;
	g->method->free(g->mctx);
	if (g->onward != NULL)
		g->onward->free(g->octx);
	if (g->own_cfg != NULL)
		config_free(g->own_cfg);
	free(g);
}

/* The one line that says how mail is delivered (start and reload). */
static void
gen_log(const struct qgen *g, size_t n_threads, const char *what)
{
	log_info("queue: %s: delivery to local domains by %s, other domains by %s, "
	    "%zu workers, retries %u..%u s, lifetime %lld s, delay warning %s", what,
	    g->method->relay(g->mctx),
	    g->onward ? g->onward->relay(g->octx) : "none (deferred)", n_threads,
	    g->retry_min, g->retry_max, (long long)g->lifetime,
	    g->delay_warning > 0 ? "on" : "off");
}

/* The aliases file of the current settings (the loop thread). */
static void
set_alias_path(struct qmgr *m, const struct msagate_config *cfg)
{
	const char *p = cfg->relay.aliases;

	if (p != NULL && p[0] == '\0')
		p = NULL;
	pthread_mutex_lock(&m->alias_mu);
	if (p == NULL || m->alias_path == NULL || strcmp(p, m->alias_path) != 0) {
		free(m->alias_path);
		m->alias_path = p != NULL ? xstrdup(p) : NULL;
		aliases_free(m->aliases);
		m->aliases = NULL;
		m->alias_checked = 0;
		m->alias_warned = false;
	}
	pthread_mutex_unlock(&m->alias_mu);
}

/* ---- writing a queue file (bounces) --------------------------------- */

int
qmgr_queue_file(int in_dfd, int q_dfd, struct qenvelope *env, const char *msg,
    size_t len)
{
	char *head = NULL;
	long hlen;
	int fd = -1, tries, e;

	for (tries = 0; tries < 10; tries++) {
		qmgr_qid_new(env->id);
		fd = openat(in_dfd, env->id, O_WRONLY | O_CREAT | O_EXCL |
		    O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd >= 0 || errno != EEXIST)
			break;
	}
	if (fd < 0)
		return -1;
	if ((hlen = qfile_format_header(env, &head)) < 0) {
		errno = EINVAL;
		goto fail;
	}
	if (write_all(fd, head, (size_t)hlen) < 0 || write_all(fd, msg, len) < 0 ||
	    fsync(fd) < 0)
		goto fail;
	if (close(fd) < 0) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (renameat(in_dfd, env->id, q_dfd, env->id) < 0)
		goto fail;
	if (fsync(q_dfd) < 0) {
		e = errno;
		(void)unlinkat(q_dfd, env->id, 0);
		free(head);
		errno = e;
		return -1;
	}
	free(head);
	return 0;
fail:
	e = errno;
	if (fd >= 0)
		close(fd);
	(void)unlinkat(in_dfd, env->id, 0);
	free(head);
	errno = e;
	return -1;
}

/* ---- one delivery attempt (worker thread) ----------------------------- */

/* One final address of one envelope recipient. */
struct item {
	size_t idx;
	char *final;
	enum alias_kind kind;        /* an address, or a command/file of an alias */
	bool local;
	bool decided;                /* verdict already known (no method call) */
	struct delivery_rcpt r;
};

/* The state of one attempt. */
struct attempt {
	struct qmgr *m;
	const struct qgen *g;        /* the settings it started with */
	struct qmsg *qm;
	struct qenvelope env;
	struct qstatus st;
	int sfd;                     /* status file, opened on first use */
	time_t now;
	bool expired;
	struct item *items;
	size_t n_items, cap_items;
	bool *idx_open;              /* recipient idx still has undone finals */
	bool status_failed;
	bool need_sync;              /* a line other than 'D' awaits fdatasync */
	bool hold;                   /* keep status lines in memory (below) */
	struct sbuf held;            /* lines not written yet */
};

/*
 * final_listed - is this final address already an item of the attempt
 * (another recipient or an alias that leads to the same mailbox)?  Each
 * mailbox gets one copy, as Postfix's duplicate filter gives.
 */
/* same_final - one mailbox: addresses in any case, commands and files exactly */
static bool
same_final(const char *x, const char *y, enum alias_kind kind)
{
	return kind == ALIAS_ADDRESS ? strcasecmp(x, y) == 0 : strcmp(x, y) == 0;
}

static bool
final_listed(const struct attempt *a, const char *final, enum alias_kind kind)
{
	for (size_t i = 0; i < a->n_items; i++)
		if (a->items[i].kind == kind && same_final(a->items[i].final, final, kind))
			return true;
	return false;
}

/* final_done_by_other - was final delivered (or bounced) for another
 * recipient of the message in an earlier attempt? */
static bool
final_done_by_other(const struct attempt *a, size_t idx, const char *final,
    enum alias_kind kind)
{
	for (size_t i = 0; i < a->st.n; i++) {
		const struct qstatus_entry *e = &a->st.e[i];

		if ((e->kind == 'S' || e->kind == 'B') && e->idx != idx &&
		    e->final != NULL && same_final(e->final, final, kind))
			return true;
	}
	return false;
}

static void
add_item(struct attempt *a, size_t idx, const char *final, enum alias_kind kind,
    bool local)
{
	struct item *it;

	if (a->n_items == a->cap_items) {
		a->cap_items = a->cap_items ? a->cap_items * 2 : 8;
		a->items = xrealloc(a->items, a->cap_items * sizeof(*a->items));
	}
	it = &a->items[a->n_items++];
	memset(it, 0, sizeof(*it));
	it->idx = idx;
	it->final = xstrdup(final);
	it->kind = kind;
	it->local = local;
	it->r.address = it->final;
	it->r.orig = a->env.rcpts[idx];
}

static bool
address_is_local(const struct msagate_config *cfg, const char *addr)
{
	const char *at = strrchr(addr, '@');

	return at != NULL && delivery_domain_is_local(cfg, at + 1);
}

/* Re-read the aliases file when it changed (at most once a second). */
static void
aliases_maybe_refresh(struct qmgr *m, time_t now)
{
	char *err = NULL;

	if (m->alias_path == NULL || now - m->alias_checked < ALIASES_RECHECK_SECS)
		return;
	m->alias_checked = now;
	if (m->aliases == NULL) {
		m->aliases = aliases_load(m->alias_path, &err);
	} else if (aliases_refresh(&m->aliases, &err) == 0) {
		m->alias_warned = false;
		return;
	}
	if (err != NULL) {
		if (!m->alias_warned)
			log_warnx("queue: aliases: %s", err);
		m->alias_warned = true;
		free(err);
	} else {
		m->alias_warned = false;
	}
}

/*
 * The final addresses of envelope recipient idx: alias expansion for
 * local ones.  Returns 0, or -1 with *error (the recipient is deferred),
 * or -2 with *error (an alias loop: it bounces).
 */
static int
expand_rcpt(struct attempt *a, size_t idx, char ***out, enum alias_kind **kinds,
    size_t *n, char **error)
{
	struct qmgr *m = a->m;
	const struct msagate_config *cfg = a->g->cfg;
	const char *rcpt = a->env.rcpts[idx];
	struct aliases_policy pol;
	int rc = 0;
	bool have = false;       /* an aliases table was consulted (under the lock) */

	*out = NULL;
	*kinds = NULL;
	*n = 0;
	*error = NULL;
	if (address_is_local(cfg, rcpt)) {
		pthread_mutex_lock(&m->alias_mu);
		aliases_maybe_refresh(m, a->now);
		if ((have = m->aliases != NULL)) {
			memset(&pol, 0, sizeof(pol));
			pol.local_domains = (const char *const *)cfg->relay.local_domains;
			pol.n_local_domains = cfg->relay.n_local_domains;
			pol.recipient_delimiter = cfg->relay.recipient_delimiter ?
			    cfg->relay.recipient_delimiter : "";
			pol.allow_include = cfg->relay.allow_alias_include;
			pol.allow_pipe = cfg->relay.allow_alias_commands;
			pol.allow_file = cfg->relay.allow_alias_files;
			/* a refused command, file or include bounces alone */
			pol.keep_refused = true;
			rc = aliases_expand(m->aliases, &pol, rcpt, out, kinds, n, error);
		}
		pthread_mutex_unlock(&m->alias_mu);
		if (rc < 0)
			return rc;
		if (have && *n == 0) {
			aliases_free_list(*out, 0);
			free(*kinds);
			*out = NULL;
			*kinds = NULL;
		} else if (have) {
			/* bare names from the aliases file: the recipient's domain */
			const char *at = strrchr(rcpt, '@');

			for (size_t i = 0; i < *n; i++) {
				if ((*kinds)[i] == ALIAS_ADDRESS &&
				    strchr((*out)[i], '@') == NULL && at != NULL) {
					char *q = xasprintf("%s%s", (*out)[i], at);

					free((*out)[i]);
					(*out)[i] = q;
				}
			}
			return 0;
		}
	}
	*out = xmalloc(sizeof(char *));
	(*out)[0] = xstrdup(rcpt);
	*kinds = xcalloc(1, sizeof(**kinds));
	(*kinds)[0] = ALIAS_ADDRESS;
	*n = 1;
	return 0;
}

/*
 * The status file, opened (created) on first use; lines held in memory
 * so far are written first.
 */
static int
status_fd(struct attempt *a)
{
	if (a->sfd < 0 && !a->status_failed) {
		a->qm->no_status = false;
		a->sfd = qstatus_open(a->m->st_dfd, a->qm->id);
		if (a->sfd < 0) {
			log_warn("queue: %s: cannot open status file", a->qm->id);
			a->status_failed = true;
		} else if (a->held.len > 0 &&
		    write_all(a->sfd, a->held.s, a->held.len) < 0) {
			log_warn("queue: %s: cannot write status file", a->qm->id);
			a->status_failed = true;
		}
		a->held.len = 0;
		a->hold = false;
	}
	return a->sfd;
}

/* Append a status line; false if it could not be written. */
static bool
record(struct attempt *a, char kind, const struct item *it)
{
	int fd;

	if (a->hold && a->sfd < 0) {
		(void)qstatus_append_mem(&a->held, &a->st, kind, it->idx,
		    it->final, it->r.dsn, it->r.detail);
		if (kind != 'D')
			a->need_sync = true;
		return true;
	}
	if ((fd = status_fd(a)) < 0)
		return false;
	if (qstatus_append(fd, &a->st, kind, it->idx, it->final, it->r.dsn,
	    it->r.detail) < 0) {
		log_warn("queue: %s: cannot write status file", a->qm->id);
		a->status_failed = true;
		return false;
	}
	if (kind != 'D')
		a->need_sync = true;
	return true;
}

/*
 * Make the status lines written so far durable.  Lines that only record a
 * deferral ('D': last error, try count) are not worth a disk flush of
 * their own: lost in a crash, they cost a retry sooner than planned, never
 * a message or a duplicate; so a status file holding only those is left
 * to the kernel's write-back.
 */
static bool
sync_status(struct attempt *a)
{
	if (a->held.len > 0)
		(void)status_fd(a);
	if (a->sfd >= 0 && a->need_sync) {
		if (fdatasync(a->sfd) < 0) {
			log_warn("queue: %s: cannot fsync status file", a->qm->id);
			return false;
		}
		a->need_sync = false;
	}
	return !a->status_failed;
}

static void
log_attempt(struct attempt *a, const struct item *it, const char *relay,
    const char *status)
{
	char to[300], orig[300];
	bool aliased = strcmp(it->final, it->r.orig) != 0;

	delivery_printable(to, sizeof(to), it->final);
	delivery_printable(orig, sizeof(orig), it->r.orig);
	log_info("%s: to=<%s>%s%s%s relay=%s delay=%lld status=%s (%s%s%s)",
	    a->qm->id, to, aliased ? " orig_to=<" : "", aliased ? orig : "",
	    aliased ? ">" : "", relay, (long long)(a->now - a->env.arrival),
	    status, it->r.dsn, it->r.dsn[0] ? " " : "", it->r.detail);
}

/* Deferred past the lifetime: make it a bounce. */
static void
maybe_expire(struct attempt *a, struct item *it)
{
	char why[DELIVERY_DETAIL_MAX];

	if (!a->expired || it->r.status != DELIVERY_DEFER)
		return;
	long long t = (long long)a->g->lifetime;
	/* in the largest whole unit: "5 days", "4 hours", "30 minutes" */
	long long v = t >= 86400 ? t / 86400 : t >= 3600 ? t / 3600 : t >= 60 ? t / 60 : t;
	const char *u = t >= 86400 ? "day" : t >= 3600 ? "hour" : t >= 60 ? "minute" : "second";

	snprintf(why, sizeof(why), "message expired after %lld %s%s in the "
	    "queue; last error: %.250s", v, u, v == 1 ? "" : "s", it->r.detail);
	delivery_set(&it->r, DELIVERY_BOUNCE, "5.4.7", "%s", why);
}

/* A verdict is in: record sent/deferred now; bounces are handled later. */
static void
settle(struct attempt *a, struct item *it, const char *relay)
{
	maybe_expire(a, it);
	switch (it->r.status) {
	case DELIVERY_SENT:
		log_attempt(a, it, relay, "sent");
		(void)record(a, 'S', it);   /* made durable at the attempt's end */
		break;
	case DELIVERY_DEFER:
		log_attempt(a, it, relay, "deferred");
		(void)record(a, 'D', it);
		break;
	case DELIVERY_BOUNCE:
		log_attempt(a, it, relay, "bounced");
		break;
	}
}

/* The header section of the queued message (bounded), for the bounce. */
static char *
read_headers(int fd, long long off, size_t *len)
{
	char *buf = xmalloc(DSN_MAX_HEADERS + 1);
	ssize_t n;
	size_t got = 0;
	char *end;

	while (got < DSN_MAX_HEADERS) {
		n = pread(fd, buf + got, DSN_MAX_HEADERS - got, (off_t)(off + (long long)got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	buf[got] = '\0';
	if ((end = memmem(buf, got, "\r\n\r\n", 4)) != NULL)
		got = (size_t)(end - buf) + 2;
	*len = got;
	return buf;
}

/* The recipients in state 'status', for a DSN; *n is how many (may be 0). */
static struct dsn_rcpt *
dsn_rcpts(const struct attempt *a, enum delivery_status status, size_t *n)
{
	struct dsn_rcpt *dr = xcalloc(a->n_items ? a->n_items : 1, sizeof(*dr));

	*n = 0;
	for (size_t i = 0; i < a->n_items; i++) {
		const struct item *it = &a->items[i];

		if (it->r.status != status)
			continue;
		/* a command or file is not an address: report the recipient */
		dr[*n].final = it->kind == ALIAS_ADDRESS ? it->final : it->r.orig;
		dr[*n].orig = it->r.orig;
		dr[*n].status = it->r.dsn;
		dr[*n].detail = it->r.detail;
		dr[*n].remote = it->r.remote_reply;
		(*n)++;
	}
	return dr;
}

/*
 * Queue a notification (a bounce or a delay warning: 'noun', logged as a
 * sender 'what' notification) to the message's sender, from the null
 * sender; its queue id goes to id_out.  -1 (logged) if it was not queued.
 */
static int
queue_notice(struct attempt *a, const struct sbuf *msg, const char *noun,
    const char *what, char *id_out, size_t id_len)
{
	struct qenvelope nenv;
	char *rcpt = a->env.sender, s[300];

	memset(&nenv, 0, sizeof(nenv));
	nenv.arrival = a->now;
	nenv.sender = "";
	nenv.rcpts = &rcpt;
	nenv.n_rcpts = 1;
	nenv.client = "";
	nenv.helo = "";
	nenv.listener = "bounce";
	nenv.smtputf8 = a->env.smtputf8;     /* a UTF-8 sender needs it too */
	if (qmgr_queue_file(a->m->in_dfd, a->m->q_dfd, &nenv, msg->s,
	    msg->len) < 0) {
		log_warn("queue: %s: cannot queue the %s", a->qm->id, noun);
		return -1;
	}
	delivery_printable(s, sizeof(s), a->env.sender);
	log_info("%s: sender %s notification: %s (to <%s>)", a->qm->id, what,
	    nenv.id, s);
	snprintf(id_out, id_len, "%s", nenv.id);
	return 0;
}

/* Queue one bounce for every bounced item; false if that failed. */
static bool
send_bounce(struct attempt *a, int qfd, long long body_offset)
{
	const struct msagate_config *cfg = a->g->cfg;
	size_t n, hlen;
	struct dsn_rcpt *dr = dsn_rcpts(a, DELIVERY_BOUNCE, &n);
	struct sbuf msg;
	char *headers;
	bool ok;

	headers = read_headers(qfd, body_offset, &hlen);
	sbuf_init(&msg, 0);
	dsn_build(&msg, cfg->hostname ? cfg->hostname : "localhost", &a->env,
	    dr, n, headers, hlen, a->now);
	ok = queue_notice(a, &msg, "bounce", "non-delivery", a->qm->bounce_id,
	    sizeof(a->qm->bounce_id)) == 0;
	sbuf_free(&msg);
	free(headers);
	free(dr);
	return ok;
}

/* Bounced items: DSN (unless the sender is null), then 'B' lines. */
static void
handle_bounces(struct attempt *a, int qfd, long long body_offset)
{
	size_t n = 0;
	bool queued = true;

	for (size_t i = 0; i < a->n_items; i++)
		if (a->items[i].r.status == DELIVERY_BOUNCE)
			n++;
	if (n == 0)
		return;
	if (a->env.sender[0] == '\0')
		log_info("%s: bounce of a null-sender message: %zu recipient%s "
		    "dropped, no notification", a->qm->id, n, n == 1 ? "" : "s");
	else
		queued = send_bounce(a, qfd, body_offset);
	for (size_t i = 0; i < a->n_items; i++) {
		struct item *it = &a->items[i];

		if (it->r.status != DELIVERY_BOUNCE)
			continue;
		if (queued) {
			(void)record(a, 'B', it);
		} else {
			/* try again later rather than lose the notification */
			it->r.status = DELIVERY_DEFER;
			(void)record(a, 'D', it);
		}
	}
	(void)sync_status(a);
}

/*
 * The delay warning: once per message, when recipients are still deferred
 * after relay.delay_warning (and the sender is not null), a DSN with
 * Action: delayed for them, then a fsynced W line.  The warning is queued
 * before the W line is written: a crash in between means a second
 * warning after the restart, never none.
 */
static void
maybe_warn(struct attempt *a, int qfd, long long body_offset)
{
	const struct qgen *g = a->g;
	struct dsn_rcpt *dr;
	struct sbuf msg;
	char *headers;
	size_t n, hlen;
	int fd;

	if (g->delay_warning <= 0 || a->st.warned || a->env.sender[0] == '\0' ||
	    a->now - a->env.arrival < g->delay_warning || a->status_failed)
		return;
	dr = dsn_rcpts(a, DELIVERY_DEFER, &n);
	if (n == 0) {
		free(dr);
		return;
	}
	headers = read_headers(qfd, body_offset, &hlen);
	sbuf_init(&msg, 0);
	dsn_build_delay(&msg, g->cfg->hostname ? g->cfg->hostname : "localhost",
	    &a->env, dr, n, headers, hlen, a->now, a->env.arrival + g->lifetime);
	if (queue_notice(a, &msg, "delay warning", "delay", a->qm->warn_id,
	    sizeof(a->qm->warn_id)) < 0)
		goto out;
	if ((fd = status_fd(a)) < 0 ||
	    qstatus_append_warned(fd, &a->st, a->qm->warn_id) < 0 ||
	    fdatasync(fd) < 0) {
		log_warn("queue: %s: cannot record the delay warning", a->qm->id);
		a->status_failed = true;
	}
out:
	sbuf_free(&msg);
	free(headers);
	free(dr);
}

/*
 * A command or file an alias expanded to (or an include that was not
 * read): refused (5.7.1, bounced alone, as Postfix's local(8) does) unless
 * relay.allow_alias_* says otherwise, else delivered by the helper as
 * relay.alias_user, with Return-Path and Delivered-To (the recipient).
 */
static void
deliver_alias_target(struct attempt *a, struct item *it,
    const struct delivery_msg *dm)
{
	const struct msagate_config *cfg = a->g->cfg;
	const char *relay = it->kind == ALIAS_COMMAND ? "command" :
	    it->kind == ALIAS_FILE ? "file" : "include";
	struct sbuf h;

	it->decided = true;
	if (it->kind == ALIAS_INCLUDE) {
		delivery_set(&it->r, DELIVERY_BOUNCE, "5.7.1", "mail to :include: "
		    "lists is restricted (relay.allow_alias_include)");
	} else if (it->kind == ALIAS_COMMAND && !cfg->relay.allow_alias_commands) {
		delivery_set(&it->r, DELIVERY_BOUNCE, "5.7.1", "mail to commands is "
		    "restricted (relay.allow_alias_commands)");
	} else if (it->kind == ALIAS_FILE && !cfg->relay.allow_alias_files) {
		delivery_set(&it->r, DELIVERY_BOUNCE, "5.7.1", "mail to files is "
		    "restricted (relay.allow_alias_files)");
	} else {
		struct helper_request req;

		sbuf_init(&h, 0);
		sbuf_printf(&h, "Return-Path: <%s>\nDelivered-To: %s\n",
		    a->env.sender, it->r.orig);
		memset(&req, 0, sizeof(req));
		req.kind = it->kind == ALIAS_COMMAND ? HELPER_COMMAND : HELPER_FILE;
		req.target = it->final;
		req.sender = a->env.sender;
		req.rcpt = it->r.orig;
		req.head = h.s;
		deliver_helper_call(&req, dm, &it->r);
		sbuf_free(&h);
	}
	settle(a, it, relay);
}

/* Run method over the undecided items that are local (or foreign). */
static void
deliver_group(struct attempt *a, const struct delivery_msg *dm,
    const struct delivery_method *method, void *mctx, bool local)
{
	const char *relay = method->relay(mctx);
	struct delivery_rcpt *batch;
	size_t *map, nb = 0;

	if (!method->batch) {
		for (size_t i = 0; i < a->n_items; i++) {
			struct item *it = &a->items[i];

			if (it->local != local || it->decided)
				continue;
			method->deliver(mctx, dm, &it->r, 1);
			it->decided = true;
			settle(a, it, relay);
		}
		return;
	}
	batch = xcalloc(a->n_items ? a->n_items : 1, sizeof(*batch));
	map = xcalloc(a->n_items ? a->n_items : 1, sizeof(*map));
	for (size_t i = 0; i < a->n_items; i++) {
		if (a->items[i].local != local || a->items[i].decided)
			continue;
		batch[nb] = a->items[i].r;
		map[nb++] = i;
	}
	if (nb > 0)
		method->deliver(mctx, dm, batch, nb);
	for (size_t j = 0; j < nb; j++) {
		struct item *it = &a->items[map[j]];

		it->r = batch[j];
		it->decided = true;
		settle(a, it, relay);
	}
	free(batch);
	free(map);
}

/* Remove the finished message (size bytes): queue file first, then its status. */
static void
remove_message(struct attempt *a, long long size)
{
	struct qmgr *m = a->m;
	int r = 1;

	/* the file becomes a spare for a new message if the pool has room */
	if (m->spares != NULL)
		r = qspare_put(m->spares, m->q_dfd, a->qm->id, size);
	if (r < 0 && errno == ENOENT)
		r = 0;                   /* deleted with msagatectl meanwhile */
	if (r != 0 && unlinkat(m->q_dfd, a->qm->id, 0) < 0 && errno != ENOENT) {
		log_warn("queue: %s: cannot remove", a->qm->id);
		a->qm->outcome = QO_DEFER;
		return;
	}
	if (!a->qm->no_status && unlinkat(m->st_dfd, a->qm->id, 0) < 0 &&
	    errno != ENOENT)
		log_warn("queue: %s: cannot remove status file", a->qm->id);
	log_info("%s: removed", a->qm->id);
	a->qm->outcome = QO_DONE;
}

/*
 * queue/ID is empty or holds another message: a file reused for a new
 * message (qspare.h) whose old name a crash brought back (on a filesystem
 * without a journal a power loss can keep a directory entry that was
 * renamed away).  It was delivered before its file was reused, and what
 * the file holds now is either acknowledged under its own name or was
 * never acknowledged: only the stale name goes.  (Spares are reused only
 * once their rename out of queue/ is durable, so this is a safety net; a
 * name brought back whose file was not reused yet still holds its own
 * message and is delivered again: a duplicate, never a loss.)
 */
static void
forget_stale_name(struct qmgr *m, struct qmsg *qm, const char *what)
{
	log_warnx("queue: %s: the queue file %s (a name left by a crash); "
	    "name removed", qm->id, what);
	(void)unlinkat(m->q_dfd, qm->id, 0);
	(void)unlinkat(m->st_dfd, qm->id, 0);
	qm->outcome = QO_GONE;
}

/*
 * Parse a queue file's header: from one pread() when it fits in the
 * buffer (all but messages with very many recipients), through stdio on
 * a duplicate of the descriptor otherwise.  0, or -1 if it is unreadable.
 */
static int
read_qheader(int qfd, struct qenvelope *env)
{
	char buf[8192];
	ssize_t n = pread(qfd, buf, sizeof(buf), 0);
	FILE *fp;
	int dfd, r;

	if (n > 0 && (fp = fmemopen(buf, (size_t)n, "r")) != NULL) {
		r = qfile_read_header(fp, env);
		fclose(fp);
		if (r == 0 || n < (ssize_t)sizeof(buf))
			return r;        /* parsed, or the whole file is bad */
	}
	if ((dfd = dup(qfd)) < 0)
		return -1;
	if ((fp = fdopen(dfd, "r")) == NULL) {
		close(dfd);
		return -1;
	}
	r = qfile_read_header(fp, env);
	fclose(fp);
	return r;
}

static void
attempt_message(struct qmgr *m, const struct qgen *g, struct qmsg *qm)
{
	struct attempt a;
	struct delivery_msg dm;
	struct stat sb;
	int qfd;
	bool all_done = true;
	bool *idx_dup = NULL;      /* recipient idx had a copy skipped as a duplicate */

	memset(&a, 0, sizeof(a));
	a.m = m;
	a.g = g;
	a.qm = qm;
	a.sfd = -1;
	sbuf_init(&a.held, 0);
	a.now = time(NULL);
	qm->outcome = QO_DEFER;
	qm->bounce_id[0] = '\0';
	qm->warn_id[0] = '\0';

	if ((qfd = openat(m->q_dfd, qm->id, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0) {
		if (errno == ENOENT) {
			/* deleted with msagatectl meanwhile */
			(void)unlinkat(m->st_dfd, qm->id, 0);
			log_info("%s: removed (msagatectl queue delete)", qm->id);
			qm->outcome = QO_GONE;
		} else {
			log_warn("queue: %s: cannot open", qm->id);
		}
		return;
	}
	if (read_qheader(qfd, &a.env) < 0) {
		if (fstat(qfd, &sb) == 0 && sb.st_size == 0) {
			/* never a committed message (those have a header) */
			forget_stale_name(m, qm, "is empty");
		} else {
			log_warnx("queue: %s: unreadable queue file; left in the queue",
			    qm->id);
		}
		close(qfd);
		return;
	}
	if (fstat(qfd, &sb) < 0) {
		log_warn("queue: %s: fstat", qm->id);
		qenvelope_free(&a.env);
		close(qfd);
		return;
	}
	if (strcmp(a.env.id, qm->id) != 0) {
		char what[64];

		snprintf(what, sizeof(what), "holds message %s", a.env.id);
		forget_stale_name(m, qm, what);
		qenvelope_free(&a.env);
		close(qfd);
		return;
	}
	if (qm->no_status)
		memset(&a.st, 0, sizeof(a.st));
	else if (qstatus_load(m->st_dfd, qm->id, &a.st) < 0) {
		log_warn("queue: %s: cannot read status file; will retry", qm->id);
		goto out;
	}
	a.expired = a.now - a.env.arrival >= g->lifetime;
	a.idx_open = xcalloc(a.env.n_rcpts ? a.env.n_rcpts : 1, sizeof(bool));
	idx_dup = xcalloc(a.env.n_rcpts ? a.env.n_rcpts : 1, sizeof(bool));

	/* what is left to do */
	for (size_t idx = 0; idx < a.env.n_rcpts; idx++) {
		char **finals, *err;
		enum alias_kind *kinds;
		size_t nf, before = a.n_items;
		int xrc;

		if (qstatus_rcpt_complete(&a.st, idx))
			continue;
		if ((xrc = expand_rcpt(&a, idx, &finals, &kinds, &nf, &err)) < 0) {
			add_item(&a, idx, a.env.rcpts[idx], ALIAS_ADDRESS, false);
			if (xrc == -2)      /* as Postfix: mail forwarding loop */
				delivery_set(&a.items[before].r, DELIVERY_BOUNCE, "5.4.6",
				    "mail forwarding loop: %s", err ? err : "error");
			else
				delivery_set(&a.items[before].r, DELIVERY_DEFER, "4.3.5",
				    "alias expansion failed: %s", err ? err : "error");
			a.items[before].decided = true;
			free(err);
			a.idx_open[idx] = true;
			continue;
		}
		for (size_t f = 0; f < nf; f++) {
			if (final_listed(&a, finals[f], kinds[f])) {
				/* delivered (or not) as the other recipient's; this
				 * one is complete only once that copy is done */
				log_debug("%s: %s: %s once only (duplicate)", qm->id,
				    a.env.rcpts[idx], finals[f]);
				idx_dup[idx] = true;
				continue;
			}
			if (final_done_by_other(&a, idx, finals[f], kinds[f])) {
				log_debug("%s: %s: %s already delivered for another "
				    "recipient", qm->id, a.env.rcpts[idx], finals[f]);
				continue;
			}
			if (!qstatus_final_done(&a.st, idx, finals[f]))
				add_item(&a, idx, finals[f], kinds[f],
				    kinds[f] != ALIAS_ADDRESS ||
				    address_is_local(g->cfg, finals[f]));
		}
		aliases_free_list(finals, nf);
		free(kinds);
		a.idx_open[idx] = a.n_items > before;
	}

	/*
	 * One final address: its status lines stay in memory, and when it is
	 * delivered at once the message is removed without a status file
	 * ever being written (a create and a delete fewer per message).  A
	 * kill -9 between the delivery and the removal means one more
	 * delivery, as it would between the delivery and its 'S' line.  With
	 * several, each 'S' line is written as it happens, so a crash in the
	 * middle does not deliver the first ones again.
	 */
	a.hold = a.n_items == 1;

	memset(&dm, 0, sizeof(dm));
	dm.qid = qm->id;
	dm.env = &a.env;
	dm.fd = qfd;
	dm.body_offset = a.env.body_offset;
	dm.body_size = (long long)sb.st_size - a.env.body_offset;

	/* decided without a method: expansion failures, foreign domains */
	for (size_t i = 0; i < a.n_items; i++) {
		struct item *it = &a.items[i];

		if (it->decided) {
			settle(&a, it, "none");
		} else if (it->kind != ALIAS_ADDRESS) {
			deliver_alias_target(&a, it, &dm);
		} else if (!it->local && g->onward == NULL) {
			delivery_set(&it->r, DELIVERY_DEFER, "4.4.0", ONWARD_DETAIL);
			it->decided = true;
			settle(&a, it, "none");
		}
	}
	deliver_group(&a, &dm, g->method, g->mctx, true);
	if (g->onward != NULL)
		deliver_group(&a, &dm, g->onward, g->octx, false);
	handle_bounces(&a, qfd, a.env.body_offset);
	maybe_warn(&a, qfd, a.env.body_offset);

	/* recipients whose every final address is now done */
	for (size_t idx = 0; idx < a.env.n_rcpts; idx++) {
		bool open = false;

		if (qstatus_rcpt_complete(&a.st, idx))
			continue;
		for (size_t i = 0; i < a.n_items; i++)
			if (a.items[i].idx == idx &&
			    !qstatus_final_done(&a.st, idx, a.items[i].final))
				open = true;
		if (a.idx_open[idx] && open) {
			all_done = false;
			continue;
		}
		/* its copies went with another recipient's, not all done yet:
		 * the next attempt expands it again (and skips what is done) */
		if (idx_dup[idx]) {
			bool pending = false;

			for (size_t i = 0; i < a.n_items; i++)
				if (!qstatus_final_done(&a.st, a.items[i].idx, a.items[i].final))
					pending = true;
			if (pending) {
				all_done = false;
				continue;
			}
		}
		struct item c = { .idx = idx };
		if (!record(&a, 'C', &c))
			all_done = false;
	}
	/*
	 * Done with every recipient: the message is removed, so its status
	 * lines need no flush of their own (see the top of this file).
	 * Otherwise flush them now: a recipient marked sent is not delivered
	 * again after a crash.
	 */
	if (all_done)
		remove_message(&a, (long long)sb.st_size);
	if (!all_done || a.qm->outcome == QO_DEFER)
		(void)sync_status(&a);
out:
	close(qfd);
	if (a.sfd >= 0)
		close(a.sfd);
	sbuf_free(&a.held);
	for (size_t i = 0; i < a.n_items; i++)
		free(a.items[i].final);
	free(a.items);
	free(a.idx_open);
	free(idx_dup);
	qstatus_free(&a.st);
	qenvelope_free(&a.env);
}

/*
 * Deliveries run behind the work a client is waiting for (accepting and
 * committing mail): on a busy machine a worker yields the CPU to the
 * SMTP role and the commit first, and catches up in the idle moments
 * (Linux: the nice value of this thread alone).
 */
static void
worker_lower_priority(void)
{
#ifdef __linux__
	(void)setpriority(PRIO_PROCESS, (id_t)gettid(), QMGR_WORKER_NICE);
#endif
	(void)pthread_setname_np(pthread_self(), "queue-deliver");
}

static void *
worker_main(void *arg)
{
	struct qmgr *m = arg;
	struct qmsg *qm;
	struct qgen *g;

	worker_lower_priority();
	pthread_mutex_lock(&m->mu);
	for (;;) {
		while (TAILQ_EMPTY(&m->jobs) && !m->quit)
			pthread_cond_wait(&m->cv, &m->mu);
		if (m->quit)
			break;
		qm = TAILQ_FIRST(&m->jobs);
		TAILQ_REMOVE(&m->jobs, qm, link);
		g = m->g;
		g->refs++;
		pthread_mutex_unlock(&m->mu);
		attempt_message(m, g, qm);
		pthread_mutex_lock(&m->mu);
		if (--g->refs == 0) {
			/* the last attempt of a replaced configuration */
			pthread_mutex_unlock(&m->mu);
			gen_free(g);
			pthread_mutex_lock(&m->mu);
		}
		/* a non-empty list means the loop was told already */
		if (TAILQ_EMPTY(&m->done))
			while (write(m->notify_w, "x", 1) < 0 && errno == EINTR)
				;
		TAILQ_INSERT_TAIL(&m->done, qm, link);
	}
	pthread_mutex_unlock(&m->mu);
	return NULL;
}

/* ---- the scheduler (event loop) ------------------------------------- */

/*
 * Hand ready messages to the delivery threads, a few per thread: a
 * thread that finishes one takes the next without a round trip through
 * the loop (one wake-up per batch, not per message, when mail arrives
 * fast).  At most n_threads deliveries run at once all the same.
 */
#define QMGR_JOBS_PER_THREAD 4
static void
dispatch(struct qmgr *m)
{
	struct qmsg *qm;

	if (m->stopping)
		return;
	pthread_mutex_lock(&m->mu);
	while (m->n_busy < m->n_threads * QMGR_JOBS_PER_THREAD &&
	    (qm = TAILQ_FIRST(&m->ready)) != NULL) {
		TAILQ_REMOVE(&m->ready, qm, link);
		m->n_ready--;
		qm->state = QM_BUSY;
		m->n_busy++;
		TAILQ_INSERT_TAIL(&m->jobs, qm, link);
		/* one worker per job, not all of them for each */
		pthread_cond_signal(&m->cv);
	}
	pthread_mutex_unlock(&m->mu);
}

/* Arm the timer for the earliest waiting message. */
static void
arm_timer(struct qmgr *m)
{
	struct qmsg *qm;
	time_t first = 0, now = time(NULL);
	struct timeval tv;

	TAILQ_FOREACH(qm, &m->waiting, link)
		if (first == 0 || qm->next_try < first)
			first = qm->next_try;
	m->timer_at = first;
	if (first == 0) {
		evtimer_del(m->timer);
		return;
	}
	tv.tv_sec = first > now ? first - now : 0;
	tv.tv_usec = 0;
	evtimer_add(m->timer, &tv);
}

static void
make_ready(struct qmgr *m, struct qmsg *qm)
{
	qm->state = QM_READY;
	TAILQ_INSERT_TAIL(&m->ready, qm, link);
	m->n_ready++;
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct qmgr *m = arg;
	struct qmsg *qm, *next;
	time_t now = time(NULL);

	(void)fd;
	(void)what;
	for (qm = TAILQ_FIRST(&m->waiting); qm != NULL; qm = next) {
		next = TAILQ_NEXT(qm, link);
		if (qm->next_try <= now) {
			TAILQ_REMOVE(&m->waiting, qm, link);
			m->n_waiting--;
			make_ready(m, qm);
		}
	}
	arm_timer(m);
	dispatch(m);
}

static void
notify_cb(evutil_socket_t fd, short what, void *arg)
{
	struct qmgr *m = arg;
	struct qmsg_list fin;
	struct qmsg *qm;
	char buf[64];
	time_t first_new = 0;

	(void)what;
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	TAILQ_INIT(&fin);
	pthread_mutex_lock(&m->mu);
	TAILQ_CONCAT(&fin, &m->done, link);
	pthread_mutex_unlock(&m->mu);
	while ((qm = TAILQ_FIRST(&fin)) != NULL) {
		TAILQ_REMOVE(&fin, qm, link);
		m->n_busy--;
		if (qm->bounce_id[0] != '\0')
			qmgr_add(m, qm->bounce_id);
		if (qm->warn_id[0] != '\0')
			qmgr_add(m, qm->warn_id);
		if (qm->outcome != QO_DEFER) {
			free(qm);
			continue;
		}
		qm->tries++;
		qm->next_try = time(NULL) + (time_t)qmgr_retry_delay(qm->tries,
		    m->g->retry_min, m->g->retry_max);
		qm->state = QM_WAITING;
		TAILQ_INSERT_TAIL(&m->waiting, qm, link);
		m->n_waiting++;
		if (first_new == 0 || qm->next_try < first_new)
			first_new = qm->next_try;
	}
	/*
	 * Re-arm only when a deferred message is due before the armed timer:
	 * a scan of the whole waiting list per deferral would make a large
	 * queue (an outage) cost O(n^2).
	 */
	if (first_new != 0 && (m->timer_at == 0 || first_new < m->timer_at)) {
		time_t now = time(NULL);
		struct timeval tv = { first_new > now ? first_new - now : 0, 0 };

		m->timer_at = first_new;
		evtimer_add(m->timer, &tv);
	}
	dispatch(m);
}

void
qmgr_add(struct qmgr *m, const char *qid)
{
	struct qmsg *qm = xcalloc(1, sizeof(*qm));

	memcpy(qm->id, qid, QID_LEN + 1);
	qm->no_status = true;        /* a new id: no status file yet */
	make_ready(m, qm);
	dispatch(m);
}

size_t
qmgr_flush(struct qmgr *m)
{
	struct qmsg *qm;
	size_t n = 0;

	while ((qm = TAILQ_FIRST(&m->waiting)) != NULL) {
		TAILQ_REMOVE(&m->waiting, qm, link);
		m->n_waiting--;
		if (faccessat(m->q_dfd, qm->id, F_OK, 0) != 0 && errno == ENOENT) {
			/* deleted with msagatectl: not a message to flush */
			(void)unlinkat(m->st_dfd, qm->id, 0);
			log_info("%s: removed (msagatectl queue delete)", qm->id);
			free(qm);
			continue;
		}
		make_ready(m, qm);
		n++;
	}
	/* nothing waits now: the timer is unarmed (the next deferral arms it) */
	evtimer_del(m->timer);
	m->timer_at = 0;
	dispatch(m);
	return n;
}

/* gone_from - take the messages of list l whose file was deleted. */
static size_t
gone_from(struct qmgr *m, struct qmsg_list *l, size_t *count)
{
	struct qmsg *qm, *next;
	size_t n = 0;

	for (qm = TAILQ_FIRST(l); qm != NULL; qm = next) {
		next = TAILQ_NEXT(qm, link);
		if (faccessat(m->q_dfd, qm->id, F_OK, 0) == 0 || errno != ENOENT)
			continue;
		TAILQ_REMOVE(l, qm, link);
		(*count)--;
		(void)unlinkat(m->st_dfd, qm->id, 0);
		log_info("%s: removed (msagatectl queue delete)", qm->id);
		free(qm);
		n++;
	}
	return n;
}

size_t
qmgr_sweep_deleted(struct qmgr *m)
{
	size_t n = gone_from(m, &m->waiting, &m->n_waiting) +
	    gone_from(m, &m->ready, &m->n_ready);

	if (n > 0)
		arm_timer(m);
	return n;
}

void
qmgr_counts(const struct qmgr *m, size_t *waiting, size_t *active)
{
	*waiting = m->n_waiting;
	*active = m->n_ready + m->n_busy;
}

void
qmgr_scan(struct qmgr *m)
{
	DIR *d;
	struct dirent *de;
	char **ids = NULL;
	size_t n = 0, orphans = 0;
	int fd;

	if (qfile_list_ids(m->q_dfd, &ids, &n) != 0)
		fatal("queue: cannot read queue/");

	/* status files whose message is gone (crash between the two unlinks) */
	if ((fd = dup(m->st_dfd)) >= 0 && (d = fdopendir(fd)) != NULL) {
		rewinddir(d);
		while ((de = readdir(d)) != NULL) {
			char *key = de->d_name;

			if (!qid_valid(de->d_name) ||
			    (n > 0 && bsearch(&key, ids, n, sizeof(*ids), qid_cmp) != NULL))
				continue;
			if (unlinkat(m->st_dfd, de->d_name, 0) == 0)
				orphans++;
		}
		closedir(d);
	}
	if (orphans > 0)
		log_info("queue: removed %zu orphaned status file%s", orphans,
		    orphans == 1 ? "" : "s");
	for (size_t i = 0; i < n; i++) {
		struct qmsg *qm = xcalloc(1, sizeof(*qm));

		memcpy(qm->id, ids[i], QID_LEN + 1);
		make_ready(m, qm);
		free(ids[i]);
	}
	free(ids);
	log_info("queue: %zu message%s in the queue", n, n == 1 ? "" : "s");
	dispatch(m);
}

void
qmgr_set_spares(struct qmgr *m, struct qspare *sp)
{
	m->spares = sp;
}

struct qmgr *
qmgr_new(const struct msagate_config *cfg, struct event_base *base, int in_dfd,
    int q_dfd, int st_dfd)
{
	struct qmgr *m;
	int p[2];

	m = xcalloc(1, sizeof(*m));
	if ((m->g = gen_new(cfg, NULL)) == NULL) {
		free(m);
		return NULL;
	}
	m->base = base;
	m->in_dfd = in_dfd;
	m->q_dfd = q_dfd;
	m->st_dfd = st_dfd;
	m->n_workers = cfg->relay.delivery_workers > 0 ?
	    (size_t)cfg->relay.delivery_workers : QMGR_WORKERS;
	if (m->n_workers > QMGR_WORKERS_MAX)
		m->n_workers = QMGR_WORKERS_MAX;
	TAILQ_INIT(&m->ready);
	TAILQ_INIT(&m->waiting);
	TAILQ_INIT(&m->jobs);
	TAILQ_INIT(&m->done);
	pthread_mutex_init(&m->alias_mu, NULL);
	pthread_mutex_init(&m->mu, NULL);
	pthread_cond_init(&m->cv, NULL);
	set_alias_path(m, cfg);
	pthread_mutex_lock(&m->alias_mu);
	aliases_maybe_refresh(m, time(NULL));
	pthread_mutex_unlock(&m->alias_mu);

	if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0)
		fatal("queue: pipe");
	m->notify_r = p[0];
	m->notify_w = p[1];
	m->timer = evtimer_new(base, timer_cb, m);
	m->notify_ev = event_new(base, m->notify_r, EV_READ | EV_PERSIST, notify_cb, m);
	if (m->timer == NULL || m->notify_ev == NULL)
		fatalx("queue: event_new");
	event_add(m->notify_ev, NULL);
	{
		/* workers start with every signal blocked */
		sigset_t all, old;

		sigfillset(&all);
		pthread_sigmask(SIG_BLOCK, &all, &old);
		m->th = xcalloc(m->n_workers, sizeof(*m->th));
		for (size_t i = 0; i < m->n_workers; i++) {
			if (pthread_create(&m->th[i], NULL, worker_main, m) != 0)
				fatalx("queue: cannot start a delivery thread");
			m->n_threads++;
		}
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	gen_log(m->g, m->n_threads, "started");
	return m;
}

int
qmgr_reconfigure(struct qmgr *m, struct msagate_config *cfg)
{
	struct qgen *g, *old;

	if ((g = gen_new(cfg, cfg)) == NULL) {
		config_free(cfg);
		return -1;
	}
	set_alias_path(m, cfg);
	pthread_mutex_lock(&m->mu);
	old = m->g;
	m->g = g;
	if (--old->refs > 0)
		old = NULL;      /* attempts in progress: the last one frees it */
	pthread_mutex_unlock(&m->mu);
	gen_free(old);
	gen_log(g, m->n_threads, "reloaded");
	/* new retry bounds apply from the next failure; due ones go now */
	arm_timer(m);
	return 0;
}

void
qmgr_stop(struct qmgr *m)
{
	struct qmsg *qm;

	if (m == NULL || m->stopping)
		return;
	m->stopping = true;
	pthread_mutex_lock(&m->mu);
	/* jobs not started yet stay in the queue for the next start */
	while ((qm = TAILQ_FIRST(&m->jobs)) != NULL) {
		TAILQ_REMOVE(&m->jobs, qm, link);
		free(qm);
		m->n_busy--;
	}
	m->quit = true;
	pthread_cond_broadcast(&m->cv);
	pthread_mutex_unlock(&m->mu);
	if (m->n_busy > 0)
		log_info("queue: waiting for %zu delivery attempt%s in progress",
		    m->n_busy, m->n_busy == 1 ? "" : "s");
	for (size_t i = 0; i < m->n_threads; i++)
		pthread_join(m->th[i], NULL);
	m->n_threads = 0;
}

static void
free_list(struct qmsg_list *l)
{
	struct qmsg *qm;

	while ((qm = TAILQ_FIRST(l)) != NULL) {
		TAILQ_REMOVE(l, qm, link);
		free(qm);
	}
}

void
qmgr_free(struct qmgr *m)
{
	if (m == NULL)
		return;
	qmgr_stop(m);
	free_list(&m->ready);
	free_list(&m->waiting);
	free_list(&m->jobs);
	free_list(&m->done);
	event_free(m->timer);
	event_free(m->notify_ev);
	close(m->notify_r);
	close(m->notify_w);
	gen_free(m->g);
	aliases_free(m->aliases);
	free(m->alias_path);
	pthread_mutex_destroy(&m->alias_mu);
	pthread_mutex_destroy(&m->mu);
	pthread_cond_destroy(&m->cv);
	free(m->th);
	free(m);
}
