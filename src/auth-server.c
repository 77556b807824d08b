/*
 * auth-server.c - the Dovecot auth protocol, server side (see
 * auth-server.h and ../shared/spec/dovecot-auth-protocol.md).
 *
 * The event loop (main thread) owns every connection and request: it
 * reads lines, checks them, answers protocol errors, and writes replies
 * (the connections themselves, shared with the userdb socket, are
 * src/auth-conn.c's).
 * Mechanism steps go to a small pool of worker threads through a job
 * queue; finished steps come back through a done queue and a pipe that
 * wakes the loop (one byte for however many steps finish before the loop
 * takes them).  A request is on at most one queue and touched by one
 * thread at a time: while it is queued or running (RS_BUSY) the loop does
 * not look inside it; if its client goes away meanwhile it is only marked
 * orphaned and freed when it comes back.
 *
 * The first step of PLAIN/LOGIN is tried on the loop itself
 * (auth_sasl_step_fast): when every backend it needs can answer without
 * blocking or hashing (a {PLAIN} passwd-file entry, a credential cache
 * hit) the request never goes near a thread; otherwise the attempt is
 * thrown away and the step goes to a worker as before.  Hashes, PAM and
 * an upstream Dovecot (outside proxy mode) therefore never run here.
 * The request timeout is only armed for requests that wait (a worker, a
 * CONT, a penalty, the upstream).
 *
 * Final answers are paced: credential FAILs wait failure_delay_ms, and
 * every final answer waits until min_time_ms after the AUTH arrived, on
 * libevent timers (the loop never sleeps).  OK and CONT are never held
 * beyond min_time.
 *
 * Proxy mode (set.upstream): the chain is one upstream Dovecot, which runs
 * the mechanisms itself.  AUTH/CONT are forwarded with src/authc.c on this
 * loop (no worker threads), its CONT/OK/FAIL come back; the pacing, the
 * penalties and the request timeout stay ours.  With a credential cache
 * (set.cache: only with auth.cache_verdicts), a PLAIN AUTH whose initial
 * response, service and client (rip, lip, secured) got an OK a short
 * while ago is answered OK from the cache on this loop, paced and counted
 * as any OK; only OKs are cached.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "auth-cache.h"
#include "auth-conn.h"
#include "auth-proto.h"
#include "authc.h"
#include "auth-sasl.h"
#include "auth-server.h"
#include "backend.h"
#include "auth-penalty.h"
#include "log.h"
#include "util.h"

#define REQ_BUCKETS		256
#define MAX_REQUESTS_PER_CLIENT	16384
#define DEFAULT_MAX_CLIENTS	1024
#define MAX_WORKERS		64

enum client_state { CS_VERSION, CS_CPID, CS_READY };
enum req_state { RS_WAIT_CONT, RS_BUSY, RS_FINISHING, RS_PENALTY, RS_UPSTREAM };

struct auth_request {
	TAILQ_ENTRY(auth_request) qentry;   /* job queue or done queue */
	LIST_ENTRY(auth_request) hentry;    /* client's in-flight table */
	struct auth_server *srv;
	struct auth_client *client;         /* NULL once orphaned */
	uint32_t id;
	const struct auth_mech *mech;
	struct auth_sasl_req *sasl;
	char rip[64];
	char service[64];
	uint64_t started_ms;
	uint64_t input_ms;                  /* last step began (AUTH, end of a
	                                       penalty, CONT): failure_delay
	                                       counts from here */
	enum req_state state;
	bool orphan;                        /* free when the worker returns it */
	bool in_table;
	struct event *timeout_ev;
	struct event *delay_ev;
	struct event *penalty_ev;           /* brute-force delay before the start */
	bool no_penalty;
	char *pending;                      /* final line held back */
	/* the job: input for the worker, its result for the loop */
	unsigned char *in;
	size_t inlen;
	bool have_in;
	enum auth_sasl_status st;
	char *out_b64;
	/* proxy mode */
	char lip[64];
	bool secured;
	char *resp_b64;                     /* initial response, until sent */
	uint32_t up_id;                     /* upstream request, 0: none */
	struct auth_cache_key ck;           /* its cache key, when ck_set */
	bool ck_set;
};

TAILQ_HEAD(req_queue, auth_request);
TAILQ_HEAD(job_queue, auth_job);
LIST_HEAD(req_list, auth_request);

struct auth_client {
	struct auth_conn conn;              /* id: the CUID */
	struct auth_server *srv;
	unsigned int minor;
	enum client_state state;
	size_t n_requests;
	struct req_list table[REQ_BUCKETS];
};

struct auth_server {
	struct event_base *base;
	struct evconnlistener *listener;
	struct evconnlistener *more[AUTH_SERVER_MAX_LISTENERS];  /* auth.listeners */
	size_t n_more;
	struct backend_chain *chain;
	struct auth_server_settings set;
	struct auth_conn_pool clients;

	/* worker pool */
	pthread_t workers[MAX_WORKERS];
	int n_workers;
	pthread_mutex_t qlock;
	pthread_cond_t qcond;
	struct req_queue jobs;              /* qlock */
	struct req_queue done;              /* qlock */
	struct job_queue gjobs;             /* qlock: generic jobs to run */
	struct job_queue gdone;             /* qlock: generic jobs that ran */
	bool gjob_turn;                     /* qlock: alternate with requests */
	bool stopping;                      /* qlock */
	bool reload_pending;                /* qlock */
	bool wake_pending;                  /* qlock: a byte is in wake[] */
	int wake[2];                        /* workers -> loop */
	struct event *wake_ev;
	struct auth_server_stats stats;     /* the loop's */
};

static void client_free(void *arg);
static unsigned char *decode_b64(const char *s, size_t *len);

/* copy_str - src into dst (size > 0), truncated, NUL-terminated (what
 * snprintf "%s" does, without its formatting machinery per request). */
