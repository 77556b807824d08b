/*
 * deliver-lmtp.c - the "lmtp" delivery method (RFC 2033): one LMTP
 * transaction per message for all of its local recipients, to
 * relay.delivery.socket = "unix:/path", "inet:host:port" or "host:port"
 * (Dovecot's lmtp service, for example).
 *
 * LHLO, MAIL FROM, one RCPT TO per recipient, DATA with dot-stuffing, one
 * reply per accepted recipient after the final dot.  4xx replies and
 * connection trouble defer, 5xx bounce.  The LMTP server adds Return-Path:
 * and Delivered-To: itself (it is the final delivery agent), so the
 * message is sent as queued.  Every read and write has a timeout; this
 * runs in a delivery worker thread.
 *
 * Connections are kept for the next message (as Postfix's LMTP client
 * caches them): after a transaction whose every reply was read, the
 * connection goes to a small pool; the next delivery takes it, checks it
 * with RSET (a failure there means a fresh connection, never a failed
 * delivery) and skips the greeting and LHLO.  A connection found idle for
 * more than LMTP_IDLE_SECS when the next delivery looks, or used
 * LMTP_MAX_TX times, is closed with QUIT; the pool is closed when the
 * settings are replaced (reload) or the queue role stops.
 */
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "delivery.h"
#include "reply-reader.h"
#include "util.h"

#define LMTP_TIMEOUT_SECS  120    /* per read or write */
#define LMTP_POOL_MAX      8      /* idle connections kept */
#define LMTP_IDLE_SECS     10     /* reused only if idle at most this long */
#define LMTP_PROBE_SECS    5      /* the RSET of a kept connection, at most */
#define LMTP_MAX_TX        1000   /* transactions on one connection */

struct lmtp_conn;

struct lmtp_ctx {
	char *target;                /* as configured */
	char *relay;                 /* "lmtp:unix:/path" */
	char *hostname;
	bool unix_sock;
	char *path;                  /* unix */
	char *host, *port;           /* inet */
	char *label;                 /* inet: "host:port", for messages */
	pthread_mutex_t mu;          /* guards the pool */
	struct lmtp_conn *idle[LMTP_POOL_MAX];
	size_t n_idle;
};

/* One connection. */
struct lmtp_conn {
	int fd;
	struct reply_client cl;
	time_t used;                 /* last transaction ended */
	unsigned n_tx;               /* transactions done on it */
};

/*
 * close_conn - free k; quit: it is in a clean state, so say QUIT first,
 * without waiting for the answer (this may run on the queue role's event
 * loop when a reload frees the pool, and a server may not answer).
 */
static void
close_conn(struct lmtp_conn *k, bool quit)
{
	if (k == NULL)
		return;
	if (quit && k->fd >= 0)
		(void)send(k->fd, "QUIT\r\n", 6, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (k->fd >= 0)
		close(k->fd);
	free(k);
}

/*
 * probe - does kept connection k still answer?  RSET with a short wait
 * (a dead server must not hold the delivery for the full timeout), and
 * nothing may be left unread after its reply.
 */
static bool
probe(struct lmtp_conn *k)
{
	struct timeval shortw = { LMTP_PROBE_SECS, 0 }, full = { LMTP_TIMEOUT_SECS, 0 };
	bool ok;

	if (reply_reader_pending(&k->cl.rd) != 0)
		return false;
	(void)setsockopt(k->fd, SOL_SOCKET, SO_RCVTIMEO, &shortw, sizeof(shortw));
	ok = reply_command(&k->cl, "RSET") == 0 && k->cl.code == 250 &&
	    reply_reader_pending(&k->cl.rd) == 0;
	(void)setsockopt(k->fd, SOL_SOCKET, SO_RCVTIMEO, &full, sizeof(full));
	return ok;
}

/* pool_take - the newest idle connection still fresh enough, or NULL. */
static struct lmtp_conn *
pool_take(struct lmtp_ctx *c)
{
	struct lmtp_conn *k = NULL, *stale[LMTP_POOL_MAX];
	size_t n_stale = 0;
	time_t now = time(NULL);

	pthread_mutex_lock(&c->mu);
	while (c->n_idle > 0 && k == NULL) {
		struct lmtp_conn *x = c->idle[--c->n_idle];

		if (now - x->used > LMTP_IDLE_SECS || now < x->used)
			stale[n_stale++] = x;
		else
			k = x;
	}
	pthread_mutex_unlock(&c->mu);
	for (size_t i = 0; i < n_stale; i++)
		close_conn(stale[i], true);
	return k;
}

/* pool_put - keep k for the next delivery (or close it when full). */
static void
pool_put(struct lmtp_ctx *c, struct lmtp_conn *k)
{
	k->used = time(NULL);
	/* bytes the server sent beyond its replies: not in a known state */
	if (reply_reader_pending(&k->cl.rd) != 0) {
		close_conn(k, false);
		return;
	}
	if (++k->n_tx < LMTP_MAX_TX) {
		pthread_mutex_lock(&c->mu);
		if (c->n_idle < LMTP_POOL_MAX) {
			c->idle[c->n_idle++] = k;
			k = NULL;
		}
		pthread_mutex_unlock(&c->mu);
	}
	close_conn(k, true);
}

static void
lmtp_free(void *ctx)
{
	struct lmtp_ctx *c = ctx;

	if (c == NULL)
		return;
	while (c->n_idle > 0)
		close_conn(c->idle[--c->n_idle], true);
	pthread_mutex_destroy(&c->mu);
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
	pthread_mutex_init(&c->mu, NULL);
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
	struct lmtp_conn *k;
	struct reply_client *cl;
	bool *decided = xcalloc(n ? n : 1, sizeof(bool));
	size_t n_acc = 0;
	char why[512];
	const char *stage = "greeting";

	/* a kept connection that still answers RSET, else a new one */
	while ((k = pool_take(c)) != NULL) {
		if (probe(k))
			break;
		close_conn(k, false);
	}
	if (k != NULL) {
		cl = &k->cl;
		goto transaction;
	}
	k = xcalloc(1, sizeof(*k));
	cl = &k->cl;
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
transaction:
	stage = "MAIL FROM";
	if (reply_command(cl, "MAIL FROM:<%s>", msg->env->sender) < 0)
		goto ioerr;
	if (cl->code / 100 != 2)
		goto badreply;
	stage = "RCPT TO";
	if (reply_rcpt_to(cl, rcpts, n, decided, NULL, c->relay, &n_acc) < 0)
		goto ioerr;
	if (n_acc == 0) {
		pool_put(c, k);          /* the next one starts with RSET */
		k = NULL;
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
	pool_put(c, k);                  /* every reply read: clean */
	k = NULL;
	goto out;
ioerr:
	delivery_set_all_lost(rcpts, n, decided, c->relay, stage, errno);
	goto out;
badreply:
	/* a whole-transaction failure: the reply decides for everyone */
	reply_set_all(rcpts, n, decided, cl, stage, c->relay);
	(void)reply_command(cl, "QUIT");
out:
	close_conn(k, false);
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
