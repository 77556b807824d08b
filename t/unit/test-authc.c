/*
 * test-authc.c - the Dovecot auth protocol client (src/authc.c) against a
 * scripted fake server on a temporary UNIX socket, both on one libevent
 * loop.  Covers the handshake in any order (and 2.4-style, where the
 * server waits for VERSION), private mechanisms, the exact AUTH line
 * (escaping, resp= last), OK/FAIL/CONT parsing, codes, nologin/proxy,
 * empty fields, requests queued before DONE, timeouts, abort, connection
 * loss and reconnect, overlong lines, and that no callback runs inside a
 * call.
 */
#include <sys/types.h>
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
#include <event2/listener.h>

#include "authc.h"
#include "log.h"
#include "tap.h"
#include "util.h"

enum srv_mode { SRV_NORMAL, SRV_WAIT_VERSION, SRV_DELAYED, SRV_BAD_MAJOR,
	SRV_NO_DONE, SRV_LONG_LINE };

static struct event_base *base;
static char tmpdir[] = "/tmp/test-authc.XXXXXX";
static char sockpath[256];
static enum srv_mode mode;
static int n_accepts;
static struct bufferevent *srv_bev;   /* the current server connection */
static unsigned srv_gen;
static char *srv_lines[512];          /* what the server received */
static size_t n_srv_lines;

static const char handshake_rest[] =
    "MECH\tPLAIN\tplaintext\n"
    "COOKIE\t46cc85ccd2833ca39a49c059fa3d3ccf\n"
    "MECH\tSECRET\tprivate\n"
    "SPID\t4711\n"
    "MECH\tlogin\tplaintext\n"
    "CUID\t1\n"
    "DONE\n";

/* ---- the fake server ------------------------------------------------------ */

static void
srv_send(const char *s)
{
	if (srv_bev != NULL)
		bufferevent_write(srv_bev, s, strlen(s));
}

static void
srv_close(void)
{
	if (srv_bev != NULL) {
		bufferevent_free(srv_bev);
		srv_bev = NULL;
		srv_gen++;
	}
}

struct later {
	unsigned gen;
	char *text;
};

static void
later_cb(evutil_socket_t fd, short what, void *arg)
{
	struct later *l = arg;

	(void)fd;
	(void)what;
	if (l->gen == srv_gen)
		srv_send(l->text);
	free(l->text);
	free(l);
}

static void
srv_send_later(int ms, const char *s)
{
	struct later *l = xcalloc(1, sizeof(*l));
	struct timeval tv = { 0, ms * 1000 };

	l->gen = srv_gen;
	l->text = xstrdup(s);
	event_base_once(base, -1, EV_TIMEOUT, later_cb, l, &tv);
}

