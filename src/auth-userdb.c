/*
 * auth-userdb.c - the userdb lookup socket of the auth role (see
 * auth-userdb.h and ../shared/spec/dovecot-auth-protocol.md section 3).
 *
 *	server: VERSION\t1\t1\n SPID\t<pid>\n             (at connect)
 *	client: VERSION\t1\t<minor>\n                      (major must be 1)
 *	client: USER\t<id>\t<user>\tservice=<s>[\t...]\n
 *	server: USER\t<id>\t<canonical user>[\t<k=v>...]\n
 *	      | NOTFOUND\t<id>\n
 *	      | FAIL\t<id>\treason=...\n                   (backend error)
 *
 * PASS (passdb lookup without a password) is answered with Dovecot's
 * "credentials lookups not supported" FAIL: this socket never hands out
 * anything about passwords.  Any other command, a line longer than
 * USERDB_MAX_LINE, a NUL byte or a missing service= disconnects, as in
 * Dovecot.  Many requests may be in flight on one connection; replies
 * come in completion order.  A connection with USERDB_MAX_INFLIGHT
 * lookups pending, or with a large unsent output, is not read until it
 * drains.
 *
 * Each lookup is an auth_job run on the auth server's worker threads; its
 * completion comes back on the loop.  A request whose connection went
 * away meanwhile is orphaned and freed when its job completes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "auth-proto.h"
#include "auth-server.h"
#include "auth-userdb.h"
#include "backend.h"
#include "log.h"
#include "util.h"

#define USERDB_OUT_THROTTLE	(64 * 1024)   /* stop reading above this */
#define USERDB_MAX_ARGS		32

struct userdb_conn;

struct userdb_req {
	struct auth_job job;
	LIST_ENTRY(userdb_req) entry;       /* conn's in-flight list */
	struct userdb_conn *conn;           /* NULL once orphaned */
	struct backend_chain *chain;
	uint32_t id;
	char user[BACKEND_MAX_USER + 1];
	enum backend_result res;            /* set by the worker */
	struct backend_reply reply;         /* set by the worker */
};

struct userdb_conn {
	LIST_ENTRY(userdb_conn) entry;
	struct userdb_server *u;
	struct bufferevent *bev;
	unsigned int id;                    /* for the log */
	bool version_ok;
	bool paused;
	size_t n_inflight;
	LIST_HEAD(, userdb_req) reqs;
};

struct userdb_server {
	struct event_base *base;
	struct evconnlistener *listener;
	struct auth_server *srv;
	struct backend_chain *chain;
	LIST_HEAD(, userdb_conn) conns;
	unsigned int n_conns;
	unsigned int next_id;
};

static void conn_free(struct userdb_conn *c);
static void conn_input(struct userdb_conn *c);

/* ---- output ------------------------------------------------------------ */

static size_t
conn_outlen(const struct userdb_conn *c)
{
	return evbuffer_get_length(bufferevent_get_output(c->bev));
}

/* conn_update_read - read only while few lookups are pending and the
 * peer keeps reading its replies (bounded memory per connection). */
static void
conn_update_read(struct userdb_conn *c)
{
	bool want = c->n_inflight < USERDB_MAX_INFLIGHT &&
	    conn_outlen(c) <= USERDB_OUT_THROTTLE;

	if (want && c->paused) {
		c->paused = false;
		bufferevent_enable(c->bev, EV_READ);
		conn_input(c);          /* lines may already be buffered */
	} else if (!want && !c->paused) {
		c->paused = true;
		bufferevent_disable(c->bev, EV_READ);
	}
}

/* ---- lookups ----------------------------------------------------------- */

/* req_work - worker thread: ask the backends. */
static void
req_work(void *arg)
{
	struct userdb_req *r = arg;

	r->res = backend_chain_lookup_user(r->chain, r->user, &r->reply);
}

/* append_fields - TAB-separated "k=v" fields, each escaped, empty skipped. */
static void
append_fields(struct sbuf *b, const char *fields)
{
	char *copy = xstrdup(fields), *p = copy, *tab;

	while (p != NULL && *p != '\0') {
		tab = strchr(p, '\t');
		if (tab != NULL)
			*tab = '\0';
		if (*p != '\0') {
			sbuf_addstr(b, "\t");
			auth_proto_escape(b, p);
		}
		p = tab ? tab + 1 : NULL;
	}
	free(copy);
}