static void
copy_str(char *dst, size_t size, const char *src)
{
	size_t n = strnlen(src, size - 1);

	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* ---- penalties ------------------------------------------------------ */

/*
 * penalty_update - count a final result against the client address
 * (src/auth-penalty.c), unless the request carried `no-penalty`.
 */
static void
penalty_update(const struct auth_request *r, bool success)
{
	if (r->srv->set.penalty != NULL && !r->no_penalty && r->rip[0] != '\0')
		penalty_record(r->srv->set.penalty, r->rip, success, time(NULL));
}

/* ---- worker pool ----------------------------------------------------- */

/*
 * wake_loop - tell the loop that something is done; called with qlock.
 * One byte stays in the pipe until the loop has taken the done queues
 * (wake_cb), however many steps finish meanwhile: a burst of answers
 * costs one write and one wake-up, not one per request.
 */
static void
wake_loop(struct auth_server *srv)
{
	if (srv->wake_pending)
		return;
	srv->wake_pending = true;
	if (write(srv->wake[1], "x", 1) == -1 && errno != EAGAIN) {
		/* EAGAIN: the pipe is full, the loop wakes anyway */
		srv->wake_pending = false;
		log_warn("auth: wake pipe");
	}
}

/*
 * worker_main - run reloads, AUTH steps and generic jobs.  When both
 * kinds wait, they take turns, so that a burst of one cannot starve the
 * other.
 */
static void *
worker_main(void *arg)
{
	struct auth_server *srv = arg;
	struct auth_request *r;
	struct auth_job *j;

	pthread_mutex_lock(&srv->qlock);
	for (;;) {
		while (!srv->stopping && !srv->reload_pending &&
		    TAILQ_EMPTY(&srv->jobs) && TAILQ_EMPTY(&srv->gjobs))
			pthread_cond_wait(&srv->qcond, &srv->qlock);
		if (srv->stopping)
			break;
		if (srv->reload_pending) {
			int failed;
			srv->reload_pending = false;
			pthread_mutex_unlock(&srv->qlock);
			failed = backend_chain_reload(srv->chain);
			if (failed)
				log_warnx("auth: reload: %d backend(s) kept their old data",
				    failed);
			pthread_mutex_lock(&srv->qlock);
			continue;
		}
		if (!TAILQ_EMPTY(&srv->gjobs) &&
		    (TAILQ_EMPTY(&srv->jobs) || srv->gjob_turn)) {
			srv->gjob_turn = false;
			j = TAILQ_FIRST(&srv->gjobs);
			TAILQ_REMOVE(&srv->gjobs, j, entry);
			pthread_mutex_unlock(&srv->qlock);
			j->work(j->arg);
			pthread_mutex_lock(&srv->qlock);
			TAILQ_INSERT_TAIL(&srv->gdone, j, entry);
			wake_loop(srv);
			continue;
		}
		srv->gjob_turn = true;
		r = TAILQ_FIRST(&srv->jobs);
		TAILQ_REMOVE(&srv->jobs, r, qentry);
		pthread_mutex_unlock(&srv->qlock);

		r->st = auth_sasl_step(r->sasl, r->in, r->inlen, r->have_in,
		    &r->out_b64);
		if (r->in) {
			secure_zero(r->in, r->inlen);
			free(r->in);
			r->in = NULL;
		}

		pthread_mutex_lock(&srv->qlock);
		TAILQ_INSERT_TAIL(&srv->done, r, qentry);
		wake_loop(srv);
	}
	pthread_mutex_unlock(&srv->qlock);
	return NULL;
}

void
auth_server_submit_job(struct auth_server *srv, struct auth_job *job)
{
	pthread_mutex_lock(&srv->qlock);
	TAILQ_INSERT_TAIL(&srv->gjobs, job, entry);
	pthread_cond_signal(&srv->qcond);
	pthread_mutex_unlock(&srv->qlock);
}

static void
job_submit(struct auth_request *r)
{
	struct auth_server *srv = r->srv;

	r->state = RS_BUSY;
	srv->stats.steps_worker++;
	pthread_mutex_lock(&srv->qlock);
	TAILQ_INSERT_TAIL(&srv->jobs, r, qentry);
	pthread_cond_signal(&srv->qcond);
	pthread_mutex_unlock(&srv->qlock);
}

/* ---- requests -------------------------------------------------------- */

static struct req_list *
req_bucket(struct auth_client *c, uint32_t id)
{
	return &c->table[id % REQ_BUCKETS];
}

static struct auth_request *
req_find(struct auth_client *c, uint32_t id)
{
	struct auth_request *r;

	LIST_FOREACH(r, req_bucket(c, id), hentry)
		if (r->id == id)
			return r;
	return NULL;
}

static void
req_unlink(struct auth_request *r)
{
	if (r->in_table) {
		LIST_REMOVE(r, hentry);
		r->in_table = false;
		r->client->n_requests--;
	}
}

static void
req_free(struct auth_request *r)
{
	if (r->timeout_ev)
		event_free(r->timeout_ev);
	if (r->delay_ev)
		event_free(r->delay_ev);
	if (r->penalty_ev)
		event_free(r->penalty_ev);
	auth_sasl_req_free(r->sasl);
	if (r->in) {
		secure_zero(r->in, r->inlen);
		free(r->in);
	}
	free(r->out_b64);
	free(r->pending);
	if (r->resp_b64) {
		secure_zero(r->resp_b64, strlen(r->resp_b64));
		free(r->resp_b64);
	}
	free(r);
}

/* req_drop - forget a request now (CANCEL, timeout, disconnect).  A busy
 * one is left to its worker and freed when it comes back. */
static void
req_drop(struct auth_request *r)
{
	if (r->client)
		req_unlink(r);
	r->client = NULL;
	if (r->up_id != 0) {
		/* its callback will not run again */
		authc_abort(r->srv->set.upstream, r->up_id);
		r->up_id = 0;
	}
	if (r->state == RS_BUSY) {
		r->orphan = true;
		if (r->timeout_ev)
			event_del(r->timeout_ev);
		return;
	}
	req_free(r);
}

static void
req_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct auth_request *r = arg;

	(void)fd;
	(void)what;
	/* Dovecot drops it silently; a later CONT gets "timed out". */
	log_info("auth: request %u timed out (mech=%s)", r->id, r->mech->name);
	req_drop(r);
}

/*
 * req_arm_timeout - start r's request timeout (from now; once: later
 * calls keep the first deadline).  Only requests that will wait get one;
 * one answered at once on the loop never needs it.
 */
static void
req_arm_timeout(struct auth_request *r)
{
	struct timeval tv;
	int ms = r->srv->set.request_timeout_ms;

	if (r->timeout_ev != NULL)
		return;
	if ((r->timeout_ev = evtimer_new(r->srv->base, req_timeout_cb, r)) == NULL)
		return;
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(r->timeout_ev, &tv);
}