/* Answer a PLAIN payload "\0user\0pass" for request id. */
static void
srv_plain(const char *id, const char *b64)
{
	unsigned char dec[512] = { 0 };   /* an empty response leaves user "" */
	ssize_t n = b64_decode(b64, strlen(b64), dec);
	const char *user, *pass;
	char out[600];

	if (n < 0) {
		snprintf(out, sizeof(out), "FAIL\t%s\tcode=invalid_base64\treason=Invalid "
		    "base64 data in initial response\n", id);
		srv_send(out);
		return;
	}
	dec[n] = '\0';
	user = (char *)dec + 1;
	pass = user + strlen(user) + 1;
	if ((char *)dec + n < pass)
		pass = "";
	if (strcmp(user, "alice") == 0 && strcmp(pass, "secret") == 0)
		snprintf(out, sizeof(out), "OK\t%s\tuser=alice\t\tquota=1\tnote=a\001tb\n", id);
	else if (strcmp(user, "alice") == 0)
		snprintf(out, sizeof(out), "FAIL\t%s\tuser=alice\treason=bad\001tpw\n", id);
	else if (strcmp(user, "b64") == 0)
		snprintf(out, sizeof(out), "FAIL\t%s\tcode=invalid_base64\n", id);
	else if (strcmp(user, "temp") == 0)
		snprintf(out, sizeof(out), "FAIL\t%s\tcode=temp_fail\treason=backend down\n", id);
	else if (strcmp(user, "proxy") == 0)
		snprintf(out, sizeof(out), "OK\t%s\tuser=proxy\tproxy\thost=192.0.2.1\n", id);
	else if (strcmp(user, "nologin") == 0)
		snprintf(out, sizeof(out), "OK\t%s\tuser=nologin\tnologin\treason=go away\n", id);
	else if (strcmp(user, "nouser") == 0)
		snprintf(out, sizeof(out), "OK\t%s\tfoo=bar\n", id);
	else if (strcmp(user, "slow") == 0)
		return;                          /* never answered */
	else if (strcmp(user, "late") == 0) {
		snprintf(out, sizeof(out), "OK\t%s\tuser=late\n", id);
		srv_send_later(100, out);
		return;
	} else if (strcmp(user, "drop") == 0) {
		srv_close();
		return;
	} else if (strcmp(user, "long") == 0) {
		char *big = xmalloc(20001);

		memset(big, 'x', 20000);
		big[20000] = '\0';
		srv_send(big);
		free(big);
		return;
	} else
		snprintf(out, sizeof(out), "FAIL\t%s\tuser=%s\n", id, user);
	srv_send(out);
}

static void
srv_line(char *line)
{
	char *f[32];
	size_t n = 0;
	char *p, out[128];

	if (n_srv_lines < 512)
		srv_lines[n_srv_lines++] = xstrdup(line);
	f[n++] = line;
	for (p = line; *p && n < 32; p++)
		if (*p == '\t') {
			*p = '\0';
			f[n++] = p + 1;
		}
	if (strcmp(f[0], "CPID") == 0 && mode == SRV_WAIT_VERSION)
		srv_send(handshake_rest);
	if (strcmp(f[0], "AUTH") == 0 && n >= 3) {
		const char *resp = NULL;

		if (strncmp(f[n - 1], "resp=", 5) == 0)
			resp = f[n - 1] + 5;
		if (strcasecmp(f[2], "LOGIN") == 0) {
			snprintf(out, sizeof(out), "CONT\t%s\tVXNlcm5hbWU6\n", f[1]);
			srv_send(out);
		} else if (resp == NULL) {
			snprintf(out, sizeof(out), "CONT\t%s\t\n", f[1]);
			srv_send(out);
		} else
			srv_plain(f[1], resp);
	} else if (strcmp(f[0], "CONT") == 0 && n >= 3) {
		/* LOGIN: user name, then password; PLAIN: the payload */
		if (strcmp(f[2], "YWxpY2U=") == 0) {
			snprintf(out, sizeof(out), "CONT\t%s\tUGFzc3dvcmQ6\n", f[1]);
			srv_send(out);
		} else if (strcmp(f[2], "c2VjcmV0") == 0) {
			snprintf(out, sizeof(out), "OK\t%s\tuser=alice\n", f[1]);
			srv_send(out);
		} else
			srv_plain(f[1], f[2]);
	}
}

static void
srv_read_cb(struct bufferevent *bev, void *arg)
{
	char *line;
	size_t len;

	(void)arg;
	while (srv_bev == bev &&
	    (line = evbuffer_readln(bufferevent_get_input(bev), &len,
	    EVBUFFER_EOL_LF)) != NULL) {
		srv_line(line);
		free(line);
	}
}

static void
srv_event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)arg;
	if ((what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) && bev == srv_bev)
		srv_close();
}

