/*
 * authc.c - client of the Dovecot auth protocol (client socket, as Postfix
 * and Dovecot's login processes speak it), on libevent.  See
 * ../shared/spec/dovecot-auth-protocol.md sections 0-2.
 *
 * On connect it sends VERSION and CPID at once (Dovecot 2.4 waits for
 * them), then accepts VERSION/MECH/SPID/CUID/COOKIE in any order until
 * DONE.  Requests made before DONE wait for it.  Every request has its
 * own timer, from AUTH to the final answer.  All callbacks run from a
 * deferred event, never from inside an authc_* call.  Lines are bounded
 * (16384), ids increase and are never 0, base64 goes out unescaped and
 * last, everything else is tab-escaped.  The AUTH lines carry
 * credentials: they are wiped from memory once written and never logged.
 */
#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/event.h>

#include "auth-proto.h"
#include "authc.h"
#include "log.h"
#include "util.h"

#define AUTHC_MAX_LINE   (AUTH_PROTO_MAX_LINE - 1)   /* without the LF */
#define AUTHC_MAX_MECHS  32
#define AUTHC_MECH_LEN   63
#define AUTHC_OUT_MAX    (1024 * 1024)    /* unsent output */
#define AUTHC_MAX_FIELDS 128

enum ac_state { AC_DOWN, AC_CONNECTING, AC_HANDSHAKE, AC_READY };

struct areq {
	TAILQ_ENTRY(areq) link;
	struct authc *c;
	uint32_t id;
	authc_cb *cb;
	void *ctx;
	struct event *timer;
	char mech[AUTHC_MECH_LEN + 1];
	char *line;                  /* AUTH line waiting for DONE (secret) */
	size_t line_len;
	bool sent;
};

/* A callback waiting to run. */
struct acall {
	TAILQ_ENTRY(acall) link;
	uint32_t id;
	authc_cb *cb;
	void *ctx;
	enum authc_result res;
	char *data, *extra;
};

struct authc {
	struct event_base *base;
	char *path;
	int timeout_ms;
	int fd;
	enum ac_state state;
	struct event *rev, *wev, *defer;
	char in[AUTHC_MAX_LINE + 2];
	size_t in_len;
	char *out;
	size_t out_len, out_cap;
	TAILQ_HEAD(, areq) reqs;
	TAILQ_HEAD(, acall) calls;
	uint32_t last_id;
	/* handshake */
	bool got_version, got_cookie;
	unsigned n_mech_lines;
	char *mechs[AUTHC_MAX_MECHS];
	size_t n_mechs;
	char mechs_str[AUTHC_MAX_MECHS * (AUTHC_MECH_LEN + 1) + 1];
	bool dispatching, freed, warned;
};

static void ac_read_cb(evutil_socket_t, short, void *);
static void ac_write_cb(evutil_socket_t, short, void *);
static void ac_disconnect(struct authc *c, const char *why);

/* ---- callbacks ------------------------------------------------------- */

static void
ac_call(struct authc *c, struct areq *r, enum authc_result res,
    const char *data, const char *extra)
{
	struct acall *a = xcalloc(1, sizeof(*a));

	a->id = r->id;
	a->cb = r->cb;
	a->ctx = r->ctx;
	a->res = res;
	a->data = data ? xstrdup(data) : NULL;
	a->extra = extra ? xstrdup(extra) : NULL;
	TAILQ_INSERT_TAIL(&c->calls, a, link);
	event_active(c->defer, EV_TIMEOUT, 0);
}

static void
acall_free(struct acall *a)
{
	free(a->data);
	free(a->extra);
	free(a);
}

static void
req_free(struct areq *r)
{
	if (r->timer != NULL)
		event_free(r->timer);
	if (r->line != NULL) {
		secure_zero(r->line, r->line_len);
		free(r->line);
	}
	free(r);
}

/* The request is over: queue its final callback (unless res < 0). */
static void
req_finish(struct authc *c, struct areq *r, int res, const char *data,
    const char *extra)
{
	TAILQ_REMOVE(&c->reqs, r, link);
	if (res >= 0)
		ac_call(c, r, (enum authc_result)res, data, extra);
	req_free(r);
}