/* ---- final answers --------------------------------------------------- */

static void
req_send_pending(struct auth_request *r)
{
	struct auth_client *c = r->client;

	if (c != NULL && r->pending != NULL)
		auth_conn_write(&c->conn, r->pending, strlen(r->pending));
	req_drop(r);
}

static void
req_delay_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	req_send_pending(arg);
}

/*
 * req_due - when the final answer of r may go: min_time after AUTH and,
 * for failures, failure_delay after the step that failed began (the
 * client's last input), not after the check ended: a password hash that
 * ran (a user that exists) and one that did not (an unknown user, a
 * cheaper scheme) then take the same time to fail.
 */
static uint64_t
req_due(const struct auth_request *r, bool failure)
{
	uint64_t due = r->started_ms + (uint64_t)r->srv->set.min_time_ms;

	if (failure && r->input_ms + (uint64_t)r->srv->set.failure_delay_ms > due)
		due = r->input_ms + (uint64_t)r->srv->set.failure_delay_ms;
	return due;
}

/*
 * req_finish - hold the final line until min_time after AUTH (and, for
 * failures, failure_delay after the last step began: req_due), then send
 * it and forget the request.
 */
static void
req_finish(struct auth_request *r, char *line, bool failure)
{
	struct auth_server *srv = r->srv;
	uint64_t now = now_ms(), due;

	r->state = RS_FINISHING;
	r->pending = line;
	if (r->timeout_ev)
		event_del(r->timeout_ev);
	due = req_due(r, failure);
	if (due <= now) {
		req_send_pending(r);
		return;
	}
	r->delay_ev = evtimer_new(srv->base, req_delay_cb, r);
	if (r->delay_ev == NULL) {
		req_send_pending(r);
		return;
	}
	{
		struct timeval tv;
		uint64_t d = due - now;
		tv.tv_sec = (time_t)(d / 1000);
		tv.tv_usec = (suseconds_t)((d % 1000) * 1000);
		evtimer_add(r->delay_ev, &tv);
	}
}

/* req_finish_copy - req_finish with a copy of line (len bytes) when it
 * must be held; sent straight from line when it may go now. */
static void
req_finish_copy(struct auth_request *r, const char *line, size_t len,
    bool failure)
{
	uint64_t now = now_ms();

	if (req_due(r, failure) > now) {
		req_finish(r, xstrdup(line), failure);
		return;
	}
	r->state = RS_FINISHING;
	if (r->timeout_ev)
		event_del(r->timeout_ev);
	if (r->client != NULL)
		auth_conn_write(&r->client->conn, line, len);
	req_drop(r);
}

/*
 * safe_or_dash - a client-supplied value as one key=value token of a log
 * line: log_safe, and a space shown as '?' too, so that "user=a b" cannot
 * end the field early (the fail2ban filter reads user=\S*); "-" if empty.
 */
static const char *
safe_or_dash(char *buf, size_t len, const char *s)
{
	if (s == NULL || *s == '\0')
		return "-";
	log_safe(buf, len, s, 128);
	for (char *p = buf; *p; p++)
		if (*p == ' ')
			*p = '?';
	return buf;
}

/* is_internal_field - passdb fields the backends act on; never sent. */
static bool
is_internal_field(const char *tok)
{
	static const char *const internal[] = { "nologin", "allow_nets",
	    "nodelay", "nopassword", "noauthenticate", "password",
	    "secret", "code", "resp" };
	size_t i, n;

	for (i = 0; i < sizeof(internal) / sizeof(internal[0]); i++) {
		n = strlen(internal[i]);
		if (strncmp(tok, internal[i], n) == 0 &&
		    (tok[n] == '\0' || tok[n] == '='))
			return true;
	}
	return false;
}