static void
srv_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	(void)l;
	(void)sa;
	(void)salen;
	(void)arg;
	n_accepts++;
	srv_close();                     /* one connection at a time */
	srv_bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(srv_bev, srv_read_cb, NULL, srv_event_cb, NULL);
	bufferevent_enable(srv_bev, EV_READ | EV_WRITE);
	switch (mode) {
	case SRV_NORMAL:
	case SRV_LONG_LINE:
		/* the whole handshake at once, in a scrambled order */
		srv_send("MECH\tPLAIN\tplaintext\nCOOKIE\t46cc85ccd2833ca39a49c059fa3d3ccf\n"
		    "MECH\tSECRET\tprivate\nSPID\t4711\nVERSION\t1\t2\n"
		    "MECH\tlogin\tplaintext\nCUID\t1\nDONE\n");
		break;
	case SRV_WAIT_VERSION:
		srv_send("VERSION\t1\t3\n");
		break;
	case SRV_DELAYED:
		srv_send("VERSION\t1\t2\n");
		srv_send_later(200, handshake_rest);
		break;
	case SRV_BAD_MAJOR:
		srv_send("VERSION\t2\t0\n");
		srv_send(handshake_rest);
		break;
	case SRV_NO_DONE:
		srv_send("VERSION\t1\t1\nSPID\t4711\n");   /* an auth-master socket */
		break;
	}
}

/* ---- client side helpers ---------------------------------------------------- */

struct res {
	int done, n_calls;
	enum authc_result res;
	char data[256], extra[256];
	int has_data, has_extra;
};

static void
res_cb(void *ctx, enum authc_result r, const char *data, const char *extra)
{
	struct res *x = ctx;

	x->n_calls++;
	x->done = 1;
	x->res = r;
	x->has_data = data != NULL;
	x->has_extra = extra != NULL;
	snprintf(x->data, sizeof(x->data), "%s", data ? data : "");
	snprintf(x->extra, sizeof(x->extra), "%s", extra ? extra : "");
}

static void
wait_done(int *done)
{
	while (!*done)
		event_base_loop(base, EVLOOP_ONCE);
}

static void
spin(int ms)
{
	struct timeval tv = { 0, ms * 1000 };

	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
}

static char *
plain_b64(const char *user, const char *pass)
{
	unsigned char buf[256];
	size_t ul = strlen(user), pl = strlen(pass), n = 2 + ul + pl;
	char *out = xmalloc(b64_encoded_len(n) + 1);

	buf[0] = '\0';
	memcpy(buf + 1, user, ul);
	buf[1 + ul] = '\0';
	memcpy(buf + 2 + ul, pass, pl);
	b64_encode(buf, n, out);
	return out;
}

/* Run one PLAIN request to completion. */
static uint32_t
plain(struct authc *c, const char *user, const char *pass, struct res *r)
{
	char *b64 = plain_b64(user, pass);
	uint32_t id;

	memset(r, 0, sizeof(*r));
	id = authc_begin(c, "PLAIN", b64, NULL, res_cb, r);
	free(b64);
	ok(!r->done, "%s: callback not run inside authc_begin", user);
	wait_done(&r->done);
	return id;
}

static const char *
last_line(const char *prefix)
{
	for (size_t i = n_srv_lines; i > 0; i--)
		if (strncmp(srv_lines[i - 1], prefix, strlen(prefix)) == 0)
			return srv_lines[i - 1];
	return NULL;
}

static void
clear_lines(void)
{
	for (size_t i = 0; i < n_srv_lines; i++)
		free(srv_lines[i]);
	n_srv_lines = 0;
}

/* ---- tests ---------------------------------------------------------------- */