static struct areq *
req_find(struct authc *c, uint32_t id)
{
	struct areq *r;

	TAILQ_FOREACH(r, &c->reqs, link)
		if (r->id == id)
			return r;
	return NULL;
}

static void
ac_defer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct authc *c = arg;
	struct acall *a;

	(void)fd;
	(void)what;
	c->dispatching = true;
	while (!c->freed && (a = TAILQ_FIRST(&c->calls)) != NULL) {
		TAILQ_REMOVE(&c->calls, a, link);
		a->cb(a->ctx, a->res, a->data, a->extra);
		acall_free(a);
	}
	c->dispatching = false;
	if (c->freed)
		authc_free(c);
}

/* ---- output ---------------------------------------------------------- */

static void
ac_flush(struct authc *c)
{
	ssize_t n;

	while (c->fd >= 0 && c->state != AC_CONNECTING && c->out_len > 0) {
		n = send(c->fd, c->out, c->out_len, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				event_add(c->wev, NULL);
				return;
			}
			ac_disconnect(c, strerror(errno));
			return;
		}
		memmove(c->out, c->out + n, c->out_len - (size_t)n);
		secure_zero(c->out + c->out_len - (size_t)n, (size_t)n);
		c->out_len -= (size_t)n;
	}
}

/* Queue bytes for the server; false if too much is waiting already. */
static bool
ac_write(struct authc *c, const char *p, size_t n)
{
	if (c->out_len + n > AUTHC_OUT_MAX)
		return false;
	if (c->out_len + n > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap : 4096;
		char *nb;

		while (cap < c->out_len + n)
			cap *= 2;
		/* grow by copy so that no secret is left in freed memory */
		nb = xmalloc(cap);
		if (c->out_len > 0)
			memcpy(nb, c->out, c->out_len);
		if (c->out != NULL) {
			secure_zero(c->out, c->out_cap);
			free(c->out);
		}
		c->out = nb;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, p, n);
	c->out_len += n;
	return true;
}

/* ---- connection ------------------------------------------------------ */

static void
handshake_reset(struct authc *c)
{
	size_t i;

	for (i = 0; i < c->n_mechs; i++)
		free(c->mechs[i]);
	c->n_mechs = 0;
	c->n_mech_lines = 0;
	c->got_version = c->got_cookie = false;
	c->mechs_str[0] = '\0';
}

/* Close the connection; every request fails with TEMPFAIL. */
static void
ac_disconnect(struct authc *c, const char *why)
{
	struct areq *r;

	if (c->fd < 0)
		return;
	if (why != NULL)
		log_warnx("auth client: connection to %s lost: %s", c->path, why);
	event_free(c->rev);
	event_free(c->wev);
	c->rev = c->wev = NULL;
	close(c->fd);
	c->fd = -1;
	c->state = AC_DOWN;
	c->in_len = 0;
	if (c->out != NULL)
		secure_zero(c->out, c->out_cap);
	c->out_len = 0;
	handshake_reset(c);
	while ((r = TAILQ_FIRST(&c->reqs)) != NULL)
		req_finish(c, r, AUTHC_TEMPFAIL, "connection to the auth service lost",
		    NULL);
}

static void
ac_start_handshake(struct authc *c)
{
	char buf[64];
	int n;

	c->state = AC_HANDSHAKE;
	n = snprintf(buf, sizeof(buf), "VERSION\t1\t2\nCPID\t%ld\n", (long)getpid());
	ac_write(c, buf, (size_t)n);
	event_add(c->rev, NULL);
	ac_flush(c);
}

static int
ac_connect(struct authc *c)
{
	struct sockaddr_un sun;
	int fd;

	if (c->fd >= 0)
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
	c->fd = fd;
	c->rev = event_new(c->base, fd, EV_READ | EV_PERSIST, ac_read_cb, c);
	c->wev = event_new(c->base, fd, EV_WRITE, ac_write_cb, c);
	if (c->rev == NULL || c->wev == NULL)
		fatalx("auth client: event_new");
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		if (errno == EINPROGRESS) {
			c->state = AC_CONNECTING;
			event_add(c->wev, NULL);
			return 0;
		}
		int err = errno;
		event_free(c->rev);
		event_free(c->wev);
		c->rev = c->wev = NULL;
		close(fd);
		c->fd = -1;
		errno = err;
		goto fail;
	}
	if (c->warned)
		log_info("auth client: connected to %s again", c->path);
	c->warned = false;
	ac_start_handshake(c);
	return 0;
