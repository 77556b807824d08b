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
 * away meanwhile is orphaned and freed when its job completes.  The
 * connections themselves (accept, line reading, output) are
 * src/auth-conn.c's, as for the auth socket.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/queue.h>

#include <event2/listener.h>

#include "auth-conn.h"
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
	struct auth_conn conn;
	struct userdb_server *u;
	bool version_ok;
	size_t n_inflight;
	LIST_HEAD(, userdb_req) reqs;
};

struct userdb_server {
	struct evconnlistener *listener;
	struct auth_server *srv;
	struct backend_chain *chain;
	struct auth_conn_pool conns;
};

static void conn_free(void *arg);

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
	auth_conn_write(&c->conn, b.s, b.len);
	sbuf_free(&b);
	auth_conn_update_read(&c->conn);      /* one lookup fewer in flight */
out:
	free(r);
}

/* ---- commands ---------------------------------------------------------- */

/* proto_error - Dovecot's answer to a broken peer: log, disconnect. */
static void
proto_error(struct userdb_conn *c, const char *what)
{
	auth_conn_proto_error(&c->conn, what);
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
		if ((v = auth_proto_service(argv[i])) != NULL)
			service = v;
	}
	if (service == NULL || *service == '\0') {
		proto_error(c, "didn't specify service");
		return false;
	}
	if (pass) {
		auth_conn_printf(&c->conn, "FAIL\t%u\treason=Configured "
		    "passdbs don't support credentials lookups\n", id);
		return true;
	}
	if (!auth_proto_unescape(argv[2]) || !valid_user(argv[2])) {
		auth_conn_printf(&c->conn, "NOTFOUND\t%u\n", id);
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
conn_line(void *arg, char *line)
{
	struct userdb_conn *c = arg;
	char *argv[USERDB_MAX_ARGS];
	size_t argc = auth_proto_split(line, argv, USERDB_MAX_ARGS);
	unsigned int minor;

	if (!c->version_ok) {
		if (!auth_proto_version(argv, argc, USERDB_PROTO_MAJOR, &minor)) {
			log_warnx("userdb: client %u: Master not compatible with "
			    "this server (mixed old and new binaries?); "
			    "disconnecting", c->conn.id);
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

/* ---- connections (src/auth-conn.c) ------------------------------------ */

/* conn_too_long - a line over USERDB_MAX_LINE (1024): disconnect. */
static void
conn_too_long(void *arg)
{
	proto_error(arg, "sent a line longer than 1024 bytes");
}

/* conn_busy - enough lookups in flight: read no more for now. */
static bool
conn_busy(const void *arg)
{
	const struct userdb_conn *c = arg;

	return c->n_inflight >= USERDB_MAX_INFLIGHT;
}

/* conn_free - close; lookups in flight are orphaned (freed on completion). */
static void
conn_free(void *arg)
{
	struct userdb_conn *c = arg;
	struct userdb_req *r;

	while ((r = LIST_FIRST(&c->reqs)) != NULL) {
		LIST_REMOVE(r, entry);
		r->conn = NULL;
	}
	auth_conn_close(&c->conn);
	free(c);
}

static int
conn_accept(void *u, int fd)
{
	return userdb_server_add_client(u, fd);
}

/* the userdb socket's connections (Dovecot's limits and log lines) */
static const struct auth_conn_class conn_class = {
	.name = "userdb",
	.peer = "userdb client",
	.max_line = USERDB_MAX_LINE,
	.out_throttle = USERDB_OUT_THROTTLE,
	.write_lowat = USERDB_OUT_THROTTLE / 2,
	.log_errors = false,
	.add = conn_accept,
	.line = conn_line,
	.too_long = conn_too_long,
	.free = conn_free,
	.busy = conn_busy,
};

int
userdb_server_add_client(struct userdb_server *u, int fd)
{
	struct userdb_conn *c;

	if (!auth_conn_admit(&u->conns, fd))
		return -1;
	c = xcalloc(1, sizeof(*c));
	c->u = u;
	LIST_INIT(&c->reqs);
	if (auth_conn_open(&c->conn, &u->conns, fd, c) == -1) {
		free(c);
		return -1;
	}
	auth_conn_printf(&c->conn, "VERSION\t%d\t%d\nSPID\t%ld\n",
	    USERDB_PROTO_MAJOR, USERDB_PROTO_MINOR, (long)getpid());
	return 0;
}

struct userdb_server *
userdb_server_new(struct event_base *base, int listen_fd, struct auth_server *srv,
    struct backend_chain *chain)
{
	struct userdb_server *u = xcalloc(1, sizeof(*u));

	u->srv = srv;
	u->chain = chain;
	auth_conn_pool_init(&u->conns, &conn_class, base, u, USERDB_MAX_CLIENTS);
	if (listen_fd >= 0) {
		u->listener = auth_conn_listen(&u->conns, listen_fd);
		if (u->listener == NULL) {
			free(u);
			return NULL;
		}
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
	return u->conns.n_conns;
}

void
userdb_server_free(struct userdb_server *u)
{
	if (u == NULL)
		return;
	userdb_server_stop_listening(u);
	auth_conn_pool_close_all(&u->conns);
	free(u);
}