static void
test_handshake_and_results(void)
{
	struct authc *c = authc_new(base, sockpath, 5000);
	struct authc_info info;
	struct res r;
	char *b64, want[512], cpid[32];
	uint32_t id1, id2;

	mode = SRV_NORMAL;
	clear_lines();
	is_str(authc_mechs(c), "", "no mechanisms before the handshake");
	authc_connect(c);
	while (!authc_ready(c))
		event_base_loop(base, EVLOOP_ONCE);
	ok(n_srv_lines >= 2 && strcmp(srv_lines[0], "VERSION\t1\t2") == 0,
	    "client sends VERSION 1 2 first");
	snprintf(cpid, sizeof(cpid), "CPID\t%ld", (long)getpid());
	is_str(n_srv_lines >= 2 ? srv_lines[1] : NULL, cpid, "then CPID");
	is_str(authc_mechs(c), "PLAIN LOGIN", "mechanisms, private one skipped");
	ok(authc_has_mech(c, "plain") && authc_has_mech(c, "LOGIN"),
	    "has_mech is case-insensitive");
	ok(!authc_has_mech(c, "SECRET"), "private mechanism not offered");

	/* success, with escaping and the exact AUTH line */
	memset(&info, 0, sizeof(info));
	info.service = "smtp";
	info.local_ip = "192.0.2.10";
	info.remote_ip = "198.51.100.7";
	info.local_port = 587;
	info.remote_port = 40000;
	info.secured = true;
	info.no_penalty = true;
	info.session = "s\tid\n1";
	b64 = plain_b64("alice", "secret");
	memset(&r, 0, sizeof(r));
	id1 = authc_begin(c, "PLAIN", b64, &info, res_cb, &r);
	ok(!r.done, "callback not run inside authc_begin");
	wait_done(&r.done);
	is_int(r.res, AUTHC_OK, "alice/secret: OK");
	is_str(r.data, "alice", "user name");
	is_str(r.extra, "quota=1\tnote=a\tb", "extra fields: empty skipped, unescaped");
	snprintf(want, sizeof(want), "AUTH\t%u\tPLAIN\tservice=smtp\tlip=192.0.2.10\t"
	    "rip=198.51.100.7\tlport=587\trport=40000\tsecured\tno-penalty\t"
	    "session=s\001tid\001n1\tresp=%s", id1, b64);
	is_str(last_line("AUTH"), want, "AUTH line: fields escaped, resp= last");
	free(b64);
	ok(id1 != 0, "id is not 0");

	id2 = plain(c, "alice", "wrong", &r);
	ok(id2 > id1, "ids increase");
	is_int(r.res, AUTHC_FAIL, "wrong password: FAIL");
	is_str(r.data, "bad\tpw", "reason unescaped");
	ok(strstr(r.extra, "user=alice") != NULL, "FAIL extra has user=");

	plain(c, "temp", "x", &r);
	is_int(r.res, AUTHC_TEMPFAIL, "code=temp_fail: TEMPFAIL");
	is_str(r.data, "backend down", "temp reason");
	plain(c, "proxy", "x", &r);
	is_int(r.res, AUTHC_FAIL, "OK with proxy: FAIL");
	plain(c, "nologin", "x", &r);
	is_int(r.res, AUTHC_FAIL, "OK with nologin: FAIL");
	plain(c, "nouser", "x", &r);
	is_int(r.res, AUTHC_TEMPFAIL, "OK without user=: TEMPFAIL");
	plain(c, "nobody", "x", &r);
	is_int(r.res, AUTHC_FAIL, "plain FAIL");
	ok(!r.has_data, "no reason: data NULL");

	/* the server says invalid_base64 */
	plain(c, "b64", "x", &r);
	is_int(r.res, AUTHC_BADB64, "code=invalid_base64: BADB64");
	/* characters outside base64 never leave the client */
	{
		size_t before = n_srv_lines;

		memset(&r, 0, sizeof(r));
		authc_begin(c, "PLAIN", "AB\tCD", NULL, res_cb, &r);
		wait_done(&r.done);
		is_int(r.res, AUTHC_BADB64, "non-base64 initial response: BADB64");
		memset(&r, 0, sizeof(r));
		authc_begin(c, "PLAIN", "AAA", NULL, res_cb, &r);
		wait_done(&r.done);
		is_int(r.res, AUTHC_BADB64, "bad base64 length: BADB64");
		memset(&r, 0, sizeof(r));
		authc_begin(c, "CRAM-MD5", NULL, NULL, res_cb, &r);
		wait_done(&r.done);
		is_int(r.res, AUTHC_FAIL, "mechanism not offered: FAIL");
		memset(&r, 0, sizeof(r));
		authc_begin(c, "PLAIN\tX", NULL, NULL, res_cb, &r);
		wait_done(&r.done);
		is_int(r.res, AUTHC_FAIL, "bad mechanism name: FAIL");
		spin(20);
		is_int(n_srv_lines, before, "none of these was sent");
	}

	/* "=" is an empty initial response */
	memset(&r, 0, sizeof(r));
	authc_begin(c, "PLAIN", "=", NULL, res_cb, &r);
	wait_done(&r.done);
	ok(last_line("AUTH") && strstr(last_line("AUTH"), "\tresp=") &&
	    strcmp(strstr(last_line("AUTH"), "\tresp="), "\tresp=") == 0,
	    "'=' is sent as an empty resp=");

	/* CONT: PLAIN without initial response */
	{
		uint32_t id;

		memset(&r, 0, sizeof(r));
		id = authc_begin(c, "PLAIN", NULL, NULL, res_cb, &r);
		wait_done(&r.done);
		is_int(r.res, AUTHC_CONT, "PLAIN without initial response: CONT");
		ok(r.has_data && r.data[0] == '\0', "empty challenge");
		b64 = plain_b64("alice", "secret");
		memset(&r, 0, sizeof(r));
		authc_continue(c, id, b64);
		free(b64);
		ok(!r.done, "callback not run inside authc_continue");
		wait_done(&r.done);
		is_int(r.res, AUTHC_OK, "then OK");

		/* LOGIN: two challenges */
		memset(&r, 0, sizeof(r));
		id = authc_begin(c, "LOGIN", NULL, NULL, res_cb, &r);
		wait_done(&r.done);
		is_str(r.data, "VXNlcm5hbWU6", "LOGIN: Username: challenge");
		memset(&r, 0, sizeof(r));
		authc_continue(c, id, "YWxpY2U=");
		wait_done(&r.done);
		is_str(r.data, "UGFzc3dvcmQ6", "LOGIN: Password: challenge");
		memset(&r, 0, sizeof(r));
		authc_continue(c, id, "c2VjcmV0");
		wait_done(&r.done);
		is_int(r.res, AUTHC_OK, "LOGIN: OK");
		snprintf(want, sizeof(want), "CONT\t%u\tc2VjcmV0", id);
		is_str(last_line("CONT"), want, "CONT line");
	}

	/* several in flight, answered out of order */
	{
		struct res a, b, d;
		char *b1 = plain_b64("late", "x"), *b2 = plain_b64("alice", "secret"),
		    *b3 = plain_b64("alice", "nope");

		memset(&a, 0, sizeof(a));
		memset(&b, 0, sizeof(b));
		memset(&d, 0, sizeof(d));
		authc_begin(c, "PLAIN", b1, NULL, res_cb, &a);
		authc_begin(c, "PLAIN", b2, NULL, res_cb, &b);
		authc_begin(c, "PLAIN", b3, NULL, res_cb, &d);
		wait_done(&a.done);
		wait_done(&b.done);
		wait_done(&d.done);
		ok(a.res == AUTHC_OK && strcmp(a.data, "late") == 0 &&
		    b.res == AUTHC_OK && strcmp(b.data, "alice") == 0 &&
		    d.res == AUTHC_FAIL, "three requests in flight, matched by id");
		free(b1);
		free(b2);
		free(b3);
	}

	/* abort: no callback, CANCEL sent */
	{
		char *bs = plain_b64("slow", "x");
		uint32_t id;

		memset(&r, 0, sizeof(r));
		id = authc_begin(c, "PLAIN", bs, NULL, res_cb, &r);
		free(bs);
		spin(20);
		authc_abort(c, id);
		spin(50);
		ok(!r.done, "aborted request: no callback");
		snprintf(want, sizeof(want), "CANCEL\t%u", id);
		is_str(last_line("CANCEL"), want, "CANCEL sent");
	}

	/* connection loss: pending requests fail, the next one reconnects */
	{
		struct res s, d;
		char *bs = plain_b64("slow", "x"), *bd = plain_b64("drop", "x");
		int acc = n_accepts;

		memset(&s, 0, sizeof(s));
		memset(&d, 0, sizeof(d));
		authc_begin(c, "PLAIN", bs, NULL, res_cb, &s);
		authc_begin(c, "PLAIN", bd, NULL, res_cb, &d);
		wait_done(&s.done);
		wait_done(&d.done);
		ok(s.res == AUTHC_TEMPFAIL && d.res == AUTHC_TEMPFAIL,
		    "connection lost: every pending request TEMPFAIL");
		ok(!authc_ready(c), "not ready after the loss");
		plain(c, "alice", "secret", &r);
		is_int(r.res, AUTHC_OK, "next request reconnects and succeeds");
		is_int(n_accepts, acc + 1, "one new connection");
		free(bs);
		free(bd);
	}
	authc_free(c);
}