fail:
	if (!c->warned)
		log_warn("auth client: cannot connect to %s", c->path);
	c->warned = true;
	return -1;
}

static void
ac_write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct authc *c = arg;

	(void)what;
	if (c->state == AC_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof(err);

		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		if (err != 0) {
			ac_disconnect(c, strerror(err));
			return;
		}
		ac_start_handshake(c);
		return;
	}
	ac_flush(c);
}

/* ---- requests -------------------------------------------------------- */

static bool
mech_syntax_ok(const char *m)
{
	size_t n = strlen(m);

	if (n == 0 || n > AUTHC_MECH_LEN)
		return false;
	return strspn(m, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789-_") == n;
}

/* base64 as the server will take it ("" and "=" are empty responses) */
static bool
b64_chars_ok(const char *s)
{
	return auth_proto_b64_ok(s);
}

/* Send a request's AUTH line now that the handshake is done. */
static void
req_send(struct authc *c, struct areq *r)
{
	if (!authc_has_mech(c, r->mech)) {
		req_finish(c, r, AUTHC_FAIL, "mechanism not available", NULL);
		return;
	}
	if (!ac_write(c, r->line, r->line_len)) {
		req_finish(c, r, AUTHC_TEMPFAIL, "auth service not reading", NULL);
		return;
	}
	secure_zero(r->line, r->line_len);
	free(r->line);
	r->line = NULL;
	r->sent = true;
}

static void
req_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct areq *r = arg;
	struct authc *c = r->c;

	(void)fd;
	(void)what;
	if (c->state != AC_READY) {
		/* the handshake never finished: the connection is useless */
		req_finish(c, r, AUTHC_TEMPFAIL, "auth service timeout", NULL);
		ac_disconnect(c, "handshake timeout");
		return;
	}
	if (r->sent) {
		char buf[32];
		int n = snprintf(buf, sizeof(buf), "CANCEL\t%u\n", r->id);

		ac_write(c, buf, (size_t)n);
		ac_flush(c);
	}
	log_warnx("auth client: request %u timed out", r->id);
	req_finish(c, r, AUTHC_TEMPFAIL, "auth service timeout", NULL);
}

/* Build the AUTH line: service=, lip=, ... then resp= last. */
static void
build_auth_line(struct sbuf *b, const struct areq *r, const char *initial,
    const struct authc_info *info)
{
	sbuf_printf(b, "AUTH\t%u\t%s\tservice=", r->id, r->mech);
	auth_proto_escape(b, info && info->service ? info->service : "smtp");
	if (info != NULL && info->local_ip != NULL && info->local_ip[0] != '\0') {
		sbuf_addstr(b, "\tlip=");
		auth_proto_escape(b, info->local_ip);
	}
	if (info != NULL && info->remote_ip != NULL && info->remote_ip[0] != '\0') {
		sbuf_addstr(b, "\trip=");
		auth_proto_escape(b, info->remote_ip);
	}
	if (info != NULL && info->local_port != 0)
		sbuf_printf(b, "\tlport=%u", info->local_port);
	if (info != NULL && info->remote_port != 0)
		sbuf_printf(b, "\trport=%u", info->remote_port);
	if (info != NULL && info->secured)
		sbuf_addstr(b, "\tsecured");
	if (info != NULL && info->no_penalty)
		sbuf_addstr(b, "\tno-penalty");
	if (info != NULL && info->session != NULL && info->session[0] != '\0') {
		sbuf_addstr(b, "\tsession=");
		auth_proto_escape(b, info->session);
	}
	if (initial != NULL) {
		/* "=" is SMTP's empty initial response; resp= is empty (v1.2) */
		sbuf_addstr(b, "\tresp=");
		if (strcmp(initial, "=") != 0)
			sbuf_addstr(b, initial);
	}
	sbuf_addstr(b, "\n");
}