/* append_extra - passdb extra fields "a=b c" -> "\ta=b\tc", escaped. */
static void
append_extra(struct sbuf *b, const char *extra)
{
	char *copy, *tok, *save = NULL;

	if (extra == NULL || *extra == '\0')
		return;
	copy = xstrdup(extra);
	for (tok = strtok_r(copy, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		/* never hand out anything password-like or user= twice */
		if (strncmp(tok, "user=", 5) == 0 || strncmp(tok, "pass", 4) == 0 ||
		    strncmp(tok, "userdb_", 7) == 0 || is_internal_field(tok))
			continue;
		sbuf_addstr(b, "\t");
		auth_proto_escape(b, tok);
	}
	free(copy);
}

/* req_done - a worker finished a step of r: answer the client. */
static void
req_done(struct auth_request *r)
{
	struct auth_client *c = r->client;
	const char *user = auth_sasl_req_user(r->sasl);
	enum auth_verdict v = auth_sasl_req_verdict(r->sasl);
	char su[160], srip[80], ssvc[80];
	struct sbuf b;

	if (r->orphan || c == NULL) {
		req_free(r);
		return;
	}
	if (r->st == AUTH_SASL_DEFERRED)
		r->st = AUTH_SASL_TEMPFAIL;    /* never from a worker's step */
	sbuf_init(&b, 0);
	switch (r->st) {
	case AUTH_SASL_CONTINUE:
		r->state = RS_WAIT_CONT;
		auth_conn_printf(&c->conn, "CONT\t%u\t%s\n", r->id,
		    r->out_b64 ? r->out_b64 : "");
		free(r->out_b64);
		r->out_b64 = NULL;
		break;
	case AUTH_SASL_OK:
		sbuf_printf(&b, "OK\t%u\tuser=", r->id);
		auth_proto_escape(&b, user);
		append_extra(&b, auth_sasl_req_extra(r->sasl));
		if (r->out_b64)
			sbuf_printf(&b, "\tresp=%s", r->out_b64);
		sbuf_addstr(&b, "\n");
		log_info("auth ok: rip=%s user=%s mech=%s service=%s",
		    safe_or_dash(srip, sizeof(srip), r->rip),
		    safe_or_dash(su, sizeof(su), user), r->mech->name,
		    safe_or_dash(ssvc, sizeof(ssvc), r->service));
		penalty_update(r, true);
		req_finish_copy(r, b.s, b.len, false);
		break;
	case AUTH_SASL_FAIL:
	case AUTH_SASL_TEMPFAIL:
	case AUTH_SASL_DEFERRED:
		sbuf_printf(&b, "FAIL\t%u", r->id);
		if (*user) {
			sbuf_addstr(&b, "\tuser=");
			auth_proto_escape(&b, user);
		}
		if (r->st == AUTH_SASL_TEMPFAIL)
			sbuf_addstr(&b, "\tcode=temp_fail");
		else if (v == VERDICT_DISABLED)
			sbuf_addstr(&b, auth_sasl_req_pass_expired(r->sasl) ?
			    "\tcode=pass_expired" : "\tcode=user_disabled");
		sbuf_addstr(&b, "\n");
		if (r->st == AUTH_SASL_TEMPFAIL)
			log_warnx("auth tempfail: rip=%s user=%s mech=%s (backend error)",
			    safe_or_dash(srip, sizeof(srip), r->rip),
			    safe_or_dash(su, sizeof(su), user), r->mech->name);
		else {
			const char *why = auth_sasl_req_reason(r->sasl);
			char reason[48] = "";

			if (why != NULL && *why != '\0')
				snprintf(reason, sizeof(reason), " (%s)", why);
			log_info("auth failed: rip=%s user=%s mech=%s%s",
			    safe_or_dash(srip, sizeof(srip), r->rip),
			    safe_or_dash(su, sizeof(su), user), r->mech->name,
			    v == VERDICT_AUTHZ ? " (authorization identity refused)" :
			    v == VERDICT_DISABLED ? " (account disabled)" : reason);
		}
		penalty_update(r, false);
		req_finish_copy(r, b.s, b.len, true);
		break;
	}
	sbuf_free(&b);
}

/* ---- proxy mode: an upstream Dovecot runs the mechanisms -------------- */

/* field_value - the value of "name=" among TAB-separated fields, copied
 * into out (truncated); "" when absent. */
static void
field_value(const char *fields, const char *name, char *out, size_t size)
{
	size_t n = strlen(name);
	const char *p = fields;

	out[0] = '\0';
	while (p != NULL && *p != '\0') {
		if (strncmp(p, name, n) == 0 && p[n] == '=') {
			size_t len = strcspn(p + n + 1, "\t");
			if (len >= size)
				len = size - 1;
			memcpy(out, p + n + 1, len);
			out[len] = '\0';
			return;
		}
		p = strchr(p, '\t');
		if (p != NULL)
			p++;
	}
}

/* has_field - is "name" or "name=..." among TAB-separated fields? */
static bool
has_field(const char *fields, const char *name)
{
	size_t n = strlen(name);
	const char *p = fields;

	while (p != NULL && *p != '\0') {
		if (strncmp(p, name, n) == 0 &&
		    (p[n] == '\0' || p[n] == '\t' || p[n] == '='))
			return true;
		p = strchr(p, '\t');
		if (p != NULL)
			p++;
	}
	return false;
}

/* proxy_answer_ok - the final OK for r as user (from the upstream or the
 * cache): logged, counted and paced as every OK. */
static void
proxy_answer_ok(struct auth_request *r, const char *user, bool cached)
{
	char su[160], srip[80], ssvc[80];
	struct sbuf b;

	sbuf_init(&b, 0);
	sbuf_printf(&b, "OK\t%u\tuser=", r->id);
	auth_proto_escape(&b, user);
	sbuf_addstr(&b, "\n");
	log_info("auth ok: rip=%s user=%s mech=%s service=%s (upstream%s)",
	    safe_or_dash(srip, sizeof(srip), r->rip),
	    safe_or_dash(su, sizeof(su), user), r->mech->name,
	    safe_or_dash(ssvc, sizeof(ssvc), r->service), cached ? ", cached" : "");
	penalty_update(r, true);
	req_finish_copy(r, b.s, b.len, false);
	sbuf_free(&b);
}

/*
 * proxy_cache_lookup - a PLAIN AUTH of r with an initial response: its
 * key (the whole response - authzid, user, password - with service, rip,
 * lip and secured) into r->ck; true with the user name when a live entry
 * says the upstream accepted it.  Nothing decoded is kept.
 */
static bool
proxy_cache_lookup(struct auth_request *r, char *user, size_t size)
{
	static const char tag[] = "msagate dovecot-proxy PLAIN v1";
	struct auth_cache *cache = r->srv->set.cache;
	unsigned char *raw;
	size_t rawlen, len = size - 1;
	char sec = r->secured ? '1' : '0';
	bool hit;

	if (cache == NULL || r->resp_b64 == NULL ||
	    strcmp(r->mech->name, "PLAIN") != 0 ||
	    (raw = decode_b64(r->resp_b64, &rawlen)) == NULL)
		return false;
	{
		struct auth_cache_field f[] = {
			{ tag, sizeof(tag) - 1 }, { r->service, strlen(r->service) },
			{ r->rip, strlen(r->rip) }, { r->lip, strlen(r->lip) },
			{ &sec, 1 }, { raw, rawlen },
		};
		r->ck_set = auth_cache_key(cache, f, sizeof(f) / sizeof(f[0]),
		    &r->ck) == 0;
	}
	secure_zero(raw, rawlen);
	free(raw);
	if (!r->ck_set)
		return false;
	hit = auth_cache_lookup(cache, &r->ck, user, &len) && len > 0 &&
	    len < size;
	user[hit ? len : 0] = '\0';
	auth_cache_log_debug(cache, hit, "upstream Dovecot", hit ? user : "-");
	return hit;
}

/*
 * proxy_cb - a step of the upstream request of r: answer our client.  An
 * OK that asks for nologin or proxying is not a login here (as in the
 * dovecot backend): it is answered as a failure.
 */
static void
proxy_cb(void *ctx, enum authc_result res, const char *data, const char *extra)
{
	struct auth_request *r = ctx;
	struct auth_client *c = r->client;
	char su[160], srip[80], user[BACKEND_MAX_USER + 1];
	struct sbuf b;

	if (c == NULL)
		return;           /* cannot happen: a dropped request is aborted */
	if (res == AUTHC_CONT) {
		r->state = RS_WAIT_CONT;
		auth_conn_printf(&c->conn, "CONT\t%u\t%s\n", r->id, data ? data : "");
		return;
	}
	r->up_id = 0;             /* the upstream request is over */
	if (res == AUTHC_OK && (has_field(extra, "nologin") || has_field(extra, "proxy"))) {
		log_warnx("auth: upstream says OK with nologin/proxy for rip=%s; "
		    "treated as a failure", safe_or_dash(srip, sizeof(srip), r->rip));
		res = AUTHC_FAIL;
		extra = NULL;
	}
	sbuf_init(&b, 0);
	switch (res) {
	case AUTHC_OK:
		snprintf(user, sizeof(user), "%s", data ? data : "");
		if (r->ck_set && user[0] != '\0')
			auth_cache_insert(r->srv->set.cache, &r->ck, user, strlen(user));
		proxy_answer_ok(r, user, false);
		break;
	case AUTHC_FAIL: {
		char code[32];

		field_value(extra, "user", user, sizeof(user));
		field_value(extra, "code", code, sizeof(code));
		sbuf_printf(&b, "FAIL\t%u", r->id);
		if (user[0] != '\0') {
			sbuf_addstr(&b, "\tuser=");
			auth_proto_escape(&b, user);
		}
		/* the account codes pass through; anything else is a plain no */
		if (strcmp(code, "user_disabled") == 0 || strcmp(code, "pass_expired") == 0)
			sbuf_printf(&b, "\tcode=%s", code);
		sbuf_addstr(&b, "\n");
		log_info("auth failed: rip=%s user=%s mech=%s (upstream)",
		    safe_or_dash(srip, sizeof(srip), r->rip),
		    safe_or_dash(su, sizeof(su), user), r->mech->name);
		penalty_update(r, false);
		req_finish_copy(r, b.s, b.len, true);
		break;
	}
	case AUTHC_TEMPFAIL:
		sbuf_printf(&b, "FAIL\t%u\tcode=temp_fail\n", r->id);
		log_warnx("auth tempfail: rip=%s mech=%s (upstream: %s)",
		    safe_or_dash(srip, sizeof(srip), r->rip), r->mech->name,
		    safe_or_dash(su, sizeof(su), data));
		req_finish_copy(r, b.s, b.len, true);
		break;
	case AUTHC_BADB64:
	default:
		sbuf_printf(&b, "FAIL\t%u\tcode=invalid_base64\n", r->id);
		req_finish_copy(r, b.s, b.len, false);
		break;
	}
	sbuf_free(&b);
}

/* drop_resp - wipe and forget the initial response of r. */
static void
drop_resp(struct auth_request *r)
{
	if (r->resp_b64 != NULL) {
		secure_zero(r->resp_b64, strlen(r->resp_b64));
		free(r->resp_b64);
		r->resp_b64 = NULL;
	}
}

/* proxy_begin - answer the AUTH of r from the cache, or forward it to the
 * upstream. */
static void
proxy_begin(struct auth_request *r)
{
	struct authc_info info = {
		.service = r->service,
		.local_ip = r->lip,
		.remote_ip = r->rip,
		.secured = r->secured,
		/* our own penalties apply; the upstream must not add its own
		 * for the client address behind us */
		.no_penalty = true,
	};
	char user[BACKEND_MAX_USER + 1];

	r->state = RS_UPSTREAM;
	if (proxy_cache_lookup(r, user, sizeof(user))) {
		drop_resp(r);
		proxy_answer_ok(r, user, true);
		return;
	}
	req_arm_timeout(r);
	r->up_id = authc_begin(r->srv->set.upstream, r->mech->name, r->resp_b64,
	    &info, proxy_cb, r);
	drop_resp(r);
}

/*
 * req_step_fast - the first step of r (PLAIN/LOGIN) here on the loop, if
 * the backends can answer it without blocking or hashing; true when r
 * was answered (and may be gone), false when it still needs a worker.
 */
static bool
req_step_fast(struct auth_request *r)
{
	if (!auth_sasl_can_step_fast(r->sasl))
		return false;
	r->state = RS_BUSY;
	r->st = auth_sasl_step_fast(r->sasl, r->in, r->inlen, r->have_in,
	    &r->out_b64);
	if (r->st == AUTH_SASL_DEFERRED)
		return false;
	r->srv->stats.steps_loop++;
	if (r->in) {
		secure_zero(r->in, r->inlen);
		free(r->in);
		r->in = NULL;
	}
	if (r->st == AUTH_SASL_CONTINUE)
		req_arm_timeout(r);           /* now it waits for a CONT */
	req_done(r);
	return true;
}

/* req_start - run the first step of r: here when that is cheap, else a
 * worker, or the upstream (proxy mode). */
static void
req_start(struct auth_request *r)
{
	r->input_ms = now_ms();
	if (r->srv->set.upstream != NULL)
		proxy_begin(r);
	else if (!req_step_fast(r)) {
		req_arm_timeout(r);
		job_submit(r);
	}
}

static void
wake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct auth_server *srv = arg;
	struct req_queue done;
	struct job_queue gdone;
	struct auth_request *r;
	struct auth_job *j;
	char buf[256];

	(void)what;
	srv->stats.wakeups++;
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	TAILQ_INIT(&done);
	TAILQ_INIT(&gdone);
	/* the pipe is drained first: a step finishing from here on writes
	 * again (wake_pending is cleared below, under the same lock) */
	pthread_mutex_lock(&srv->qlock);
	TAILQ_CONCAT(&done, &srv->done, qentry);
	TAILQ_CONCAT(&gdone, &srv->gdone, entry);
	srv->wake_pending = false;
	pthread_mutex_unlock(&srv->qlock);
	while ((r = TAILQ_FIRST(&done)) != NULL) {
		TAILQ_REMOVE(&done, r, qentry);
		req_done(r);
	}
	while ((j = TAILQ_FIRST(&gdone)) != NULL) {
		TAILQ_REMOVE(&gdone, j, entry);
		j->done(j->arg, 1);
	}
}

