/*
 * userdbc.c - client of the auth role's userdb socket (see userdbc.h).
 *
 * Wire protocol (Dovecot auth-master subset):
 *   server: VERSION\t1\t<minor>\n  SPID\t<pid>\n
 *   client: VERSION\t1\t0\n  (pipelined with the first request)
 *   client: USER\t<id>\t<user>\tservice=smtp\n
 *   server: USER\t<id>\t<user>[\t<fields>]\n | NOTFOUND\t<id>\n |
 *           FAIL\t<id>[\treason=...]\n
 * The user name is tab-escaped; names with control characters are never
 * sent.  Lines are bounded (USERDBC_MAX_LINE); a longer one, a wrong
 * major version or garbage ends the connection, failing what is in
 * flight (TEMPFAIL).  Every request has its own timer.  The socket, line
 * reading, output buffer and request ids are the core shared with the
 * auth client (auth-client-conn.h).
 */
#include <sys/queue.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "auth-client-conn.h"
#include "log.h"
#include "userdbc.h"
#include "util.h"

#define USERDBC_MAX_LINE   8192
#define USERDBC_MAX_USER   255
#define USERDBC_MAX_INFLIGHT 1024
#define USERDBC_CACHE_SIZE 1024       /* entries */
#define USERDBC_OUT_MAX    (256 * 1024)

struct ureq {
	struct acc_req hdr;          /* id, link in conn.reqs or done, timer */
	struct userdbc *c;
	char *user;
	userdbc_cb *cb;
	void *ctx;
	bool done;                   /* answered: waiting for the deferred call */
	enum userdbc_result res;
};

struct cache_ent {
	char *user;
	enum userdbc_result res;
	uint64_t until_ms;
};

struct userdbc {
	struct acc_conn conn;        /* socket, buffers, requests waiting */
	int cache_ms;
	bool got_version;
	struct acc_req_list done;    /* answered, callback pending */
	size_t n_reqs;
	struct event *defer;
	struct cache_ent cache[USERDBC_CACHE_SIZE];
	size_t cache_next;           /* round-robin replacement */
};

static void ud_disconnect(struct userdbc *c, const char *why);

/* The request around a core request header (h may be NULL). */
static struct ureq *
ureq_of(struct acc_req *h)
{
	return h != NULL ? ACC_CONTAINER(h, struct ureq, hdr) : NULL;
}

/* ---- cache ----------------------------------------------------------- */

static struct cache_ent *
cache_find(struct userdbc *c, const char *user)
{
	uint64_t now = now_ms();

	for (size_t i = 0; i < USERDBC_CACHE_SIZE; i++) {
		struct cache_ent *e = &c->cache[i];

		if (e->user != NULL && strcmp(e->user, user) == 0) {
			if (e->until_ms > now)
				return e;
			free(e->user);
			e->user = NULL;
			return NULL;
		}
	}
	return NULL;
}

static void
cache_put(struct userdbc *c, const char *user, enum userdbc_result res)
{
	struct cache_ent *e;

	if (c->cache_ms <= 0 || res == USERDBC_TEMPFAIL)
		return;
	if ((e = cache_find(c, user)) == NULL) {
		e = &c->cache[c->cache_next];
		c->cache_next = (c->cache_next + 1) % USERDBC_CACHE_SIZE;
		free(e->user);
		e->user = xstrdup(user);
	}
	e->res = res;
	e->until_ms = now_ms() + (uint64_t)c->cache_ms;
}

enum userdbc_result
userdbc_cached(struct userdbc *c, const char *user)
{
	struct cache_ent *e = cache_find(c, user);

	return e ? e->res : USERDBC_UNCACHED;
}

/* ---- requests -------------------------------------------------------- */

static void
defer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct userdbc *c = arg;
	struct ureq *r;

	(void)fd;
	(void)what;
	while ((r = ureq_of(TAILQ_FIRST(&c->done))) != NULL) {
		TAILQ_REMOVE(&c->done, &r->hdr, link);
		c->n_reqs--;
		if (r->cb != NULL)
			r->cb(r->ctx, r->res);
		free(r->user);
		free(r);
	}
}