uint32_t
authc_begin(struct authc *c, const char *mech, const char *initial_b64,
    const struct authc_info *info, authc_cb *cb, void *ctx)
{
	struct areq *r = xcalloc(1, sizeof(*r));
	struct timeval tv;
	struct sbuf b;
	uint32_t id;

	do {
		c->last_id++;
	} while (c->last_id == 0 || req_find(c, c->last_id) != NULL);
	id = r->id = c->last_id;
	r->c = c;
	r->cb = cb;
	r->ctx = ctx;
	TAILQ_INSERT_TAIL(&c->reqs, r, link);
	if ((r->timer = evtimer_new(c->base, req_timeout_cb, r)) == NULL)
		fatalx("auth client: evtimer_new");
	tv.tv_sec = c->timeout_ms / 1000;
	tv.tv_usec = (c->timeout_ms % 1000) * 1000;
	evtimer_add(r->timer, &tv);

	if (mech == NULL || !mech_syntax_ok(mech)) {
		req_finish(c, r, AUTHC_FAIL, "mechanism not available", NULL);
		return id;
	}
	snprintf(r->mech, sizeof(r->mech), "%s", mech);
	if (initial_b64 != NULL && !b64_chars_ok(initial_b64)) {
		req_finish(c, r, AUTHC_BADB64, "invalid base64 data in initial response",
		    NULL);
		return id;
	}
	sbuf_init(&b, AUTHC_MAX_LINE);
	build_auth_line(&b, r, initial_b64, info);
	if (b.len > AUTHC_MAX_LINE || b.len == 0 || b.s[b.len - 1] != '\n') {
		if (b.s != NULL)
			secure_zero(b.s, b.len);
		sbuf_free(&b);
		req_finish(c, r, AUTHC_FAIL, "authentication data too long", NULL);
		return id;
	}
	r->line = b.s;               /* ownership moves to the request */
	r->line_len = b.len;

	if (ac_connect(c) < 0) {
		req_finish(c, r, AUTHC_TEMPFAIL, "auth service unavailable", NULL);
		return id;
	}
	if (c->state == AC_READY) {
		req_send(c, r);
		ac_flush(c);
	}
	return id;                   /* otherwise sent when DONE arrives */
}

void
authc_continue(struct authc *c, uint32_t id, const char *b64)
{
	struct areq *r = req_find(c, id);
	struct sbuf b;

	if (r == NULL || !r->sent || c->state != AC_READY)
		return;
	if (b64 == NULL || !b64_chars_ok(b64)) {
		char buf[32];
		int n = snprintf(buf, sizeof(buf), "CANCEL\t%u\n", id);

		ac_write(c, buf, (size_t)n);
		ac_flush(c);
		req_finish(c, r, AUTHC_BADB64, "invalid base64 data in continued response",
		    NULL);
		return;
	}
	sbuf_init(&b, 0);
	sbuf_printf(&b, "CONT\t%u\t%s\n", id, b64);
	if (b.len > AUTHC_MAX_LINE + 1 || !ac_write(c, b.s, b.len))
		req_finish(c, r, AUTHC_FAIL, "authentication data too long", NULL);
	secure_zero(b.s, b.len);
	sbuf_free(&b);
	ac_flush(c);
}

void
authc_abort(struct authc *c, uint32_t id)
{
	struct areq *r = req_find(c, id);
	struct acall *a, *next;

	if (r != NULL) {
		if (r->sent && c->state == AC_READY) {
			char buf[32];
			int n = snprintf(buf, sizeof(buf), "CANCEL\t%u\n", id);

			ac_write(c, buf, (size_t)n);
			ac_flush(c);
		}
		req_finish(c, r, -1, NULL, NULL);
	}
	for (a = TAILQ_FIRST(&c->calls); a != NULL; a = next) {
		next = TAILQ_NEXT(a, link);
		if (a->id == id) {
			TAILQ_REMOVE(&c->calls, a, link);
			acall_free(a);
		}
	}
}

/* ---- input ----------------------------------------------------------- */


