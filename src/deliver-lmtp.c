/*
 * deliver-lmtp.c - the "lmtp" delivery method (RFC 2033): one LMTP
 * transaction per message for all of its local recipients, to
 * relay.delivery.socket = "unix:/path", "inet:host:port" or "host:port"
 * (Dovecot's lmtp service, for example).
 *
 * LHLO, MAIL FROM, one RCPT TO per recipient, DATA with dot-stuffing, one
 * reply per accepted recipient after the final dot, QUIT.  4xx replies and
 * connection trouble defer, 5xx bounce.  The LMTP server adds Return-Path:
 * and Delivered-To: itself (it is the final delivery agent), so the
 * message is sent as queued.  Every read and write has a timeout; this
 * runs in a delivery worker thread.
 */
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "delivery.h"
#include "reply-reader.h"
#include "util.h"

#define LMTP_TIMEOUT_SECS  120    /* per read or write */
#define LMTP_CONNECT_SECS  30

struct lmtp_ctx {
	char *target;                /* as configured */
	char *relay;                 /* "lmtp:unix:/path" */
	char *hostname;
	bool unix_sock;
	char *path;                  /* unix */
	char *host, *port;           /* inet */
};

/* One connection. */
struct lmtp_conn {
	int fd;
	struct reply_reader rd;
	int code;                    /* last reply */
	char text[REPLY_LINE_MAX];   /* last reply, its last line's text */
};

static void *
lmtp_init(const struct msagate_config *cfg, char **error)
{
	const char *s = cfg->relay.delivery_socket;
	struct lmtp_ctx *c;
	const char *colon;

	if (s == NULL || s[0] == '\0') {
		*error = xstrdup("relay.delivery.socket is required for lmtp");
		return NULL;
	}
	c = xcalloc(1, sizeof(*c));
	c->target = xstrdup(s);
	c->relay = xasprintf("lmtp:%s", s);
	c->hostname = xstrdup(cfg->hostname ? cfg->hostname : "localhost");
	if (strncmp(s, "unix:", 5) == 0 || s[0] == '/') {
		c->unix_sock = true;
		c->path = xstrdup(s[0] == '/' ? s : s + 5);
		if (strlen(c->path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
			*error = xasprintf("relay.delivery.socket: path too long");
			goto bad;
		}
		return c;
	}
	if (strncmp(s, "inet:", 5) == 0)
		s += 5;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (close == NULL || close[1] != ':')
			goto syntax;
		c->host = xstrndup(s + 1, (size_t)(close - s - 1));
		c->port = xstrdup(close + 2);
	} else {
		if ((colon = strrchr(s, ':')) == NULL || colon == s)
			goto syntax;
		c->host = xstrndup(s, (size_t)(colon - s));
		c->port = xstrdup(colon + 1);
	}
	if (c->port[0] == '\0')
		goto syntax;
	return c;
syntax:
	*error = xasprintf("relay.delivery.socket \"%s\": expected unix:/path, "
	    "inet:host:port or host:port", cfg->relay.delivery_socket);
bad:
	free(c->target);
	free(c->relay);
	free(c->hostname);
	free(c->path);
	free(c->host);
	free(c->port);
	free(c);
	return NULL;
}

static const char *
lmtp_relay(void *ctx)
{
	return ((struct lmtp_ctx *)ctx)->relay;
}

static void
lmtp_free(void *ctx)
{
	struct lmtp_ctx *c = ctx;

	if (c == NULL)
		return;
	free(c->target);
	free(c->relay);
	free(c->hostname);
	free(c->path);
	free(c->host);
	free(c->port);
	free(c);
}