/* ---- commands -------------------------------------------------------- */

/* proto_error - Dovecot's answer to a broken client: log BUG, disconnect. */
static void
proto_error(struct auth_client *c, const char *what)
{
	auth_conn_proto_error(&c->conn, what);
}

/* decode_b64 - s ("" or "=": empty) strictly decoded into a malloc'd,
 * NUL-terminated buffer; NULL when s is not valid base64 (exactly what
 * auth_proto_b64_ok refuses). */
static unsigned char *
decode_b64(const char *s, size_t *len)
{
	size_t n = strlen(s);
	unsigned char *out;
	ssize_t r;

	if (n == 1 && s[0] == '=')
		n = 0;
	out = xmalloc(b64_decoded_max(n) + 1);
	r = n ? b64_decode(s, n, out) : 0;
	if (r < 0) {
		free(out);
		return NULL;
	}
	out[r] = '\0';
	*len = (size_t)r;
	return out;
}

/* req_penalty_cb - the brute-force delay of a request is over: run it. */
static void
req_penalty_cb(evutil_socket_t fd, short what, void *arg)
{
	struct auth_request *r = arg;

	(void)fd;
	(void)what;
	req_start(r);
}

/* Returns false when the client was freed. */
static bool
cmd_auth(struct auth_client *c, char **argv, size_t argc)
{
	struct auth_server *srv = c->srv;
	struct auth_request *r;
	const struct auth_mech *mech;
	const char *resp = NULL, *service = NULL, *rip = "", *lip = "", *v;
	bool final_ok = false, no_penalty = false, secured = false;
	int blocked, delay_ms = 0;
	uint32_t id;
	size_t i;

	if (argc < 3 || !auth_proto_parse_id(argv[1], &id)) {
		proto_error(c, "sent broken AUTH request");
		return false;
	}
	if ((mech = auth_sasl_mech_find(argv[2])) == NULL) {
		char what[128], safe[48];
		snprintf(what, sizeof(what),
		    "requested unsupported authentication mechanism %s",
		    log_safe(safe, sizeof(safe), argv[2], 32));
		proto_error(c, what);
		return false;
	}
	for (i = 3; i < argc; i++) {
		if ((v = auth_proto_param(argv[i], "resp")) != NULL &&
		    argv[i][4] == '=') {
			if (i != argc - 1) {
				proto_error(c, "sent AUTH parameters after resp=");
				return false;
			}
			resp = v;
			break;
		}
		if (!auth_proto_unescape(argv[i])) {
			proto_error(c, "sent a broken escape sequence");
			return false;
		}
		if ((v = auth_proto_service(argv[i])) != NULL)
			service = v;
		else if ((v = auth_proto_param(argv[i], "rip")) != NULL)
			rip = v;
		else if (strcmp(argv[i], "final-resp-ok") == 0)
			final_ok = true;
		else if (strcmp(argv[i], "no-penalty") == 0)
			no_penalty = true;
		else if ((v = auth_proto_param(argv[i], "lip")) != NULL)
			lip = v;
		else if (auth_proto_param(argv[i], "secured") != NULL)
			secured = true;
		/* lport, rport, session, nologin, ...: ignored */
	}
	if (service == NULL || *service == '\0') {
		proto_error(c, "didn't specify service in request");
		return false;
	}
	if (req_find(c, id) != NULL) {
		proto_error(c, "sent a duplicate ID");
		return false;
	}
	if (c->n_requests >= MAX_REQUESTS_PER_CLIENT) {
		proto_error(c, "has too many requests in flight");
		return false;
	}

	/* a blocked address is refused at once, without running anything */
	if (srv->set.penalty != NULL && !no_penalty && *rip != '\0') {
		blocked = penalty_check(srv->set.penalty, rip, time(NULL), &delay_ms);
		if (blocked > 0) {
			char srip[64];
			log_info("auth refused: rip=%s (blocked for %d more seconds)",
			    log_safe(srip, sizeof(srip), rip, 60), blocked);
			auth_conn_printf(&c->conn, "FAIL\t%u\tcode=temp_fail\treason="
			    "Too many failed authentication attempts; try again later"
			    "\tblocked=%d\n", id, blocked);
			return true;
		}
	}

	r = xcalloc(1, sizeof(*r));
	r->srv = srv;
	r->no_penalty = no_penalty;
	r->client = c;
	r->id = id;
	r->mech = mech;
	r->started_ms = now_ms();
	copy_str(r->rip, sizeof(r->rip), rip);
	copy_str(r->service, sizeof(r->service), service);
	copy_str(r->lip, sizeof(r->lip), lip);
	r->secured = secured;

	/* minor < 2: an empty resp= means no initial response */
	if (resp != NULL && !(c->minor < 2 && *resp == '\0') &&
	    srv->set.upstream != NULL) {
		/* proxy mode: the upstream decodes it */
		if (!auth_proto_b64_ok(resp)) {
			auth_conn_printf(&c->conn, "FAIL\t%u\tcode=invalid_base64\treason="
			    "Invalid base64 data in initial response\n", id);
			free(r);
			return true;
		}
		r->resp_b64 = xstrdup(resp);
	} else if (resp != NULL && !(c->minor < 2 && *resp == '\0')) {
		/* decode_b64 checks as auth_proto_b64_ok does: one pass */
		if ((r->in = decode_b64(resp, &r->inlen)) == NULL) {
			auth_conn_printf(&c->conn, "FAIL\t%u\tcode=invalid_base64\treason="
			    "Invalid base64 data in initial response\n", id);
			free(r);
			return true;
		}
		r->have_in = true;
	}
	if (srv->set.upstream == NULL) {
		r->sasl = auth_sasl_req_new(mech, r->service, final_ok);
		auth_sasl_req_set_rip(r->sasl, r->rip);
	}
	LIST_INSERT_HEAD(req_bucket(c, id), r, hentry);
	r->in_table = true;
	c->n_requests++;
	if (delay_ms > 0 && (r->penalty_ev = evtimer_new(srv->base, req_penalty_cb, r)) != NULL) {
		/* repeated failures from this address: hold the attempt first
		 * (the request timeout runs from now, as for every request) */
		struct timeval tv = { delay_ms / 1000, (delay_ms % 1000) * 1000 };
		req_arm_timeout(r);
		r->state = RS_PENALTY;
		evtimer_add(r->penalty_ev, &tv);
		return true;
	}
	req_start(r);
	return true;
}

