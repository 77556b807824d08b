/*
 * auth-client-conn.c - the connection core of the auth protocol clients
 * (src/authc.c, src/userdbc.c): non-blocking UNIX socket, bounded line
 * reader, bounded output buffer wiped as it drains, requests in flight by
 * id with a timer each.  See auth-client-conn.h.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth-client-conn.h"
#include "log.h"
#include "util.h"

static void acc_read_cb(evutil_socket_t, short, void *);
static void acc_write_cb(evutil_socket_t, short, void *);

void
acc_init(struct acc_conn *c, struct event_base *base, const char *who,
    const char *path, int timeout_ms, size_t max_line, size_t out_max,
    const struct acc_ops *ops, void *arg)
{
	memset(c, 0, sizeof(*c));
	c->base = base;
	c->who = who;
	c->path = xstrdup(path);
	c->timeout_ms = timeout_ms;
	c->ops = ops;
	c->arg = arg;
	c->fd = -1;
	c->max_line = max_line;
	c->in = xmalloc(max_line + 2);
	c->out_max = out_max;
	TAILQ_INIT(&c->reqs);
}

void
acc_cleanup(struct acc_conn *c)
{
	acc_close(c);
	if (c->out != NULL) {
		secure_zero(c->out, c->out_cap);
		free(c->out);
		c->out = NULL;
	}
	free(c->in);
	c->in = NULL;
	free(c->path);
	c->path = NULL;
}

/* ---- output ---------------------------------------------------------- */

void
acc_flush(struct acc_conn *c)
{
	ssize_t n;

	while (c->fd >= 0 && !c->connecting && c->out_len > 0) {
		n = send(c->fd, c->out, c->out_len, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				event_add(c->wev, NULL);
				return;
			}
			c->ops->down(c->arg, strerror(errno));
			return;
		}
		memmove(c->out, c->out + n, c->out_len - (size_t)n);
		secure_zero(c->out + c->out_len - (size_t)n, (size_t)n);
		c->out_len -= (size_t)n;
	}
}

bool
acc_write(struct acc_conn *c, const char *p, size_t n)
{
	if (c->out_len + n > c->out_max)
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

void
acc_close(struct acc_conn *c)
{
	if (c->fd < 0)
		return;
	event_free(c->rev);
	event_free(c->wev);
	c->rev = c->wev = NULL;
	close(c->fd);
	c->fd = -1;
	c->connecting = false;
	c->in_len = 0;
	if (c->out != NULL)
		secure_zero(c->out, c->out_cap);
	c->out_len = 0;
}

/* The socket is connected: let the client greet, start reading, send. */
static void
acc_start(struct acc_conn *c)
{
	c->connecting = false;
	c->ops->connected(c->arg);
	event_add(c->rev, NULL);
	acc_flush(c);
}

int
acc_connect(struct acc_conn *c)
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
	c->rev = event_new(c->base, fd, EV_READ | EV_PERSIST, acc_read_cb, c);
	c->wev = event_new(c->base, fd, EV_WRITE, acc_write_cb, c);
	if (c->rev == NULL || c->wev == NULL)
		fatalx("%s: event_new", c->who);
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		if (errno == EINPROGRESS) {
			c->connecting = true;
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
		log_info("%s: connected to %s again", c->who, c->path);
	c->warned = false;
	acc_start(c);
	return 0;
fail:
	if (!c->warned)
		log_warn("%s: cannot connect to %s", c->who, c->path);
	c->warned = true;
	return -1;
}

/* Writable: a pending connect finished, or the server reads again. */
static void
acc_write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct acc_conn *c = arg;

	(void)what;
	if (c->connecting) {
		int err = 0;
		socklen_t len = sizeof(err);

		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		if (err != 0) {
			c->ops->down(c->arg, strerror(err));
			return;
		}
		acc_start(c);
		return;
	}
	acc_flush(c);
}

/* ---- input ----------------------------------------------------------- */

/*
 * Read until the socket is drained, handing every complete line to the
 * client.  The client may close the connection from a callback: the loop
 * stops as soon as c->fd is no longer this socket.
 */
static void
acc_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct acc_conn *c = arg;
	ssize_t n;

	(void)what;
	for (;;) {
		char *lf, *start;

		n = recv(fd, c->in + c->in_len, c->max_line + 1 - c->in_len,
		    MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				c->ops->down(c->arg, strerror(errno));
			return;
		}
		if (n == 0) {
			c->ops->down(c->arg, c->ops->idle_eof_quiet &&
			    TAILQ_EMPTY(&c->reqs) ? NULL : c->ops->eof);
			return;
		}
		c->in_len += (size_t)n;
		c->in[c->in_len] = '\0';
		start = c->in;
		while (c->fd == fd &&
		    (lf = memchr(start, '\n', c->in_len - (size_t)(start - c->in))) != NULL) {
			*lf = '\0';
			if (memchr(start, '\0', (size_t)(lf - start)) != NULL) {
				c->ops->down(c->arg, c->ops->nul);
				return;
			}
			c->ops->line(c->arg, start);
			start = lf + 1;
		}
		if (c->fd != fd)
			return;
		c->in_len -= (size_t)(start - c->in);
		memmove(c->in, start, c->in_len);
		if (c->in_len > c->max_line) {
			c->ops->down(c->arg, c->ops->long_line);
			return;
		}
	}
}

/* ---- requests -------------------------------------------------------- */

struct acc_req *
acc_req_find(const struct acc_conn *c, uint32_t id)
{
	struct acc_req *r;

	TAILQ_FOREACH(r, &c->reqs, link)
		if (r->id == id)
			return r;
	return NULL;
}

void
acc_req_add(struct acc_conn *c, struct acc_req *r)
{
	do {
		c->last_id++;
	} while (c->last_id == 0 || acc_req_find(c, c->last_id) != NULL);
	r->id = c->last_id;
	r->timer = NULL;
	TAILQ_INSERT_TAIL(&c->reqs, r, link);
}

void
acc_req_arm(struct acc_conn *c, struct acc_req *r, event_callback_fn cb,
    void *arg)
{
	struct timeval tv;

	if ((r->timer = evtimer_new(c->base, cb, arg)) == NULL)
		fatalx("%s: evtimer_new", c->who);
	tv.tv_sec = c->timeout_ms / 1000;
	tv.tv_usec = (c->timeout_ms % 1000) * 1000;
	evtimer_add(r->timer, &tv);
}

void
acc_req_remove(struct acc_conn *c, struct acc_req *r)
{
	TAILQ_REMOVE(&c->reqs, r, link);
	if (r->timer != NULL) {
		event_free(r->timer);
		r->timer = NULL;
	}
}