static void
handshake_line(struct authc *c, char **f, size_t n)
{
	if (strcmp(f[0], "VERSION") == 0) {
		unsigned long long major;

		if (n < 3 || !parse_uint(f[1], 1000000, &major) || major != 1) {
			ac_disconnect(c, "auth protocol version mismatch");
			return;
		}
		c->got_version = true;
	} else if (strcmp(f[0], "MECH") == 0) {
		bool priv = false;

		if (n < 2 || f[1][0] == '\0') {
			ac_disconnect(c, "MECH without a name");
			return;
		}
		c->n_mech_lines++;
		for (size_t i = 2; i < n; i++)
			if (strcasecmp(f[i], "private") == 0)
				priv = true;
		if (!priv && mech_syntax_ok(f[1]) && c->n_mechs < AUTHC_MAX_MECHS &&
		    !authc_has_mech(c, f[1])) {
			char *m = xstrdup(f[1]);

			for (char *p = m; *p; p++)
				if (*p >= 'a' && *p <= 'z')
					*p = (char)(*p - 'a' + 'A');
			c->mechs[c->n_mechs++] = m;
		}
	} else if (strcmp(f[0], "COOKIE") == 0) {
		if (n < 2 || f[1][0] == '\0') {
			ac_disconnect(c, "bad COOKIE");
			return;
		}
		c->got_cookie = true;
	} else if (strcmp(f[0], "DONE") == 0) {
		struct areq *r, *next;
		size_t len = 0;

		if (!c->got_version || c->n_mech_lines == 0 || !c->got_cookie) {
			ac_disconnect(c, "incomplete handshake (not an auth client socket?)");
			return;
		}
		c->mechs_str[0] = '\0';
		for (size_t i = 0; i < c->n_mechs; i++)
			len += (size_t)snprintf(c->mechs_str + len,
			    sizeof(c->mechs_str) - len, "%s%s", i ? " " : "",
			    c->mechs[i]);
		c->state = AC_READY;
		for (r = TAILQ_FIRST(&c->reqs); r != NULL; r = next) {
			next = TAILQ_NEXT(r, link);
			if (!r->sent)
				req_send(c, r);
		}
		ac_flush(c);
	}
	/* SPID, CUID and anything unknown: ignored */
}

static void
reply_line(struct authc *c, char **f, size_t n)
{
	uint32_t idv;
	struct areq *r;
	struct sbuf extra;
	const char *user = NULL, *reason = NULL;
	bool reject = false, temp = false, badb64 = false;
	size_t i;

	if (n < 2 || !auth_proto_parse_id(f[1], &idv))
		return;
	if ((r = req_find(c, idv)) == NULL || !r->sent)
		return;                  /* late answer to a cancelled request */

	if (strcmp(f[0], "CONT") == 0) {
		const char *data = n >= 3 ? f[2] : "";

		if (!b64_chars_ok(data)) {
			req_finish(c, r, AUTHC_TEMPFAIL, "bad challenge from auth service",
			    NULL);
			return;
		}
		ac_call(c, r, AUTHC_CONT, data, NULL);
		return;
	}
	if (strcmp(f[0], "OK") != 0 && strcmp(f[0], "FAIL") != 0)
		return;

	sbuf_init(&extra, 0);
	for (i = 2; i < n; i++) {
		char *k = f[i];

		if (k[0] == '\0')
			continue;        /* empty fields are skipped */
		if (!auth_proto_unescape(k))
			continue;
		if (strncmp(k, "user=", 5) == 0 && strcmp(f[0], "OK") == 0) {
			user = k + 5;
			continue;
		}
		if (strncmp(k, "reason=", 7) == 0 && strcmp(f[0], "FAIL") == 0) {
			reason = k + 7;
			continue;
		}
		if (strcmp(k, "code=temp_fail") == 0 || strcmp(k, "temp") == 0)
			temp = true;
		else if (strcmp(k, "code=invalid_base64") == 0)
			badb64 = true;
		else if (strcmp(k, "nologin") == 0 || strncmp(k, "nologin=", 8) == 0 ||
		    strcmp(k, "proxy") == 0 || strncmp(k, "proxy=", 6) == 0)
			reject = true;
		if (extra.len > 0)
			sbuf_addstr(&extra, "\t");
		sbuf_addstr(&extra, k);
	}
	if (strcmp(f[0], "OK") == 0) {
		if (reject)
			req_finish(c, r, AUTHC_FAIL, NULL, extra.len ? extra.s : NULL);
		else if (user == NULL || user[0] == '\0')
			req_finish(c, r, AUTHC_TEMPFAIL, "auth service sent OK without user",
			    NULL);
		else
			req_finish(c, r, AUTHC_OK, user, extra.len ? extra.s : NULL);
	} else {
		req_finish(c, r, temp ? AUTHC_TEMPFAIL : badb64 ? AUTHC_BADB64 :
		    AUTHC_FAIL, reason, extra.len ? extra.s : NULL);
	}
	sbuf_free(&extra);
}