/* req_done - loop: answer the lookup (unless orphaned) and free it. */
static void
req_done(void *arg, int ran)
{
	struct userdb_req *r = arg;
	struct userdb_conn *c = r->conn;
	struct sbuf b;
	char safe[160];

	if (c == NULL)
		goto out;
	LIST_REMOVE(r, entry);
	c->n_inflight--;
	sbuf_init(&b, 0);
	if (!ran)
		r->res = BACKEND_TEMPFAIL;
	switch (r->res) {
	case BACKEND_OK:
		sbuf_printf(&b, "USER\t%u\t", r->id);
		auth_proto_escape(&b, r->reply.user[0] ? r->reply.user : r->user);
		append_fields(&b, r->reply.extra);
		log_debug("userdb: lookup %s: found",
		    log_safe(safe, sizeof(safe), r->user, 128));
		break;
	case BACKEND_TEMPFAIL:
		sbuf_printf(&b, "FAIL\t%u\treason=Internal error occurred. "
		    "Refer to server log for more information.", r->id);
		log_warnx("userdb: lookup %s: backend error",
		    log_safe(safe, sizeof(safe), r->user, 128));
		break;
	default:
		sbuf_printf(&b, "NOTFOUND\t%u", r->id);
		log_debug("userdb: lookup %s: not found",
		    log_safe(safe, sizeof(safe), r->user, 128));
		break;
	}
	sbuf_addstr(&b, "\n");
	bufferevent_write(c->bev, b.s, b.len);
	sbuf_free(&b);
	conn_update_read(c);
out:
	free(r);
}

/* ---- commands ---------------------------------------------------------- */

/* proto_error - Dovecot's answer to a broken peer: log, disconnect. */
static void
proto_error(struct userdb_conn *c, const char *what)
{
	log_warnx("userdb: BUG: userdb client %u %s; disconnecting", c->id, what);
	conn_free(c);
}

/* valid_user - a name worth asking the backends about. */
static bool
valid_user(const char *s)
{
	size_t n = strlen(s), i;

	if (n == 0 || n > BACKEND_MAX_USER)
		return false;
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

/* cmd_user - USER or PASS; false when the connection was freed. */
static bool
cmd_user(struct userdb_conn *c, char **argv, size_t argc, bool pass)
{
	struct userdb_req *r;
	const char *service = NULL, *v;
	uint32_t id;
	size_t i;

	if (argc < 3 || !auth_proto_parse_id(argv[1], &id)) {
		proto_error(c, pass ? "sent broken PASS request" :
		    "sent broken USER request");
		return false;
	}
	for (i = 3; i < argc; i++) {
		if (!auth_proto_unescape(argv[i])) {
			proto_error(c, "sent a broken escape sequence");
			return false;
		}
		if ((v = auth_proto_param(argv[i], "service")) != NULL ||
		    (v = auth_proto_param(argv[i], "protocol")) != NULL)
			service = v;
	}
	if (service == NULL || *service == '\0') {
		proto_error(c, "didn't specify service");
		return false;
	}
	if (pass) {
		bufferevent_write(c->bev, "FAIL\t", 5);
		{
			char line[128];
			int n = snprintf(line, sizeof(line), "%u\treason=Configured "
			    "passdbs don't support credentials lookups\n", id);
			bufferevent_write(c->bev, line, (size_t)n);
		}
		return true;
	}
	if (!auth_proto_unescape(argv[2]) || !valid_user(argv[2])) {
		char line[64];
		int n = snprintf(line, sizeof(line), "NOTFOUND\t%u\n", id);
		bufferevent_write(c->bev, line, (size_t)n);
		return true;
	}
	r = xcalloc(1, sizeof(*r));
	r->conn = c;
	r->chain = c->u->chain;
	r->id = id;
	snprintf(r->user, sizeof(r->user), "%s", argv[2]);
	r->job.work = req_work;
	r->job.done = req_done;
	r->job.arg = r;
	LIST_INSERT_HEAD(&c->reqs, r, entry);
	c->n_inflight++;
	auth_server_submit_job(c->u->srv, &r->job);
	return true;
}

/* conn_line - one line (LF removed); false when the connection was freed. */
static bool
conn_line(struct userdb_conn *c, char *line)
{
	char *argv[USERDB_MAX_ARGS];
	size_t argc = auth_proto_split(line, argv, USERDB_MAX_ARGS);
	unsigned int major, minor;

	if (!c->version_ok) {
		if (argc < 3 || strcmp(argv[0], "VERSION") != 0 ||
		    !auth_proto_parse_uint(argv[1], &major) ||
		    !auth_proto_parse_uint(argv[2], &minor) ||
		    major != USERDB_PROTO_MAJOR) {
			log_warnx("userdb: client %u: Master not compatible with "
			    "this server (mixed old and new binaries?); "
			    "disconnecting", c->id);
			conn_free(c);
			return false;
		}
		c->version_ok = true;
		return true;
	}
	if (strcmp(argv[0], "USER") == 0)
		return cmd_user(c, argv, argc, false);
	if (strcmp(argv[0], "PASS") == 0)
		return cmd_user(c, argv, argc, true);
	proto_error(c, "sent an unknown command");
	return false;
}

/* conn_input - handle every complete line while reading is allowed. */
static void
conn_input(struct userdb_conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);

	while (!c->paused) {
		size_t len = evbuffer_get_length(in), scan, n;
		const char *p;
		char line[USERDB_MAX_LINE];
		int rc;

		if (len == 0)
			return;
		scan = len < USERDB_MAX_LINE ? len : USERDB_MAX_LINE;
		p = (const char *)evbuffer_pullup(in, (ssize_t)scan);
		rc = auth_proto_line(p, scan, USERDB_MAX_LINE, &n);
		if (rc < 0) {
			proto_error(c, "sent a line longer than 1024 bytes");
			return;
		}
		if (rc == 0)
			return;
		memcpy(line, p, n - 1);
		line[n - 1] = '\0';
		evbuffer_drain(in, n);
		if (memchr(line, '\0', n - 1) != NULL) {
			proto_error(c, "sent a NUL byte");
			return;
		}
		if (!conn_line(c, line))
			return;
		conn_update_read(c);
	}
}