/* Answer r (moves it to the done list, callback from defer_cb). */
static void
req_answer(struct userdbc *c, struct ureq *r, enum userdbc_result res)
{
	if (r->done)
		return;
	acc_req_remove(&c->conn, &r->hdr);
	r->done = true;
	r->res = res;
	TAILQ_INSERT_TAIL(&c->done, &r->hdr, link);
	event_active(c->defer, EV_TIMEOUT, 0);
}

static struct ureq *
req_find(struct userdbc *c, uint32_t id)
{
	return ureq_of(acc_req_find(&c->conn, id));
}

static void
req_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ureq *r = arg;

	(void)fd;
	(void)what;
	log_warnx("userdb client: lookup %u timed out", r->hdr.id);
	req_answer(r->c, r, USERDBC_TEMPFAIL);
}

/* ---- connection ------------------------------------------------------ */

static void
ud_disconnect(struct userdbc *c, const char *why)
{
	struct ureq *r;

	if (!acc_is_open(&c->conn))
		return;
	if (why != NULL)
		log_warnx("userdb client: connection to %s closed: %s", c->conn.path,
		    why);
	acc_close(&c->conn);
	c->got_version = false;
	while ((r = ureq_of(TAILQ_FIRST(&c->conn.reqs))) != NULL)
		req_answer(c, r, USERDBC_TEMPFAIL);
}

/* acc_ops.line: one line from the server (LF removed, NUL-terminated). */
static void
ud_line(void *arg, char *line)
{
	struct userdbc *c = arg;
	char *argv[4], *p = line;
	size_t argc = 0;
	uint32_t id;
	unsigned long long v;
	struct ureq *r;

	while (argc < 4) {
		argv[argc++] = p;
		if ((p = strchr(p, '\t')) == NULL)
			break;
		*p++ = '\0';
	}
	if (strcmp(argv[0], "VERSION") == 0) {
		if (argc < 3 || strcmp(argv[1], "1") != 0) {
			ud_disconnect(c, "incompatible protocol version");
			return;
		}
		c->got_version = true;
		return;
	}
	if (!c->got_version) {
		ud_disconnect(c, "no VERSION from the server (wrong socket?)");
		return;
	}
	if (strcmp(argv[0], "SPID") == 0)
		return;
	if (argc < 2 || !parse_uint(argv[1], UINT32_MAX, &v) || v == 0) {
		ud_disconnect(c, "malformed reply");
		return;
	}
	id = (uint32_t)v;
	if ((r = req_find(c, id)) == NULL)
		return;                 /* timed out or aborted meanwhile */
	if (strcmp(argv[0], "USER") == 0) {
		cache_put(c, r->user, USERDBC_FOUND);
		req_answer(c, r, USERDBC_FOUND);
	} else if (strcmp(argv[0], "NOTFOUND") == 0) {
		cache_put(c, r->user, USERDBC_NOTFOUND);
		req_answer(c, r, USERDBC_NOTFOUND);
	} else if (strcmp(argv[0], "FAIL") == 0)
		req_answer(c, r, USERDBC_TEMPFAIL);
	else
		ud_disconnect(c, "unknown reply");
}

/* acc_ops.down: the core gave up on the connection. */
static void
ud_down(void *arg, const char *why)
{
	ud_disconnect(arg, why);
}

/* acc_ops.connected: our VERSION, pipelined with the first request. */
static void
ud_connected(void *arg)
{
	struct userdbc *c = arg;

	acc_write(&c->conn, "VERSION\t1\t0\n", 12);
}

static const struct acc_ops ud_ops = {
	.connected = ud_connected,
	.line = ud_line,
	.down = ud_down,
	.eof = "closed by the server",
	.long_line = "over-long line",
	.nul = "over-long or binary line",
	.idle_eof_quiet = false,
};

