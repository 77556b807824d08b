/*
 * test-userdbc.c - unit tests of src/userdbc.c against a fake userdb
 * server in the same event loop: handshake, USER/NOTFOUND/FAIL, the
 * cache, names refused before sending, timeouts, abort, a wrong protocol
 * version, a socket that is not there, and a connection lost on its very
 * first send (send() is wrapped at link time: -Wl,--wrap=send).
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "log.h"
#include "tap.h"
#include "userdbc.h"

static struct event_base *base;
static int n_user_lines;           /* USER requests the server saw */
static char first_line[300];       /* the first line of the latest connection */
static bool fail_next_send;

ssize_t __real_send(int fd, const void *buf, size_t len, int flags);
ssize_t __wrap_send(int fd, const void *buf, size_t len, int flags);

/* send(2), failing once with EPIPE when asked (a peer gone at once) */
ssize_t
__wrap_send(int fd, const void *buf, size_t len, int flags)
{
	if (fail_next_send) {
		fail_next_send = false;
		errno = EPIPE;
		return -1;
	}
	return __real_send(fd, buf, len, flags);
}
static bool client_version_ok;
static bool bad_version;
static char last_user[300];

static void
srv_read(struct bufferevent *bev, void *arg)
{
	struct evbuffer *in = bufferevent_get_input(bev);
	char *line, out[400];
	size_t n;

	(void)arg;
	while ((line = evbuffer_readln(in, &n, EVBUFFER_EOL_LF)) != NULL) {
		unsigned id;
		char user[300];

		if (first_line[0] == '\0')
			snprintf(first_line, sizeof(first_line), "%s", line);
		if (strcmp(line, "VERSION\t1\t0") == 0)
			client_version_ok = true;
		else if (sscanf(line, "USER\t%u\t%299[^\t]\tservice=smtp", &id, user) == 2) {
			n_user_lines++;
			snprintf(last_user, sizeof(last_user), "%s", user);
			if (strcmp(user, "alice") == 0)
				snprintf(out, sizeof(out), "USER\t%u\talice\tuid=1000\t\n", id);
			else if (strcmp(user, "fail") == 0)
				snprintf(out, sizeof(out), "FAIL\t%u\treason=backend down\n", id);
			else if (strcmp(user, "slow") == 0)
				out[0] = '\0';
			else
				snprintf(out, sizeof(out), "NOTFOUND\t%u\n", id);
			bufferevent_write(bev, out, strlen(out));
		}
		free(line);
	}
}

static void
srv_event(struct bufferevent *bev, short what, void *arg)
{
	(void)what;
	(void)arg;
	bufferevent_free(bev);
}

static void
srv_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
           int len, void *arg)
{
	struct bufferevent *bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	const char *hello = bad_version ? "VERSION\t2\t0\nSPID\t1\n" :
	    "VERSION\t1\t1\nSPID\t12345\n";

	(void)l;
	(void)sa;
	(void)len;
	(void)arg;
	first_line[0] = '\0';
	bufferevent_setcb(bev, srv_read, NULL, srv_event, NULL);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	bufferevent_write(bev, hello, strlen(hello));
}

struct answer {
	bool called;
	enum userdbc_result res;
};

static void
cb(void *ctx, enum userdbc_result res)
{
	struct answer *a = ctx;

	a->called = true;
	a->res = res;
}

/* Run the loop until a is answered (or 3 s). */
static void
wait_for(struct answer *a)
{
	for (int i = 0; i < 300 && !a->called; i++) {
		struct timeval tv = { 0, 10000 };

		event_base_loopexit(base, &tv);
		event_base_dispatch(base);
	}
}

static enum userdbc_result
lookup(struct userdbc *c, const char *user)
{
	struct answer a = { false, USERDBC_UNCACHED };

	userdbc_lookup(c, user, cb, &a);
	ok(!a.called, "callback not run from inside the call");
	wait_for(&a);
	return a.called ? a.res : USERDBC_UNCACHED;
}

