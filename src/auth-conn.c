/*
 * auth-conn.c - connections of the auth role's line servers (see
 * auth-conn.h): accept, the bounded line reader, output with read
 * throttling, protocol errors and close.  Used by src/auth-server.c and
 * src/auth-userdb.c.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "auth-conn.h"
#include "auth-proto.h"
#include "log.h"
#include "util.h"

/* Lines up to this long are read on the stack: no allocation per line. */
#define AUTH_CONN_STACK_LINE	1024

static void conn_input(struct auth_conn *c);

void
auth_conn_pool_init(struct auth_conn_pool *p, const struct auth_conn_class *cls,
    struct event_base *base, void *server, unsigned int max_conns)
{
	p->cls = cls;
	p->base = base;
	p->server = server;
	p->max_conns = max_conns;
	LIST_INIT(&p->conns);
	p->n_conns = 0;
	p->next_id = 0;
}

void
auth_conn_pool_close_all(struct auth_conn_pool *p)
{
	struct auth_conn *c;

	while ((c = LIST_FIRST(&p->conns)) != NULL)
		p->cls->free(c->owner);
}

/* ---- accept ------------------------------------------------------------ */

static void
accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	struct auth_conn_pool *p = arg;

	(void)l;
	(void)sa;
	(void)salen;
	p->cls->add(p->server, fd);
}

static void
accept_error_cb(struct evconnlistener *l, void *arg)
{
	struct auth_conn_pool *p = arg;

	(void)l;
	log_warn("%s: accept", p->cls->name);
}

struct evconnlistener *
auth_conn_listen(struct auth_conn_pool *p, int fd)
{
	struct evconnlistener *l;

	evutil_make_socket_nonblocking(fd);
	l = evconnlistener_new(p->base, accept_cb, p,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
	if (l != NULL)
		evconnlistener_set_error_cb(l, accept_error_cb);
	return l;
}

bool
auth_conn_admit(struct auth_conn_pool *p, int fd)
{
	if (p->n_conns >= p->max_conns) {
		log_warnx("%s: %u clients connected, refusing another",
		    p->cls->name, p->n_conns);
		close(fd);
		return false;
	}
	set_nonblock(fd);
	set_cloexec(fd);
	return true;
}

/* ---- reading and its throttle ------------------------------------------ */

/* may_read - few unsent reply bytes and the owner not busy. */
static bool
may_read(const struct auth_conn *c)
{
	const struct auth_conn_class *cls = c->pool->cls;

	if (cls->busy != NULL && cls->busy(c->owner))
		return false;
	return evbuffer_get_length(bufferevent_get_output(c->bev)) <=
	    cls->out_throttle;
}

static void
set_paused(struct auth_conn *c, bool paused)
{
	c->paused = paused;
	if (paused)
		bufferevent_disable(c->bev, EV_READ);
	else
		bufferevent_enable(c->bev, EV_READ);
}

/* throttle - stop reading if the peer should not send more for now (only
 * stops: resuming here could reenter a line handler). */
static void
throttle(struct auth_conn *c)
{
	if (!c->paused && !may_read(c))
		set_paused(c, true);
}

void
auth_conn_update_read(struct auth_conn *c)
{
	bool want = may_read(c);

	if (want && c->paused) {
		set_paused(c, false);
		conn_input(c);          /* lines may already be buffered */
	} else if (!want && !c->paused) {
		set_paused(c, true);
	}
}

void
auth_conn_proto_error(struct auth_conn *c, const char *what)
{
	const struct auth_conn_class *cls = c->pool->cls;

	log_warnx("%s: BUG: %s %u %s; disconnecting", cls->name, cls->peer,
	    c->id, what);
	cls->free(c->owner);
}

/* line_wipe - wipe a line read by conn_input (it may carry a password)
 * and free it unless it is the stack buffer. */
static void
line_wipe(char *line, size_t size, const char *stackline)
{
	secure_zero(line, size);
	if (line != stackline)
		free(line);
}

/*
 * conn_input - hand every complete line to the owner while reading is
 * allowed.  Each line is copied out of the input buffer, NUL-terminated
 * in place of its LF; the copy is wiped afterwards.
 */
static void
conn_input(struct auth_conn *c)
{
	const struct auth_conn_class *cls = c->pool->cls;
	struct evbuffer *in = bufferevent_get_input(c->bev);
	char stackline[AUTH_CONN_STACK_LINE];

	while (!c->paused) {
		size_t len = evbuffer_get_length(in), scan, n;
		const char *p;
		char *line;
		bool alive;
		int rc;

		if (len == 0)
			return;
		scan = len < cls->max_line ? len : cls->max_line;
		p = (const char *)evbuffer_pullup(in, (ssize_t)scan);
		rc = auth_proto_line(p, scan, cls->max_line, &n);
		if (rc < 0) {
			cls->too_long(c->owner);
			return;
		}
		if (rc == 0)
			return;
		line = n <= sizeof(stackline) ? stackline : xmalloc(n);
		memcpy(line, p, n - 1);
		line[n - 1] = '\0';
		evbuffer_drain(in, n);
		if (memchr(line, '\0', n - 1) != NULL) {
			line_wipe(line, n, stackline);
			auth_conn_proto_error(c, "sent a NUL byte");
			return;
		}
		/* CRLF from a hand-written peer: the CR goes, as in Dovecot */
		if (n >= 2 && line[n - 2] == '\r')
			line[n - 2] = '\0';
		alive = cls->line(c->owner, line);
		line_wipe(line, n, stackline);
		if (!alive)
			return;         /* owner freed */
		throttle(c);
	}
}

/* ---- the bufferevent ---------------------------------------------------- */

static void
read_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	conn_input(arg);
}

/* write_cb - output drained to the low watermark: maybe read again. */
static void
write_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	auth_conn_update_read(arg);
}

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct auth_conn *c = arg;
	const struct auth_conn_class *cls = c->pool->cls;

	(void)bev;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		if (cls->log_errors && (what & BEV_EVENT_ERROR) &&
		    errno != ECONNRESET && errno != EPIPE)
			log_debug("%s: client %u: %s", cls->name, c->id,
			    strerror(errno));
		cls->free(c->owner);
	}
}

int
auth_conn_open(struct auth_conn *c, struct auth_conn_pool *p, int fd,
    void *owner)
{
	const struct auth_conn_class *cls = p->cls;

	c->pool = p;
	c->owner = owner;
	c->id = ++p->next_id;
	c->paused = false;
	c->bev = bufferevent_socket_new(p->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		close(fd);
		return -1;
	}
	LIST_INSERT_HEAD(&p->conns, c, entry);
	p->n_conns++;
	bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
	/* read at most a few lines ahead; the rest waits in the kernel */
	bufferevent_setwatermark(c->bev, EV_READ, 0, 4 * cls->max_line);
	bufferevent_setwatermark(c->bev, EV_WRITE, cls->write_lowat, 0);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	return 0;
}

void
auth_conn_close(struct auth_conn *c)
{
	LIST_REMOVE(c, entry);
	c->pool->n_conns--;
	bufferevent_free(c->bev);
	c->bev = NULL;
}

/* ---- output ------------------------------------------------------------ */

void
auth_conn_write(struct auth_conn *c, const void *buf, size_t len)
{
	bufferevent_write(c->bev, buf, len);
	throttle(c);
}

void
auth_conn_printf(struct auth_conn *c, const char *fmt, ...)
{
	va_list ap;
	size_t len;
	char *s;

	va_start(ap, fmt);
	s = xvasprintf(&len, fmt, ap);
	va_end(ap);
	auth_conn_write(c, s, len);
	free(s);
}