struct userdbc *
userdbc_new(struct event_base *base, const char *path, int timeout_ms,
            int cache_secs)
{
	struct userdbc *c = xcalloc(1, sizeof(*c));

	/* room for one more line past USERDBC_OUT_MAX (checked per lookup) */
	acc_init(&c->conn, base, "userdb client", path,
	    timeout_ms > 0 ? timeout_ms : 10000, USERDBC_MAX_LINE - 1,
	    USERDBC_OUT_MAX + USERDBC_MAX_LINE, &ud_ops, c);
	c->cache_ms = cache_secs > 0 ? cache_secs * 1000 : 0;
	TAILQ_INIT(&c->done);
	if ((c->defer = event_new(base, -1, 0, defer_cb, c)) == NULL)
		fatalx("userdb client: event_new");
	return c;
}

void
userdbc_free(struct userdbc *c)
{
	struct ureq *r;

	if (c == NULL)
		return;
	acc_close(&c->conn);
	while ((r = ureq_of(TAILQ_FIRST(&c->conn.reqs))) != NULL) {
		acc_req_remove(&c->conn, &r->hdr);
		free(r->user);
		free(r);
	}
	while ((r = ureq_of(TAILQ_FIRST(&c->done))) != NULL) {
		TAILQ_REMOVE(&c->done, &r->hdr, link);
		free(r->user);
		free(r);
	}
	for (size_t i = 0; i < USERDBC_CACHE_SIZE; i++)
		free(c->cache[i].user);
	event_free(c->defer);
	acc_cleanup(&c->conn);
	free(c);
}

/* A user name we may send: 1..255 octets, no control characters. */
static bool
user_ok(const char *u)
{
	size_t n = strlen(u);

	if (n == 0 || n > USERDBC_MAX_USER)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)u[i] < 32 || u[i] == 127)
			return false;
	return true;
}

uint32_t
userdbc_lookup(struct userdbc *c, const char *user, userdbc_cb *cb, void *ctx)
{
	struct ureq *r = xcalloc(1, sizeof(*r));
	struct sbuf b;
	enum userdbc_result cached;
	uint32_t id;

	acc_req_add(&c->conn, &r->hdr);
	id = r->hdr.id;
	r->c = c;
	r->user = xstrdup(user);
	r->cb = cb;
	r->ctx = ctx;
	c->n_reqs++;
	if (!user_ok(user) || c->n_reqs > USERDBC_MAX_INFLIGHT) {
		req_answer(c, r, USERDBC_TEMPFAIL);
		return id;
	}
	if ((cached = userdbc_cached(c, user)) != USERDBC_UNCACHED) {
		req_answer(c, r, cached);
		return id;
	}
	if (acc_connect(&c->conn) < 0) {
		req_answer(c, r, USERDBC_TEMPFAIL);
		return id;
	}
	if (!acc_is_open(&c->conn))
		return id;      /* lost while greeting: r was answered with the rest */
	if (acc_pending(&c->conn) > USERDBC_OUT_MAX) {
		req_answer(c, r, USERDBC_TEMPFAIL);
		return id;
	}
	acc_req_arm(&c->conn, &r->hdr, req_timeout_cb, r);
	sbuf_init(&b, 0);
	sbuf_printf(&b, "USER\t%u\t", id);
	tab_escape(&b, user);
	sbuf_addstr(&b, "\tservice=smtp\n");
	if (!acc_write(&c->conn, b.s, b.len))
		req_answer(c, r, USERDBC_TEMPFAIL);     /* cannot happen: see _new */
	sbuf_free(&b);
	acc_flush(&c->conn);
	return id;
}

void
userdbc_abort(struct userdbc *c, uint32_t id)
{
	struct ureq *r;
	struct acc_req *h;

	if (id == 0)
		return;
	if ((r = req_find(c, id)) != NULL) {
		r->cb = NULL;
		req_answer(c, r, USERDBC_TEMPFAIL);   /* freed by defer_cb */
		return;
	}
	TAILQ_FOREACH(h, &c->done, link)
		if (h->id == id)
			ureq_of(h)->cb = NULL;
}