int
main(void)
{
	char dir[] = "/tmp/msagate-udb-XXXXXX", path[200];
	struct sockaddr_un sun;
	struct evconnlistener *l;
	struct userdbc *c;
	struct answer a = { false, USERDBC_UNCACHED };
	int before;

	log_init("test-userdbc", true, false, NULL);
	signal(SIGPIPE, SIG_IGN);    /* the fake server writes to closed clients */
	if (mkdtemp(dir) == NULL)
		return 2;
	snprintf(path, sizeof(path), "%s/userdb", dir);
	base = event_base_new();
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	strcpy(sun.sun_path, path);

	/* nothing listening yet */
	c = userdbc_new(base, path, 300, 30);
	is_int(lookup(c, "alice"), USERDBC_TEMPFAIL, "socket missing: TEMPFAIL");

	l = evconnlistener_new_bind(base, srv_accept, NULL, LEV_OPT_CLOSE_ON_FREE, 16,
	                            (struct sockaddr *)&sun, sizeof(sun));
	ok(l != NULL, "fake server listening");
	is_int(lookup(c, "alice"), USERDBC_FOUND, "USER reply: FOUND");
	ok(client_version_ok, "client sent VERSION 1 0");
	is_int(lookup(c, "nobody"), USERDBC_NOTFOUND, "NOTFOUND");
	is_int(lookup(c, "fail"), USERDBC_TEMPFAIL, "FAIL: TEMPFAIL");
	before = n_user_lines;
	is_int(lookup(c, "alice"), USERDBC_FOUND, "cached FOUND");
	is_int(lookup(c, "nobody"), USERDBC_NOTFOUND, "cached NOTFOUND");
	is_int(n_user_lines, before, "cached answers do not ask the server");
	is_int(userdbc_cached(c, "alice"), USERDBC_FOUND, "userdbc_cached FOUND");
	is_int(userdbc_cached(c, "fail"), USERDBC_UNCACHED, "temporary failures are not cached");
	is_int(lookup(c, "fail"), USERDBC_TEMPFAIL, "FAIL asked again");
	is_int(n_user_lines, before + 1, "... from the server");

	before = n_user_lines;
	is_int(lookup(c, "bad\tname"), USERDBC_TEMPFAIL, "TAB in the name: refused");
	is_int(lookup(c, "bad\nname"), USERDBC_TEMPFAIL, "LF in the name: refused");
	is_int(lookup(c, ""), USERDBC_TEMPFAIL, "empty name: refused");
	is_int(n_user_lines, before, "... none of them sent");

	is_int(lookup(c, "slow"), USERDBC_TEMPFAIL, "no answer: timeout TEMPFAIL");
	is_int(lookup(c, "other@example.test"), USERDBC_NOTFOUND, "connection still usable");
	is_str(last_user, "other@example.test", "name sent as is");

	/* abort: the callback never runs */
	a.called = false;
	userdbc_abort(c, userdbc_lookup(c, "bob", cb, &a));
	{
		struct answer b = { false, USERDBC_UNCACHED };

		userdbc_lookup(c, "carol", cb, &b);
		wait_for(&b);
	}
	ok(!a.called, "aborted request: no callback");
	userdbc_free(c);

	/* wrong major version */
	bad_version = true;
	c = userdbc_new(base, path, 1000, 30);
	is_int(lookup(c, "alice"), USERDBC_TEMPFAIL, "VERSION 2: TEMPFAIL");
	userdbc_free(c);

	/*
	 * The connection is lost on its very first send (the greeting): the
	 * lookup is answered once, its timer does not outlive it, and nothing
	 * of it is left queued for the next connection.
	 */
	bad_version = false;
	c = userdbc_new(base, path, 200, 0);
	a.called = false;
	fail_next_send = true;
	userdbc_lookup(c, "alice", cb, &a);
	wait_for(&a);
	ok(a.called && a.res == USERDBC_TEMPFAIL, "lost on the first send: TEMPFAIL");
	{
		struct timeval tv = { 0, 400000 };   /* past the request's timeout */

		event_base_loopexit(base, &tv);
		event_base_dispatch(base);
	}
	is_int(lookup(c, "alice"), USERDBC_FOUND, "the next lookup works on a new connection");
	is_str(first_line, "VERSION\t1\t0", "which starts with VERSION (nothing stale queued)");
	userdbc_free(c);
	{
		struct timeval tv = { 0, 50000 };    /* the fake server sees the close */

		event_base_loopexit(base, &tv);
		event_base_dispatch(base);
	}

	evconnlistener_free(l);
	unlink(path);
	rmdir(dir);
	event_base_free(base);
	return done_testing();
}