/* ---- connections ------------------------------------------------------- */

static void
conn_read_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	conn_input(arg);
}

static void
conn_write_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	conn_update_read(arg);
}

static void
conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		conn_free(arg);
}

/* conn_free - close; lookups in flight are orphaned (freed on completion). */
static void
conn_free(struct userdb_conn *c)
{
	struct userdb_req *r;

	while ((r = LIST_FIRST(&c->reqs)) != NULL) {
		LIST_REMOVE(r, entry);
		r->conn = NULL;
	}
	LIST_REMOVE(c, entry);
	c->u->n_conns--;
	bufferevent_free(c->bev);
	free(c);
}

int
userdb_server_add_client(struct userdb_server *u, int fd)
{
	struct userdb_conn *c;
	char hs[64];
	int n;

	if (u->n_conns >= USERDB_MAX_CLIENTS) {
		log_warnx("userdb: %u clients connected, refusing another", u->n_conns);
		close(fd);
		return -1;
	}
	set_nonblock(fd);
	set_cloexec(fd);
	c = xcalloc(1, sizeof(*c));
	c->u = u;
	c->id = ++u->next_id;
	LIST_INIT(&c->reqs);
	c->bev = bufferevent_socket_new(u->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		close(fd);
		free(c);
		return -1;
	}
	LIST_INSERT_HEAD(&u->conns, c, entry);
	u->n_conns++;
	bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
	/* read at most a few lines ahead; the rest waits in the kernel */
	bufferevent_setwatermark(c->bev, EV_READ, 0, 4 * USERDB_MAX_LINE);
	bufferevent_setwatermark(c->bev, EV_WRITE, USERDB_OUT_THROTTLE / 2, 0);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	n = snprintf(hs, sizeof(hs), "VERSION\t%d\t%d\nSPID\t%ld\n",
	    USERDB_PROTO_MAJOR, USERDB_PROTO_MINOR, (long)getpid());
	bufferevent_write(c->bev, hs, (size_t)n);
	return 0;
}

static void
accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	(void)l;
	(void)sa;
	(void)salen;
	userdb_server_add_client(arg, fd);
}

static void
accept_error_cb(struct evconnlistener *l, void *arg)
{
	(void)l;
	(void)arg;
	log_warn("userdb: accept");
}

struct userdb_server *
userdb_server_new(struct event_base *base, int listen_fd, struct auth_server *srv,
    struct backend_chain *chain)
{
	struct userdb_server *u = xcalloc(1, sizeof(*u));

	u->base = base;
	u->srv = srv;
	u->chain = chain;
	LIST_INIT(&u->conns);
	if (listen_fd >= 0) {
		evutil_make_socket_nonblocking(listen_fd);
		u->listener = evconnlistener_new(base, accept_cb, u,
		    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, listen_fd);
		if (u->listener == NULL) {
			free(u);
			return NULL;
		}
		evconnlistener_set_error_cb(u->listener, accept_error_cb);
	}
	return u;
}

void
userdb_server_stop_listening(struct userdb_server *u)
{
	if (u->listener != NULL) {
		evconnlistener_free(u->listener);
		u->listener = NULL;
	}
}

unsigned
userdb_server_client_count(const struct userdb_server *u)
{
	return u->n_conns;
}

void
userdb_server_free(struct userdb_server *u)
{
	struct userdb_conn *c;

	if (u == NULL)
		return;
	userdb_server_stop_listening(u);
	while ((c = LIST_FIRST(&u->conns)) != NULL)
		conn_free(c);
	free(u);
}