static void
test_timing(void)
{
	struct authc *c;
	struct res r, r2;
	char *b64;
	uint64_t t0;

	/* requests made before DONE wait for it */
	mode = SRV_DELAYED;
	clear_lines();
	c = authc_new(base, sockpath, 5000);
	b64 = plain_b64("alice", "secret");
	memset(&r, 0, sizeof(r));
	memset(&r2, 0, sizeof(r2));
	authc_begin(c, "PLAIN", b64, NULL, res_cb, &r);
	authc_begin(c, "LOGIN", NULL, NULL, res_cb, &r2);
	spin(50);
	ok(last_line("AUTH") == NULL, "nothing sent before DONE");
	wait_done(&r.done);
	wait_done(&r2.done);
	is_int(r.res, AUTHC_OK, "request queued before the handshake: OK");
	is_int(r2.res, AUTHC_CONT, "second queued request: CONT");
	authc_free(c);               /* with a request still open */

	/* 2.4 style: the server waits for our VERSION */
	mode = SRV_WAIT_VERSION;
	c = authc_new(base, sockpath, 5000);
	plain(c, "alice", "secret", &r);
	is_int(r.res, AUTHC_OK, "server that waits for VERSION: OK");
	authc_free(c);

	/* timeout */
	mode = SRV_NORMAL;
	c = authc_new(base, sockpath, 300);
	t0 = now_ms();
	plain(c, "slow", "x", &r);
	is_int(r.res, AUTHC_TEMPFAIL, "no answer: TEMPFAIL");
	ok(now_ms() - t0 >= 290, "after the timeout (%llu ms)",
	    (unsigned long long)(now_ms() - t0));
	spin(20);
	ok(last_line("CANCEL") != NULL, "timed-out request cancelled");
	plain(c, "alice", "secret", &r);
	is_int(r.res, AUTHC_OK, "connection still usable");

	/* overlong line from the server */
	plain(c, "long", "x", &r);
	is_int(r.res, AUTHC_TEMPFAIL, "line over 16384 bytes: TEMPFAIL");
	authc_free(c);

	/* wrong major version */
	mode = SRV_BAD_MAJOR;
	c = authc_new(base, sockpath, 2000);
	plain(c, "alice", "secret", &r);
	is_int(r.res, AUTHC_TEMPFAIL, "VERSION 2: TEMPFAIL");
	authc_free(c);

	/* no DONE (an auth-master socket) */
	mode = SRV_NO_DONE;
	c = authc_new(base, sockpath, 300);
	plain(c, "alice", "secret", &r);
	is_int(r.res, AUTHC_TEMPFAIL, "no DONE: TEMPFAIL at the timeout");
	authc_free(c);
	free(b64);
}