static void
set_timeouts(int fd)
{
	struct timeval tv = { LMTP_TIMEOUT_SECS, 0 };

	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* connect() with a timeout; fd is blocking again afterwards. */
static int
connect_timeout(int fd, const struct sockaddr *sa, socklen_t len)
{
	struct pollfd pfd = { .fd = fd, .events = POLLOUT };
	int err = 0, r;
	socklen_t elen = sizeof(err);

	if (set_nonblock(fd) < 0)
		return -1;
	if (connect(fd, sa, len) == 0)
		goto done;
	if (errno != EINPROGRESS)
		return -1;
	while ((r = poll(&pfd, 1, LMTP_CONNECT_SECS * 1000)) < 0 && errno == EINTR)
		;
	if (r == 0)
		return errno = ETIMEDOUT, -1;
	if (r < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
		return -1;
	if (err != 0)
		return errno = err, -1;
done:
	{
		int fl = fcntl(fd, F_GETFL);

		if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
			return -1;
	}
	return 0;
}

/* Connect; -1 with a reason in why. */
static int
lmtp_connect(struct lmtp_ctx *c, char *why, size_t wlen)
{
	int fd;

	if (c->unix_sock) {
		struct sockaddr_un sun;

		memset(&sun, 0, sizeof(sun));
		sun.sun_family = AF_UNIX;
		memcpy(sun.sun_path, c->path, strlen(c->path) + 1);
		if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
		    connect_timeout(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
			snprintf(why, wlen, "connect to %s: %s", c->path, strerror(errno));
			if (fd >= 0)
				close(fd);
			return -1;
		}
	} else {
		struct addrinfo hints, *res, *ai;
		int r;

		memset(&hints, 0, sizeof(hints));
		hints.ai_family = AF_UNSPEC;
		hints.ai_socktype = SOCK_STREAM;
		if ((r = getaddrinfo(c->host, c->port, &hints, &res)) != 0) {
			snprintf(why, wlen, "cannot resolve %s: %s", c->host,
			    gai_strerror(r));
			return -1;
		}
		fd = -1;
		snprintf(why, wlen, "no address for %s", c->host);
		for (ai = res; ai != NULL; ai = ai->ai_next) {
			fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
			    ai->ai_protocol);
			if (fd >= 0 && connect_timeout(fd, ai->ai_addr, ai->ai_addrlen) == 0)
				break;
			snprintf(why, wlen, "connect to %s:%s: %s", c->host, c->port,
			    strerror(errno));
			if (fd >= 0)
				close(fd);
			fd = -1;
		}
		freeaddrinfo(res);
		if (fd < 0)
			return -1;
	}
	set_timeouts(fd);
	return fd;
}

/* read(2) on the connection, for the reply reader */
static ssize_t
conn_read(void *arg, void *buf, size_t len)
{
	int fd = *(int *)arg;

	for (;;) {
		ssize_t r = read(fd, buf, len);

		if (r >= 0 || errno != EINTR)
			return r;
	}
}

/* Read one (multi-line) reply into k->code / k->text; -1 on error. */
static int
read_reply(struct lmtp_conn *k)
{
	return reply_read(&k->rd, &k->code, k->text, sizeof(k->text), NULL, NULL);
}

static int
send_str(struct lmtp_conn *k, const char *s)
{
	return write_all(k->fd, s, strlen(s)) < 0 ? -1 : 0;
}

/* Send a command and read its reply; -1 on a connection error. */
static int
command(struct lmtp_conn *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
command(struct lmtp_conn *k, const char *fmt, ...)
{
	char buf[2048];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 2, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(buf) - 2)
		return errno = E2BIG, -1;
	memcpy(buf + n, "\r\n", 3);
	if (send_str(k, buf) < 0)
		return -1;
	return read_reply(k);
}

/* The reply as a verdict for recipient r. */
static void
set_from_reply(struct delivery_rcpt *r, const struct lmtp_conn *k,
    const char *relay)
{
	char dsn[16];

	reply_dsn(k->code, k->text, dsn, sizeof(dsn));
	if (k->code / 100 == 2)
		delivery_set(r, DELIVERY_SENT, dsn, "%s (%s)", k->text, relay);
	else
		delivery_set(r, k->code / 100 == 5 ? DELIVERY_BOUNCE : DELIVERY_DEFER,
		    dsn, "%s (in reply to %s)", k->text, relay);
	r->remote_reply = true;
}

static int
send_out(void *arg, const char *p, size_t n)
{
	return write_all(*(int *)arg, p, n) < 0 ? -1 : 0;
}

static void
lmtp_deliver(void *ctx, const struct delivery_msg *msg,
    struct delivery_rcpt *rcpts, size_t n)
{
	struct lmtp_ctx *c = ctx;
	struct lmtp_conn *k = xcalloc(1, sizeof(*k));
	bool *decided = xcalloc(n ? n : 1, sizeof(bool));
	size_t *accepted = xcalloc(n ? n : 1, sizeof(size_t));
	size_t n_acc = 0;
	char why[512];
	const char *stage = "greeting";

	reply_reader_init(&k->rd, conn_read, &k->fd);
	if ((k->fd = lmtp_connect(c, why, sizeof(why))) < 0) {
		delivery_set_all(rcpts, n, NULL, DELIVERY_DEFER, "4.4.1", why, false);
		goto out;
	}
	if (read_reply(k) < 0)
		goto ioerr;
	if (k->code != 220)
		goto badreply;
	stage = "LHLO";
	if (command(k, "LHLO %s", c->hostname) < 0)
		goto ioerr;
	if (k->code != 250)
		goto badreply;
	stage = "MAIL FROM";
	if (command(k, "MAIL FROM:<%s>", msg->env->sender) < 0)
		goto ioerr;
	if (k->code / 100 != 2)
		goto badreply;
	stage = "RCPT TO";
	for (size_t i = 0; i < n; i++) {
		if (command(k, "RCPT TO:<%s>", rcpts[i].address) < 0)
			goto ioerr;
		if (k->code / 100 == 2) {
			accepted[n_acc++] = i;
			continue;
		}
		set_from_reply(&rcpts[i], k, c->relay);
		decided[i] = true;
	}
	if (n_acc == 0) {
		(void)command(k, "QUIT");
		goto out;
	}
	stage = "DATA";
	if (command(k, "DATA") < 0)
		goto ioerr;
	if (k->code != 354)
		goto badreply;
	stage = "end of data";
	if (delivery_copy_body(msg, DELIVERY_COPY_DOTSTUFF, send_out, &k->fd) < 0 ||
	    send_str(k, ".\r\n") < 0)
		goto ioerr;
	for (size_t j = 0; j < n_acc; j++) {
		size_t i = accepted[j];

		if (read_reply(k) < 0)
			goto ioerr;
		set_from_reply(&rcpts[i], k, c->relay);
		decided[i] = true;
	}
	(void)command(k, "QUIT");
	goto out;
ioerr:
	snprintf(why, sizeof(why), "lost connection with %.200s during %s: %s",
	    c->relay, stage, strerror(errno));
	delivery_set_all(rcpts, n, decided, DELIVERY_DEFER, "4.4.2", why, false);
	goto out;
badreply:
	/* a whole-transaction failure: the reply decides for everyone */
	{
		char dsn[16];

		reply_dsn(k->code, k->text, dsn, sizeof(dsn));
		snprintf(why, sizeof(why), "%.250s (in reply to %s from %.200s)", k->text,
		    stage, c->relay);
		delivery_set_all(rcpts, n, decided, k->code / 100 == 5 ? DELIVERY_BOUNCE :
		    DELIVERY_DEFER, k->code / 100 == 5 || k->code / 100 == 4 ? dsn :
		    "4.5.0", why, true);
		(void)command(k, "QUIT");
	}
out:
	if (k->fd >= 0)
		close(k->fd);
	free(k);
	free(decided);
	free(accepted);
}

const struct delivery_method delivery_lmtp = {
	.name = "lmtp",
	.batch = true,
	.init = lmtp_init,
	.relay = lmtp_relay,
	.deliver = lmtp_deliver,
	.free = lmtp_free,
};