static bool
cmd_cont(struct auth_client *c, char **argv, size_t argc)
{
	struct auth_request *r;
	uint32_t id;

	if (argc < 3 || !auth_proto_parse_id(argv[1], &id)) {
		proto_error(c, "sent broken CONT request");
		return false;
	}
	r = req_find(c, id);
	if (r == NULL) {
		auth_conn_printf(&c->conn,
		    "FAIL\t%u\treason=Authentication request timed out\n", id);
		return true;
	}
	if (r->state != RS_WAIT_CONT) {
		auth_conn_printf(&c->conn, "FAIL\t%u\treason=Unexpected continuation\n", id);
		req_drop(r);
		return true;
	}
	if (c->srv->set.upstream != NULL) {
		if (!auth_proto_b64_ok(argv[2])) {
			auth_conn_printf(&c->conn, "FAIL\t%u\tcode=invalid_base64\treason="
			    "Invalid base64 data in continued response\n", id);
			req_drop(r);
			return true;
		}
		r->state = RS_UPSTREAM;
		r->input_ms = now_ms();
		authc_continue(c->srv->set.upstream, r->up_id, argv[2]);
		return true;
	}
	/* everything after the id's TAB is base64 (C23 behaviour) */
	if ((r->in = decode_b64(argv[2], &r->inlen)) == NULL) {
		auth_conn_printf(&c->conn, "FAIL\t%u\tcode=invalid_base64\treason="
		    "Invalid base64 data in continued response\n", id);
		req_drop(r);
		return true;
	}
	r->have_in = true;
	r->input_ms = now_ms();
	job_submit(r);
	return true;
}

