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
 * flight (TEMPFAIL).  Every request has its own timer.
 */
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "log.h"
#include "userdbc.h"
#include "util.h"

#define USERDBC_MAX_LINE   8192
#define USERDBC_MAX_USER   255
#define USERDBC_MAX_INFLIGHT 1024
#define USERDBC_CACHE_SIZE 1024       /* entries */
#define USERDBC_OUT_MAX    (256 * 1024)

struct ureq {
	TAILQ_ENTRY(ureq) link;
	struct userdbc *c;
	uint32_t id;
	char *user;
	userdbc_cb *cb;
	void *ctx;
	struct event *timer;
	bool done;                   /* answered: waiting for the deferred call */
	enum userdbc_result res;
};

struct cache_ent {
	char *user;
	enum userdbc_result res;
	uint64_t until_ms;
};

struct userdbc {
	struct event_base *base;
	char *path;
	int timeout_ms;
	int cache_ms;
	struct bufferevent *bev;
	bool got_version;
	bool warned;
	uint32_t last_id;
	TAILQ_HEAD(, ureq) reqs;     /* waiting for the server */
	TAILQ_HEAD(, ureq) done;     /* answered, callback pending */
	size_t n_reqs;
	struct event *defer;
	struct cache_ent cache[USERDBC_CACHE_SIZE];
	size_t cache_next;           /* round-robin replacement */
};

static void ud_disconnect(struct userdbc *c, const char *why);

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
	while ((r = TAILQ_FIRST(&c->done)) != NULL) {
		TAILQ_REMOVE(&c->done, r, link);
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
	TAILQ_REMOVE(&c->reqs, r, link);
	if (r->timer != NULL) {
		event_free(r->timer);
		r->timer = NULL;
	}
	r->done = true;
	r->res = res;
	TAILQ_INSERT_TAIL(&c->done, r, link);
	event_active(c->defer, EV_TIMEOUT, 0);
}

static struct ureq *
req_find(struct userdbc *c, uint32_t id)
{
	struct ureq *r;

	TAILQ_FOREACH(r, &c->reqs, link)
		if (r->id == id)
			return r;
	return NULL;
}

static void
req_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ureq *r = arg;

	(void)fd;
	(void)what;
	log_warnx("userdb client: lookup %u timed out", r->id);
	req_answer(r->c, r, USERDBC_TEMPFAIL);
}

/* ---- connection ------------------------------------------------------ */

static void
ud_disconnect(struct userdbc *c, const char *why)
{
	struct ureq *r;

	if (c->bev == NULL)
		return;
	if (why != NULL)
		log_warnx("userdb client: connection to %s closed: %s", c->path, why);
	bufferevent_free(c->bev);
	c->bev = NULL;
	c->got_version = false;
	while ((r = TAILQ_FIRST(&c->reqs)) != NULL)
		req_answer(c, r, USERDBC_TEMPFAIL);
}

/* One line from the server (LF removed, NUL-terminated). */
static void
ud_line(struct userdbc *c, char *line)
{
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

static void
ud_read_cb(struct bufferevent *bev, void *arg)
{
	struct userdbc *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t n;
	char *line;

	while (c->bev != NULL &&
	    (line = evbuffer_readln(in, &n, EVBUFFER_EOL_LF)) != NULL) {
		if (n >= USERDBC_MAX_LINE || memchr(line, '\0', n) != NULL) {
			free(line);
			ud_disconnect(c, "over-long or binary line");
			return;
		}
		ud_line(c, line);
		free(line);
	}
	if (c->bev != NULL && evbuffer_get_length(in) >= USERDBC_MAX_LINE)
		ud_disconnect(c, "over-long line");
}

static void
ud_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct userdbc *c = arg;

	(void)bev;
	if (what & BEV_EVENT_EOF)
		ud_disconnect(c, "closed by the server");
	else if (what & BEV_EVENT_ERROR)
		ud_disconnect(c, strerror(EVUTIL_SOCKET_ERROR()));
}

