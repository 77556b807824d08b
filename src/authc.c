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
 * The socket, line reading, output buffer and request ids are the core
 * shared with the userdb client (auth-client-conn.h).
 */
#include <sys/types.h>
#include <sys/queue.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/event.h>

#include "auth-client-conn.h"
#include "auth-proto.h"
#include "authc.h"
#include "log.h"
#include "util.h"

#define AUTHC_MAX_LINE   (AUTH_PROTO_MAX_LINE - 1)   /* without the LF */
#define AUTHC_MAX_MECHS  32
#define AUTHC_MECH_LEN   63
#define AUTHC_OUT_MAX    (1024 * 1024)    /* unsent output */
#define AUTHC_MAX_FIELDS 128

/* AC_DOWN: no connection, or still connecting */
enum ac_state { AC_DOWN, AC_HANDSHAKE, AC_READY };

struct areq {
	struct acc_req hdr;          /* id, link in conn.reqs, timer */
	struct authc *c;
	authc_cb *cb;
	void *ctx;
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
	struct acc_conn conn;        /* socket, buffers, requests in flight */
	enum ac_state state;
	struct event *defer;
	TAILQ_HEAD(, acall) calls;
	/* handshake */
	bool got_version, got_cookie;
	unsigned n_mech_lines;
	char *mechs[AUTHC_MAX_MECHS];
	size_t n_mechs;
	char mechs_str[AUTHC_MAX_MECHS * (AUTHC_MECH_LEN + 1) + 1];
	bool dispatching, freed;
};

static void ac_disconnect(struct authc *c, const char *why);

/* The request around a core request header (h may be NULL). */
static struct areq *
areq_of(struct acc_req *h)
{
	return h != NULL ? ACC_CONTAINER(h, struct areq, hdr) : NULL;
}

/* ---- callbacks ------------------------------------------------------- */

static void
ac_call(struct authc *c, struct areq *r, enum authc_result res,
    const char *data, const char *extra)
{
	struct acall *a = xcalloc(1, sizeof(*a));

	a->id = r->hdr.id;
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
	acc_req_remove(&c->conn, &r->hdr);
	if (res >= 0)
		ac_call(c, r, (enum authc_result)res, data, extra);
	req_free(r);
}

static struct areq *
req_find(struct authc *c, uint32_t id)
{
	return areq_of(acc_req_find(&c->conn, id));
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

	if (!acc_is_open(&c->conn))
		return;
	if (why != NULL)
		log_warnx("auth client: connection to %s lost: %s", c->conn.path, why);
	acc_close(&c->conn);
	c->state = AC_DOWN;
	handshake_reset(c);
	while ((r = areq_of(TAILQ_FIRST(&c->conn.reqs))) != NULL)
		req_finish(c, r, AUTHC_TEMPFAIL, "connection to the auth service lost",
		    NULL);
}

/* acc_ops.down: the core gave up on the connection. */
static void
ac_down(void *arg, const char *why)
{
	ac_disconnect(arg, why);
}

/* acc_ops.connected: VERSION and CPID at once (Dovecot 2.4 waits for them). */
static void
ac_connected(void *arg)
{
	struct authc *c = arg;
	char buf[64];
	int n;

	c->state = AC_HANDSHAKE;
	n = snprintf(buf, sizeof(buf), "VERSION\t1\t2\nCPID\t%ld\n", (long)getpid());
	acc_write(&c->conn, buf, (size_t)n);
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
	if (!acc_write(&c->conn, r->line, r->line_len)) {
		req_finish(c, r, AUTHC_TEMPFAIL, "auth service not reading", NULL);
		return;
	}
	secure_zero(r->line, r->line_len);
	free(r->line);
	r->line = NULL;
	r->sent = true;
}

/*
 * Tell the server to forget request id (a late answer is ignored).  A
 * failed send drops the connection and finishes every request on it, so
 * callers finish their own request before they call this.
 */
static void
send_cancel(struct authc *c, uint32_t id)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "CANCEL\t%u\n", id);

	acc_write(&c->conn, buf, (size_t)n);
	acc_flush(&c->conn);
}

static void
req_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct areq *r = arg;
	struct authc *c = r->c;
	uint32_t id;
	bool sent;

	(void)fd;
	(void)what;
	if (c->state != AC_READY) {
		/* the handshake never finished: the connection is useless */
		req_finish(c, r, AUTHC_TEMPFAIL, "auth service timeout", NULL);
		ac_disconnect(c, "handshake timeout");
		return;
	}
	id = r->hdr.id;
	sent = r->sent;
	log_warnx("auth client: request %u timed out", id);
	req_finish(c, r, AUTHC_TEMPFAIL, "auth service timeout", NULL);
	if (sent)
		send_cancel(c, id);     /* may drop the connection: r is gone */
}