struct freer {
	struct authc *c;
	int calls;
};

static void
free_cb(void *ctx, enum authc_result r, const char *data, const char *extra)
{
	struct freer *f = ctx;

	(void)r;
	(void)data;
	(void)extra;
	f->calls++;
	authc_free(f->c);
}

static void
test_unreachable(void)
{
	struct authc *c = authc_new(base, "/nonexistent/auth-socket", 1000);
	struct res r;
	struct freer f;
	uint32_t id;

	memset(&r, 0, sizeof(r));
	id = authc_begin(c, "PLAIN", "AGEAYg==", NULL, res_cb, &r);
	ok(id != 0, "an id even when the socket is missing");
	ok(!r.done, "no callback inside the call");
	wait_done(&r.done);
	is_int(r.res, AUTHC_TEMPFAIL, "socket missing: TEMPFAIL");
	ok(!authc_ready(c), "not ready");

	/* freeing the client from inside a callback is safe */
	f.c = c;
	f.calls = 0;
	authc_begin(c, "PLAIN", "AGEAYg==", NULL, free_cb, &f);
	authc_begin(c, "PLAIN", "AGEAYg==", NULL, free_cb, &f);
	spin(20);
	is_int(f.calls, 1, "authc_free inside a callback: no further callbacks");
}

