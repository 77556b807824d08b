/*
 * delivery.c - what the delivery methods share: the method table, the
 * recipient verdict, streaming the queued message (CRLF->LF for Maildir,
 * dot-stuffing for LMTP/SMTP), address helpers, and connecting to an LMTP
 * or SMTP server with timeouts.
 */
#include <sys/socket.h>
#include <sys/time.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "delivery.h"
#include "util.h"

#define COPY_CHUNK 65536

static const struct delivery_method *const methods[] = {
	&delivery_maildir, &delivery_lmtp, &delivery_discard, &delivery_smtp, NULL
};

const struct delivery_method *
delivery_method_find(const char *name)
{
	for (size_t i = 0; name != NULL && methods[i] != NULL; i++)
		if (strcmp(methods[i]->name, name) == 0)
			return methods[i];
	return NULL;
}

void
delivery_printable(char *dst, size_t len, const char *s)
{
	size_t i;

	if (len == 0)
		return;
	for (i = 0; s[i] != '\0' && i + 1 < len; i++) {
		unsigned char c = (unsigned char)s[i];

		dst[i] = c < 0x20 || c >= 0x7f ? '?' : (char)c;
	}
	dst[i] = '\0';
}

void
delivery_set(struct delivery_rcpt *r, enum delivery_status st,
    const char *dsn, const char *fmt, ...)
{
	char buf[DELIVERY_DETAIL_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	r->status = st;
	delivery_printable(r->detail, sizeof(r->detail), buf);
	delivery_printable(r->dsn, sizeof(r->dsn), dsn);
}

void
delivery_set_all(struct delivery_rcpt *r, size_t n, const bool *decided,
    enum delivery_status st, const char *dsn, const char *why, bool remote)
{
	for (size_t i = 0; i < n; i++) {
		if (decided != NULL && decided[i])
			continue;
		delivery_set(&r[i], st, dsn, "%s", why);
		r[i].remote_reply = remote;
	}
}

void
delivery_set_all_lost(struct delivery_rcpt *r, size_t n, const bool *decided,
    const char *relay, const char *stage, int err)
{
	char why[512];

	if (err == 0)           /* end of stream: the peer closed it */
		snprintf(why, sizeof(why), "lost connection with %.200s during %s: "
		    "the server closed the connection", relay, stage);
	else
		snprintf(why, sizeof(why), "lost connection with %.200s during %s: %s",
		    relay, stage, strerror(err));
	delivery_set_all(r, n, decided, DELIVERY_DEFER, "4.4.2", why, false);
}

/* Output buffer of delivery_copy_body(). */
struct obuf {
	char buf[COPY_CHUNK + 8];
	size_t len;
	int (*out)(void *, const char *, size_t);
	void *arg;
};

static int
obuf_put(struct obuf *o, const char *p, size_t n)
{
	if (o->len + n > COPY_CHUNK) {
		if (o->len > 0 && o->out(o->arg, o->buf, o->len) < 0)
			return -1;
		o->len = 0;
	}
	memcpy(o->buf + o->len, p, n);
	o->len += n;
	return 0;
}

/* The copy itself: reads in[] chunks, writes through o. */
static int
copy_loop(const struct delivery_msg *msg, enum delivery_copy_mode mode,
    struct obuf *o, char *in, size_t insize)
{
	long long off = msg->body_offset;
	bool bol = true, cr = false, last_lf = true;
	bool lf = mode == DELIVERY_COPY_LF;
	ssize_t n;

	for (;;) {
		n = pread(msg->fd, in, insize, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0)
			break;
		off += n;
		for (ssize_t i = 0; i < n; i++) {
			char c = in[i];

			if (cr) {
				cr = false;
				if (c == '\n') {
					if (obuf_put(o, lf ? "\n" : "\r\n", lf ? 1 : 2) < 0)
						return -1;
					bol = true;
					last_lf = true;
					continue;
				}
				if (obuf_put(o, "\r", 1) < 0)
					return -1;
				bol = false;
			}
			if (c == '\r') {
				cr = true;
				continue;
			}
			if (bol && c == '.' && !lf && obuf_put(o, ".", 1) < 0)
				return -1;
			if (obuf_put(o, &c, 1) < 0)
				return -1;
			bol = c == '\n';
			last_lf = bol;
		}
	}
	if (cr) {
		if (obuf_put(o, "\r", 1) < 0)
			return -1;
		last_lf = false;
	}
	if (!last_lf && obuf_put(o, lf ? "\n" : "\r\n", lf ? 1 : 2) < 0)
		return -1;
	if (o->len > 0 && o->out(o->arg, o->buf, o->len) < 0)
		return -1;
	o->len = 0;
	return 0;
}

/*
 * delivery_copy_body - the queued message has CRLF line ends (the SMTP
 * role refuses bare CR and LF); a lone CR or LF is copied as it is anyway,
 * so nothing is lost.
 */
int
delivery_copy_body(const struct delivery_msg *msg, enum delivery_copy_mode mode,
    int (*out)(void *arg, const char *p, size_t n), void *arg)
{
	struct obuf *obp = xmalloc(sizeof(*obp));
	char *in = xmalloc(COPY_CHUNK);
	int rc;

	obp->len = 0;
	obp->out = out;
	obp->arg = arg;
	rc = copy_loop(msg, mode, obp, in, COPY_CHUNK);
	free(in);
	free(obp);
	return rc;
}

int
delivery_split_address(const char *address, const char *delimiter,
    char *local, size_t llen, char *domain, size_t dlen)
{
	const char *at = strrchr(address, '@');
	size_t ln, dn;

	if (at == NULL || at == address || at[1] == '\0')
		return -1;
	ln = (size_t)(at - address);
	if (delimiter != NULL && delimiter[0] != '\0') {
		const char *d = memchr(address, delimiter[0], ln);

		/* "+tag" alone is not a user: keep it whole */
		if (d != NULL && d != address)
			ln = (size_t)(d - address);
	}
	dn = strlen(at + 1);
	if (ln + 1 > llen || dn + 1 > dlen)
		return -1;
	for (size_t i = 0; i < ln; i++)
		local[i] = (char)tolower((unsigned char)address[i]);
	local[ln] = '\0';
	for (size_t i = 0; i < dn; i++)
		domain[i] = (char)tolower((unsigned char)at[1 + i]);
	domain[dn] = '\0';
	return 0;
}

bool
delivery_domain_is_local(const struct msagate_config *cfg, const char *domain)
{
	for (size_t i = 0; i < cfg->relay.n_local_domains; i++)
		if (strcasecmp(cfg->relay.local_domains[i], domain) == 0)
			return true;
	return false;
}

/* connect() with a timeout; fd is blocking again afterwards. */
static int
connect_timeout(int fd, const struct sockaddr *sa, socklen_t len)
{
	struct pollfd pfd = { .fd = fd, .events = POLLOUT };
	int err = 0, r, fl;
	socklen_t elen = sizeof(err);

	if (set_nonblock(fd) < 0)
		return -1;
	if (connect(fd, sa, len) < 0) {
		if (errno != EINPROGRESS)
			return -1;
		while ((r = poll(&pfd, 1, DELIVERY_CONNECT_SECS * 1000)) < 0 &&
		    errno == EINTR)
			;
		if (r == 0)
			return errno = ETIMEDOUT, -1;
		if (r < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
			return -1;
		if (err != 0)
			return errno = err, -1;
	}
	if ((fl = fcntl(fd, F_GETFL)) < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
		return -1;
	return 0;
}

int
delivery_connect_addr(int family, int type, int protocol,
    const struct sockaddr *sa, socklen_t len, const char *label, int io_secs,
    char *why, size_t wlen)
{
	struct timeval tv = { io_secs, 0 };
	int fd = socket(family, type | SOCK_CLOEXEC, protocol);

	if (fd < 0 || connect_timeout(fd, sa, len) < 0) {
		snprintf(why, wlen, "connect to %s: %s", label, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return fd;
}

int
delivery_connect_host(const char *host, const char *port, const char *label,
    int io_secs, char *why, size_t wlen)
{
	struct addrinfo hints, *res, *ai;
	int fd = -1, r;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	if ((r = getaddrinfo(host, port, &hints, &res)) != 0) {
		snprintf(why, wlen, "cannot resolve %s: %s", host, gai_strerror(r));
		return -1;
	}
	snprintf(why, wlen, "no address for %s", host);
	for (ai = res; ai != NULL && fd < 0; ai = ai->ai_next)
		fd = delivery_connect_addr(ai->ai_family, ai->ai_socktype,
		    ai->ai_protocol, ai->ai_addr, ai->ai_addrlen, label, io_secs,
		    why, wlen);
	freeaddrinfo(res);
	return fd;
}