/* Build the AUTH line: service=, lip=, ... then resp= last. */
static void
build_auth_line(struct sbuf *b, const struct areq *r, const char *initial,
    const struct authc_info *info)
{
	sbuf_printf(b, "AUTH\t%u\t%s\tservice=", r->hdr.id, r->mech);
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
	struct sbuf b;
	uint32_t id;

	acc_req_add(&c->conn, &r->hdr);
	id = r->hdr.id;
	r->c = c;
	r->cb = cb;
	r->ctx = ctx;
	acc_req_arm(&c->conn, &r->hdr, req_timeout_cb, r);

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

	if (acc_connect(&c->conn) < 0) {
		req_finish(c, r, AUTHC_TEMPFAIL, "auth service unavailable", NULL);
		return id;
	}
	if (c->state == AC_READY) {
		req_send(c, r);
		acc_flush(&c->conn);
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
		req_finish(c, r, AUTHC_BADB64, "invalid base64 data in continued response",
		    NULL);
		send_cancel(c, id);     /* after: a failed send drops every request */
		return;
	}
	sbuf_init(&b, 0);
	sbuf_printf(&b, "CONT\t%u\t%s\n", id, b64);
	if (b.len > AUTHC_MAX_LINE + 1 || !acc_write(&c->conn, b.s, b.len))
		req_finish(c, r, AUTHC_FAIL, "authentication data too long", NULL);
	secure_zero(b.s, b.len);
	sbuf_free(&b);
	acc_flush(&c->conn);
}

void
authc_abort(struct authc *c, uint32_t id)
{
	struct areq *r = req_find(c, id);
	struct acall *a, *next;

	if (r != NULL) {
		bool cancel = r->sent && c->state == AC_READY;

		req_finish(c, r, -1, NULL, NULL);
		if (cancel)
			send_cancel(c, id);     /* after: a failed send drops every request */
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
		struct acc_req *h, *next;
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
		for (h = TAILQ_FIRST(&c->conn.reqs); h != NULL; h = next) {
			struct areq *r = areq_of(h);

			next = TAILQ_NEXT(h, link);
			if (!r->sent)
				req_send(c, r);
		}
		acc_flush(&c->conn);
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

/* acc_ops.line: one line from the server (LF removed). */
static void
ac_line(void *arg, char *line)
{
	struct authc *c = arg;
	char *f[AUTHC_MAX_FIELDS];
	size_t n = auth_proto_split(line, f, AUTHC_MAX_FIELDS);

	if (c->state == AC_HANDSHAKE)
		handshake_line(c, f, n);
	else if (c->state == AC_READY)
		reply_line(c, f, n);
}

static const struct acc_ops ac_ops = {
	.connected = ac_connected,
	.line = ac_line,
	.down = ac_down,
	.eof = "closed by the auth service",
	.long_line = "line too long from the auth service",
	.nul = "NUL byte from the auth service",
	.idle_eof_quiet = true,
};

/* ---- public ---------------------------------------------------------- */

struct authc *
authc_new(struct event_base *base, const char *socket_path, int timeout_ms)
{
	struct authc *c = xcalloc(1, sizeof(*c));

	acc_init(&c->conn, base, "auth client", socket_path,
	    timeout_ms > 0 ? timeout_ms : 20000, AUTHC_MAX_LINE, AUTHC_OUT_MAX,
	    &ac_ops, c);
	c->state = AC_DOWN;
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
	while ((r = areq_of(TAILQ_FIRST(&c->conn.reqs))) != NULL)
		req_finish(c, r, -1, NULL, NULL);
	ac_disconnect(c, NULL);
	while ((a = TAILQ_FIRST(&c->calls)) != NULL) {
		TAILQ_REMOVE(&c->calls, a, link);
		acall_free(a);
	}
	acc_cleanup(&c->conn);
	handshake_reset(c);
	event_free(c->defer);
	free(c);
}

void
authc_connect(struct authc *c)
{
	(void)acc_connect(&c->conn);
}

bool
authc_ready(const struct authc *c)
{
	return acc_is_open(&c->conn) && c->state == AC_READY;
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