static bool
cmd_cancel(struct auth_client *c, char **argv, size_t argc)
{
	struct auth_request *r;
	uint32_t id;

	if (argc < 2 || !auth_proto_parse_id(argv[1], &id)) {
		proto_error(c, "sent broken CANCEL request");
		return false;
	}
	if ((r = req_find(c, id)) != NULL)
		req_drop(r);
	return true;
}

/* client_line - one line (no LF, NUL-terminated); false if c was freed. */
static bool
client_line(void *arg, char *line)
{
	struct auth_client *c = arg;
	/*
	 * every field a line can hold (unknown parameters are ignored, as
	 * Dovecot does, however many): the event loop's thread only
	 */
	static char *argv[AUTH_PROTO_MAX_LINE + 1];
	size_t argc;
	unsigned int pid;

	if (strncmp(line, "CONT\t", 5) == 0)
		argc = auth_proto_split(line, argv, 3);
	else
		argc = auth_proto_split(line, argv, sizeof(argv) / sizeof(argv[0]));

	switch (c->state) {
	case CS_VERSION:
		if (!auth_proto_version(argv, argc, AUTH_PROTO_MAJOR, &c->minor)) {
			log_warnx("auth: Authentication client %u not compatible with "
			    "this server; disconnecting", c->conn.id);
			client_free(c);
			return false;
		}
		c->state = CS_CPID;
		return true;
	case CS_CPID:
		if (argc < 2 || strcmp(argv[0], "CPID") != 0 ||
		    !auth_proto_parse_uint(argv[1], &pid) || pid == 0) {
			proto_error(c, "sent an invalid or missing CPID");
			return false;
		}
		c->state = CS_READY;
		return true;
	case CS_READY:
		break;
	}
	if (strcmp(argv[0], "AUTH") == 0)
		return cmd_auth(c, argv, argc);
	if (strcmp(argv[0], "CONT") == 0)
		return cmd_cont(c, argv, argc);
	if (strcmp(argv[0], "CANCEL") == 0)
		return cmd_cancel(c, argv, argc);
	proto_error(c, "sent unknown command");
	return false;
}

/* ---- connections (src/auth-conn.c) ----------------------------------- */

/* client_too_long - a line over AUTH_PROTO_MAX_LINE: Dovecot's words. */
static void
client_too_long(void *arg)
{
	struct auth_client *c = arg;

	log_warnx("auth: BUG: Auth client %u sent us more than %d bytes; "
	    "disconnecting", c->conn.id, AUTH_PROTO_MAX_LINE);
	client_free(c);
}

/* client_free - drop c's requests (busy ones are orphaned), close, free. */
static void
client_free(void *arg)
{
	struct auth_client *c = arg;
	size_t i;

	for (i = 0; i < REQ_BUCKETS; i++) {
		struct auth_request *r;
		while ((r = LIST_FIRST(&c->table[i])) != NULL)
			req_drop(r);
	}
	auth_conn_close(&c->conn);
	free(c);
}

static int
client_accept(void *srv, int fd)
{
	return auth_server_add_client(srv, fd);
}

/* the auth socket's connections (Dovecot's limits and log lines) */
static const struct auth_conn_class client_class = {
	.name = "auth",
	.peer = "Authentication client",
	.max_line = AUTH_PROTO_MAX_LINE,
	.out_throttle = AUTH_PROTO_OUTBUF_THROTTLE,
	.write_lowat = AUTH_PROTO_OUTBUF_THROTTLE,
	.log_errors = true,
	.add = client_accept,
	.line = client_line,
	.too_long = client_too_long,
	.free = client_free,
};

int
auth_server_add_client(struct auth_server *srv, int fd)
{
	struct auth_client *c;
	struct sbuf hs;
	unsigned char cookie[16];
	size_t i;

	if (!auth_conn_admit(&srv->clients, fd))
		return -1;
	c = xcalloc(1, sizeof(*c));
	c->srv = srv;
	c->state = CS_VERSION;
	for (i = 0; i < REQ_BUCKETS; i++)
		LIST_INIT(&c->table[i]);
	if (auth_conn_open(&c->conn, &srv->clients, fd, c) == -1) {
		free(c);
		return -1;
	}

	/* Dovecot 2.3: the whole handshake at once, without waiting. */
	sbuf_init(&hs, 0);
	sbuf_printf(&hs, "VERSION\t%d\t%d\n", AUTH_PROTO_MAJOR, AUTH_PROTO_MINOR);
	for (i = 0; i < auth_sasl_mech_count(); i++) {
		const struct auth_mech *m = auth_sasl_mech(i);
		sbuf_printf(&hs, "MECH\t%s%s%s\n", m->name, *m->flags ? "\t" : "",
		    m->flags);
	}
	random_bytes(cookie, sizeof(cookie));
	sbuf_printf(&hs, "SPID\t%ld\nCUID\t%u\nCOOKIE\t", (long)getpid(), c->conn.id);
	for (i = 0; i < sizeof(cookie); i++)
		sbuf_printf(&hs, "%02x", cookie[i]);
	sbuf_addstr(&hs, "\nDONE\n");
	auth_conn_write(&c->conn, hs.s, hs.len);
	sbuf_free(&hs);
	return 0;
}

