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
#include <sys/un.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "delivery.h"
#include "reply-reader.h"
#include "util.h"

#define LMTP_TIMEOUT_SECS  120    /* per read or write */

struct lmtp_ctx {
	char *target;                /* as configured */
	char *relay;                 /* "lmtp:unix:/path" */
	char *hostname;
	bool unix_sock;
	char *path;                  /* unix */
	char *host, *port;           /* inet */
	char *label;                 /* inet: "host:port", for messages */
};

/* One connection. */
struct lmtp_conn {
	int fd;
	struct reply_client cl;
};

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
	free(c->label);
	free(c);
}

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
	c->label = xasprintf("%s:%s", c->host, c->port);
	return c;
syntax:
	*error = xasprintf("relay.delivery.socket \"%s\": expected unix:/path, "
	    "inet:host:port or host:port", cfg->relay.delivery_socket);
bad:
	lmtp_free(c);
	return NULL;
}

static const char *
lmtp_relay(void *ctx)
{
	return ((struct lmtp_ctx *)ctx)->relay;
}

/* Connect; -1 with a reason in why. */
static int
lmtp_connect(struct lmtp_ctx *c, char *why, size_t wlen)
{
	struct sockaddr_un sun;

	if (!c->unix_sock)
		return delivery_connect_host(c->host, c->port, c->label,
		    LMTP_TIMEOUT_SECS, why, wlen);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, c->path, strlen(c->path) + 1);
	return delivery_connect_addr(AF_UNIX, SOCK_STREAM, 0,
	    (struct sockaddr *)&sun, sizeof(sun), c->path, LMTP_TIMEOUT_SECS, why,
	    wlen);
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

/* write_all(3) on the connection, for the reply client */
static int
conn_write(void *arg, const char *p, size_t n)
{
	return write_all(*(int *)arg, p, n) < 0 ? -1 : 0;
}

static void
lmtp_deliver(void *ctx, const struct delivery_msg *msg,
    struct delivery_rcpt *rcpts, size_t n)
{
	struct lmtp_ctx *c = ctx;
	struct lmtp_conn *k = xcalloc(1, sizeof(*k));
	struct reply_client *cl = &k->cl;
	bool *decided = xcalloc(n ? n : 1, sizeof(bool));
	size_t n_acc = 0;
	char why[512];
	const char *stage = "greeting";

	reply_client_init(cl, conn_read, conn_write, &k->fd);
	if ((k->fd = lmtp_connect(c, why, sizeof(why))) < 0) {
		delivery_set_all(rcpts, n, NULL, DELIVERY_DEFER, "4.4.1", why, false);
		goto out;
	}
	if (reply_client_read(cl) < 0)
		goto ioerr;
	if (cl->code != 220)
		goto badreply;
	stage = "LHLO";
	if (reply_command(cl, "LHLO %s", c->hostname) < 0)
		goto ioerr;
	if (cl->code != 250)
		goto badreply;
	stage = "MAIL FROM";
	if (reply_command(cl, "MAIL FROM:<%s>", msg->env->sender) < 0)
		goto ioerr;
	if (cl->code / 100 != 2)
		goto badreply;
	stage = "RCPT TO";
	if (reply_rcpt_to(cl, rcpts, n, decided, NULL, c->relay, &n_acc) < 0)
		goto ioerr;
	if (n_acc == 0) {
		(void)reply_command(cl, "QUIT");
		goto out;
	}
	stage = "DATA";
	if (reply_command(cl, "DATA") < 0)
		goto ioerr;
	if (cl->code != 354)
		goto badreply;
	stage = "end of data";
	if (reply_send_message(cl, msg) < 0)
		goto ioerr;
	/* LMTP: one reply per accepted recipient, in RCPT order */
	for (size_t i = 0; i < n; i++) {
		if (decided[i])
			continue;
		if (reply_client_read(cl) < 0)
			goto ioerr;
		reply_set_rcpt(&rcpts[i], cl, NULL, c->relay);
		decided[i] = true;
	}
	(void)reply_command(cl, "QUIT");
	goto out;
ioerr:
	delivery_set_all_lost(rcpts, n, decided, c->relay, stage, errno);
	goto out;
badreply:
	/* a whole-transaction failure: the reply decides for everyone */
	reply_set_all(rcpts, n, decided, cl, stage, c->relay);
	(void)reply_command(cl, "QUIT");
out:
	if (k->fd >= 0)
		close(k->fd);
	free(k);
	free(decided);
}

const struct delivery_method delivery_lmtp = {
	.name = "lmtp",
	.batch = true,
	.init = lmtp_init,
	.relay = lmtp_relay,
	.deliver = lmtp_deliver,
	.free = lmtp_free,
};