static void
ac_line(struct authc *c, char *line)
{
	char *f[AUTHC_MAX_FIELDS];
	size_t n = auth_proto_split(line, f, AUTHC_MAX_FIELDS);

	if (c->state == AC_HANDSHAKE)
		handshake_line(c, f, n);
	else if (c->state == AC_READY)
		reply_line(c, f, n);
}

static void
ac_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct authc *c = arg;
	ssize_t n;

	(void)what;
	for (;;) {
		char *lf, *start;

		n = recv(fd, c->in + c->in_len, sizeof(c->in) - 1 - c->in_len,
		    MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				ac_disconnect(c, strerror(errno));
			return;
		}
		if (n == 0) {
			ac_disconnect(c, TAILQ_EMPTY(&c->reqs) ? NULL :
			    "closed by the auth service");
			return;
		}
		c->in_len += (size_t)n;
		c->in[c->in_len] = '\0';
		start = c->in;
		while (c->fd == fd &&
		    (lf = memchr(start, '\n', c->in_len - (size_t)(start - c->in))) != NULL) {
			*lf = '\0';
			if (memchr(start, '\0', (size_t)(lf - start)) != NULL) {
				ac_disconnect(c, "NUL byte from the auth service");
				return;
			}
			ac_line(c, start);
			start = lf + 1;
		}
		if (c->fd != fd)
			return;
		c->in_len -= (size_t)(start - c->in);
		memmove(c->in, start, c->in_len);
		if (c->in_len > AUTHC_MAX_LINE) {
			ac_disconnect(c, "line too long from the auth service");
			return;
		}
	}
}

/* ---- public ---------------------------------------------------------- */

struct authc *
authc_new(struct event_base *base, const char *socket_path, int timeout_ms)
{
	struct authc *c = xcalloc(1, sizeof(*c));

	c->base = base;
	c->path = xstrdup(socket_path);
	c->timeout_ms = timeout_ms > 0 ? timeout_ms : 20000;
	c->fd = -1;
	c->state = AC_DOWN;
	TAILQ_INIT(&c->reqs);
	TAILQ_INIT(&c->calls);
	if ((c->defer = event_new(base, -1, 0, ac_defer_cb, c)) == NULL)
		fatalx("auth client: event_new");
	return c;
}

void
authc_free(struct authc *c)
{
	struct areq *r;
	struct acall *a;

	if (c == NULL)
		return;
	if (c->dispatching) {
		c->freed = true;
		return;
	}
	while ((r = TAILQ_FIRST(&c->reqs)) != NULL)
		req_finish(c, r, -1, NULL, NULL);
	ac_disconnect(c, NULL);
	while ((a = TAILQ_FIRST(&c->calls)) != NULL) {
		TAILQ_REMOVE(&c->calls, a, link);
		acall_free(a);
	}
	if (c->out != NULL) {
		secure_zero(c->out, c->out_cap);
		free(c->out);
	}
	handshake_reset(c);
	event_free(c->defer);
	free(c->path);
	free(c);
}

void
authc_connect(struct authc *c)
{
	(void)ac_connect(c);
}

bool
authc_ready(const struct authc *c)
{
	return c->fd >= 0 && c->state == AC_READY;
}

bool
authc_has_mech(const struct authc *c, const char *mech)
{
	size_t i;

	for (i = 0; i < c->n_mechs; i++)
		if (strcasecmp(c->mechs[i], mech) == 0)
			return true;
	return false;
}

const char *
authc_mechs(const struct authc *c)
{
	return c->state == AC_READY ? c->mechs_str : "";
}