/* ---- life cycle ------------------------------------------------------ */

static int
default_workers(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (int)n : 2;
}

struct auth_server *
auth_server_new(struct event_base *base, int listen_fd, struct backend_chain *chain,
    const struct auth_server_settings *set)
{
	struct auth_server *srv = xcalloc(1, sizeof(*srv));
	sigset_t all, old;
	int i;

	srv->base = base;
	srv->chain = chain;
	srv->set = *set;
	if (srv->set.failure_delay_ms < 0)
		srv->set.failure_delay_ms = 0;
	if (srv->set.min_time_ms < 0)
		srv->set.min_time_ms = 0;
	if (srv->set.workers <= 0)
		srv->set.workers = default_workers();
	if (srv->set.workers > MAX_WORKERS)
		srv->set.workers = MAX_WORKERS;
	if (srv->set.max_clients <= 0)
		srv->set.max_clients = DEFAULT_MAX_CLIENTS;
	if (srv->set.request_timeout_ms <= 0)
		srv->set.request_timeout_ms = AUTH_PROTO_REQUEST_TIMEOUT_SECS * 1000;
	auth_conn_pool_init(&srv->clients, &client_class, base, srv,
	    (unsigned)srv->set.max_clients);
	TAILQ_INIT(&srv->jobs);
	TAILQ_INIT(&srv->done);
	TAILQ_INIT(&srv->gjobs);
	TAILQ_INIT(&srv->gdone);
	pthread_mutex_init(&srv->qlock, NULL);
	pthread_cond_init(&srv->qcond, NULL);

	if (pipe2(srv->wake, O_NONBLOCK | O_CLOEXEC) == -1)
		fatal("auth: pipe");
	srv->wake_ev = event_new(base, srv->wake[0], EV_READ | EV_PERSIST, wake_cb, srv);
	if (srv->wake_ev == NULL || event_add(srv->wake_ev, NULL) == -1)
		fatalx("auth: cannot watch the worker pipe");

	/* Workers get no signals: those are the loop's business. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (i = 0; i < srv->set.workers; i++) {
		if (pthread_create(&srv->workers[i], NULL, worker_main, srv) != 0)
			fatalx("auth: cannot start worker thread %d", i);
		srv->n_workers++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);

	if (listen_fd >= 0) {
		srv->listener = auth_conn_listen(&srv->clients, listen_fd);
		if (srv->listener == NULL)
			fatalx("auth: cannot listen on the auth socket");
	}
	log_debug("auth: %d worker threads", srv->n_workers);
	return srv;
}

void
auth_server_stop_listening(struct auth_server *srv)
{
	while (srv->n_more > 0)
		evconnlistener_free(srv->more[--srv->n_more]);
	if (srv->listener) {
		evconnlistener_free(srv->listener);
		srv->listener = NULL;
	}
}

void
auth_server_reload(struct auth_server *srv)
{
	pthread_mutex_lock(&srv->qlock);
	srv->reload_pending = true;
	pthread_cond_signal(&srv->qcond);
	pthread_mutex_unlock(&srv->qlock);
}

void
auth_server_close_idle(struct auth_server *srv)
{
	struct auth_conn *k, *next;

	for (k = LIST_FIRST(&srv->clients.conns); k != NULL; k = next) {
		struct auth_client *c = k->owner;

		next = LIST_NEXT(k, entry);
		if (c->n_requests == 0 &&
		    evbuffer_get_length(bufferevent_get_output(k->bev)) == 0)
			client_free(c);
	}
}

void
auth_server_send_held(struct auth_server *srv)
{
	struct auth_conn *k;

	LIST_FOREACH(k, &srv->clients.conns, entry) {
		struct auth_client *c = k->owner;

		for (size_t i = 0; i < REQ_BUCKETS; i++) {
			struct auth_request *r, *next;

			for (r = LIST_FIRST(&c->table[i]); r != NULL; r = next) {
				next = LIST_NEXT(r, hentry);
				if (r->state == RS_FINISHING && r->pending != NULL)
					req_send_pending(r);
			}
		}
	}
}

unsigned
auth_server_client_count(const struct auth_server *srv)
{
	return srv->clients.n_conns;
}

void
auth_server_get_stats(const struct auth_server *srv, struct auth_server_stats *st)
{
	*st = srv->stats;
}

void
auth_server_free(struct auth_server *srv)
{
	struct auth_request *r;
	int i;

	if (srv == NULL)
		return;
	auth_server_stop_listening(srv);
	auth_conn_pool_close_all(&srv->clients);
	pthread_mutex_lock(&srv->qlock);
	srv->stopping = true;
	pthread_cond_broadcast(&srv->qcond);
	pthread_mutex_unlock(&srv->qlock);
	for (i = 0; i < srv->n_workers; i++)
		pthread_join(srv->workers[i], NULL);
	/* every request left is orphaned (its client is gone) */
	while ((r = TAILQ_FIRST(&srv->jobs)) != NULL) {
		TAILQ_REMOVE(&srv->jobs, r, qentry);
		req_free(r);
	}
	while ((r = TAILQ_FIRST(&srv->done)) != NULL) {
		TAILQ_REMOVE(&srv->done, r, qentry);
		req_free(r);
	}
	{
		struct auth_job *j;
		while ((j = TAILQ_FIRST(&srv->gdone)) != NULL) {
			TAILQ_REMOVE(&srv->gdone, j, entry);
			j->done(j->arg, 1);
		}
		while ((j = TAILQ_FIRST(&srv->gjobs)) != NULL) {
			TAILQ_REMOVE(&srv->gjobs, j, entry);
			j->done(j->arg, 0);
		}
	}
	event_free(srv->wake_ev);
	close(srv->wake[0]);
	close(srv->wake[1]);
	pthread_mutex_destroy(&srv->qlock);
	pthread_cond_destroy(&srv->qcond);
	free(srv);
}

/* auth_server_add_listener - serve one more listening socket (auth.listeners). */
int
auth_server_add_listener(struct auth_server *srv, int fd)
{
	struct evconnlistener *l;

	if (srv->n_more >= AUTH_SERVER_MAX_LISTENERS)
		return -1;
	l = auth_conn_listen(&srv->clients, fd);
	if (l == NULL)
		return -1;
	srv->more[srv->n_more++] = l;
	return 0;
}