/*
 * The auth service goes away while a request waits for a continuation:
 * the CANCEL that an abort or a bad continuation sends fails at once, the
 * connection is dropped with every request on it, and the request being
 * aborted must not be finished a second time (it was a double free).
 */
static void
test_server_gone(void)
{
	struct authc *c;
	struct res r;
	uint32_t id;

	mode = SRV_NORMAL;
	c = authc_new(base, sockpath, 2000);
	memset(&r, 0, sizeof(r));
	id = authc_begin(c, "LOGIN", NULL, NULL, res_cb, &r);
	wait_done(&r.done);
	is_int(r.res, AUTHC_CONT, "LOGIN: CONT");
	/* gone at once (shutdown: bufferevent_free may close later) */
	shutdown(bufferevent_getfd(srv_bev), SHUT_RDWR);
	srv_close();                 /* the client has not read the EOF yet */
	memset(&r, 0, sizeof(r));
	authc_abort(c, id);
	spin(20);
	is_int(r.n_calls, 0, "abort after the server closed: no callback, no double free");

	memset(&r, 0, sizeof(r));
	id = authc_begin(c, "LOGIN", NULL, NULL, res_cb, &r);
	wait_done(&r.done);
	is_int(r.res, AUTHC_CONT, "reconnected: LOGIN CONT");
	shutdown(bufferevent_getfd(srv_bev), SHUT_RDWR);
	srv_close();
	memset(&r, 0, sizeof(r));
	authc_continue(c, id, "not base64!");
	spin(20);
	is_int(r.n_calls, 1, "bad continuation after the server closed: one callback");
	is_int(r.res, AUTHC_BADB64, "and it says invalid base64");
	authc_free(c);
}

int
main(void)
{
	struct sockaddr_un sun;
	struct evconnlistener *l;

	alarm(60);
	log_init("test-authc", true, getenv("TEST_DEBUG") != NULL, NULL);
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(sockpath, sizeof(sockpath), "%s/auth", tmpdir);
	base = event_base_new();
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, sockpath, strlen(sockpath) + 1);
	l = evconnlistener_new_bind(base, srv_accept_cb, NULL,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 16,
	    (struct sockaddr *)&sun, sizeof(sun));
	if (l == NULL) {
		perror("listen");
		return 1;
	}

	test_handshake_and_results();
	test_timing();
	test_unreachable();
	test_server_gone();

	srv_close();
	evconnlistener_free(l);
	unlink(sockpath);
	rmdir(tmpdir);
	clear_lines();
	event_base_free(base);
	return done_testing();
}