/* Connect now (UNIX stream sockets connect at once or fail). */
static int
ud_connect(struct userdbc *c)
{
	struct sockaddr_un sun;
	int fd;

	if (c->bev != NULL)
		return 0;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(c->path) >= sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		goto fail;
	}
	strcpy(sun.sun_path, c->path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
		goto fail;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		int e = errno;

		close(fd);
		errno = e;
		goto fail;
	}
	if ((c->bev = bufferevent_socket_new(c->base, fd, BEV_OPT_CLOSE_ON_FREE)) == NULL) {
		close(fd);
		errno = ENOMEM;
		goto fail;
	}
	bufferevent_setcb(c->bev, ud_read_cb, NULL, ud_event_cb, c);
	bufferevent_setwatermark(c->bev, EV_READ, 0, USERDBC_MAX_LINE * 4);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	bufferevent_write(c->bev, "VERSION\t1\t0\n", 12);
	if (c->warned)
		log_info("userdb client: connected to %s again", c->path);
	c->warned = false;
	return 0;
fail:
	if (!c->warned)
		log_warn("userdb client: cannot connect to %s", c->path);
	c->warned = true;
	return -1;
}

struct userdbc *
userdbc_new(struct event_base *base, const char *path, int timeout_ms,
            int cache_secs)
{
	struct userdbc *c = xcalloc(1, sizeof(*c));

	c->base = base;
	c->path = xstrdup(path);
	c->timeout_ms = timeout_ms > 0 ? timeout_ms : 10000;
	c->cache_ms = cache_secs > 0 ? cache_secs * 1000 : 0;
	TAILQ_INIT(&c->reqs);
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
	if (c->bev != NULL) {
		bufferevent_free(c->bev);
		c->bev = NULL;
	}
	while ((r = TAILQ_FIRST(&c->reqs)) != NULL) {
		TAILQ_REMOVE(&c->reqs, r, link);
		if (r->timer)
			event_free(r->timer);
		free(r->user);
		free(r);
	}
	while ((r = TAILQ_FIRST(&c->done)) != NULL) {
		TAILQ_REMOVE(&c->done, r, link);
		free(r->user);
		free(r);
	}
	for (size_t i = 0; i < USERDBC_CACHE_SIZE; i++)
		free(c->cache[i].user);
	event_free(c->defer);
	free(c->path);
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
	struct timeval tv;
	struct sbuf b;
	enum userdbc_result cached;

	do {
		c->last_id++;
	} while (c->last_id == 0 || req_find(c, c->last_id) != NULL);
	r->id = c->last_id;
	r->c = c;
	r->user = xstrdup(user);
	r->cb = cb;
	r->ctx = ctx;
	TAILQ_INSERT_TAIL(&c->reqs, r, link);
	c->n_reqs++;
	if (!user_ok(user) || c->n_reqs > USERDBC_MAX_INFLIGHT) {
		req_answer(c, r, USERDBC_TEMPFAIL);
		return r->id;
	}
	if ((cached = userdbc_cached(c, user)) != USERDBC_UNCACHED) {
		req_answer(c, r, cached);
		return r->id;
	}
	if (ud_connect(c) < 0) {
		req_answer(c, r, USERDBC_TEMPFAIL);
		return r->id;
	}
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) > USERDBC_OUT_MAX) {
		req_answer(c, r, USERDBC_TEMPFAIL);
		return r->id;
	}
	if ((r->timer = evtimer_new(c->base, req_timeout_cb, r)) == NULL)
		fatalx("userdb client: evtimer_new");
	tv.tv_sec = c->timeout_ms / 1000;
	tv.tv_usec = (c->timeout_ms % 1000) * 1000;
	evtimer_add(r->timer, &tv);
	sbuf_init(&b, 0);
	sbuf_printf(&b, "USER\t%u\t", r->id);
	tab_escape(&b, user);
	sbuf_addstr(&b, "\tservice=smtp\n");
	bufferevent_write(c->bev, b.s, b.len);
	sbuf_free(&b);
	return r->id;
}

void
userdbc_abort(struct userdbc *c, uint32_t id)
{
	struct ureq *r;

	if (id == 0)
		return;
	if ((r = req_find(c, id)) != NULL) {
		r->cb = NULL;
		req_answer(c, r, USERDBC_TEMPFAIL);   /* freed by defer_cb */
		return;
	}
	TAILQ_FOREACH(r, &c->done, link)
		if (r->id == id)
			r->cb = NULL;
}
