/*
 * smtp-cmd-data.c - the DATA phase of the SMTP role: get an incoming
 * queue file from the queue role, stream the envelope header, our
 * Received: header and the filtered message into it (with the RFC 6409
 * section 8 fix-ups: Message-ID and Date when missing), then COMMIT and
 * answer "250 2.0.0 Ok: queued as ID" only once the queue role says the
 * file is on stable storage.
 *
 * With relay.check_from_header (submission), the From: header fields are
 * checked against the login when the header section is complete
 * (smtp-policy.c policy_from_header); a refusal is kept for the end.
 *
 * Anything wrong (bare CR/LF, NUL, too big, write error, From: not owned) is
 * only answered at the real end of data; the file is then ABORTed,
 * nothing is queued.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "log.h"
#include "qfile.h"
#include "queue-client.h"
#include "smtp-policy.h"
#include "smtp-session.h"

#define WBUF_SIZE    (64 * 1024)     /* file writes in chunks this big */
#define HDR_MAX      (1024 * 1024)   /* header section kept for fix-ups */
#define FEED_CHUNK   16384
#define DEF_DATA_TIMEOUT 600         /* smtp.data_timeout default, seconds */
#define SMTP_MAX_HOPS 100            /* Received: fields meaning a loop (RFC 5321 6.3) */

static void open_cb(void *ctx, int fd, const char *qid, const char *err);
static void commit_cb(void *ctx, int ok, const char *err);

static void
wbuf_flush(struct smtp_tx *tx)
{
	if (tx->wlen > 0 && tx->werr == 0) {
		if (write_all(tx->fd, tx->wbuf, tx->wlen) < 0)
			tx->werr = errno ? errno : EIO;
		else
			tx->written += (long long)tx->wlen;
	}
	tx->wlen = 0;
}

/* Buffered write to the queue file; errors are remembered, not reported. */
static void
wbuf_add(struct smtp_tx *tx, const void *p, size_t n)
{
	const char *c = p;

	while (n > 0 && tx->werr == 0) {
		size_t k = WBUF_SIZE - tx->wlen;

		if (k > n)
			k = n;
		memcpy(tx->wbuf + tx->wlen, c, k);
		tx->wlen += k;
		c += k;
		n -= k;
		if (tx->wlen == WBUF_SIZE)
			wbuf_flush(tx);
	}
}

/* RFC 5322 date-time of t. */
static void
rfc5322_date(time_t t, char *buf, size_t len)
{
	struct tm tm;

	localtime_r(&t, &tm);
	strftime(buf, len, "%a, %d %b %Y %H:%M:%S %z", &tm);
}

/* Copy s for use inside a header comment: printable ASCII, no ()\. */
static void
comment_safe(char *buf, size_t len, const char *s)
{
	size_t i;

	log_safe(buf, len, s, len - 1);
	for (i = 0; buf[i]; i++)
		if (buf[i] == '(' || buf[i] == ')' || buf[i] == '\\')
			buf[i] = '?';
}

/* Our Received: header (RFC 5321 4.4, RFC 3848 protocol types). */
static void
add_received(struct smtp_session *s)
{
	const struct msagate_config *cfg = s->srv->cfg;
	struct smtp_tx *tx = s->tx;
	char date[64], helo[300], user[300], ip[80], hdr[1400];
	const char *proto;
	int n;

	if (!(s->flags & SF_EHLO))
		proto = "SMTP";
	else if ((s->flags & SF_TLS) && (s->flags & SF_AUTH))
		proto = "ESMTPSA";
	else if (s->flags & SF_TLS)
		proto = "ESMTPS";
	else if (s->flags & SF_AUTH)
		proto = "ESMTPA";
	else
		proto = "ESMTP";
	rfc5322_date(tx->arrival, date, sizeof(date));
	comment_safe(helo, sizeof(helo), s->helo ? s->helo : "unknown");
	snprintf(ip, sizeof(ip), "%s%s", strchr(s->rip, ':') ? "IPv6:" : "", s->rip);
	n = snprintf(hdr, sizeof(hdr), "Received: from %s ([%s])\r\n"
	             "\tby %s (msagate) with %s id %s", helo, ip,
	             cfg->hostname, proto, tx->qid);
	if (s->tls_info) {
		char v[64], c[128];

		if (sscanf(s->tls_info, "%63s %127s", v, c) == 2)
			n += snprintf(hdr + n, sizeof(hdr) - (size_t)n,
			              "\r\n\t(version=%s cipher=%s)", v, c);
	}
	if (cfg->smtp.received_show_user && s->auth_user) {
		comment_safe(user, sizeof(user), s->auth_user);
		n += snprintf(hdr + n, sizeof(hdr) - (size_t)n,
		              "\r\n\t(authenticated user %s)", user);
	}
	n += snprintf(hdr + n, sizeof(hdr) - (size_t)n, ";\r\n\t%s\r\n", date);
	if (n > 0 && (size_t)n < sizeof(hdr))
		wbuf_add(tx, hdr, (size_t)n);
}

/*
 * The values of every header field called name (lower case) in the
 * header section h[0..len), unfolded: "v1\0v2\0\0" (malloc'd), or NULL
 * when there is none.
 */
static char *
header_values(const char *h, size_t len, const char *name)
{
	size_t nl = strlen(name), i = 0;
	struct sbuf b;
	bool any = false;

	sbuf_init(&b, 0);
	while (i < len) {
		size_t e = i, k;

		while (e < len && h[e] != '\n')
			e++;
		/* this line: h[i..e), without CR */
		k = i + nl;
		if (e - i > nl && strncasecmp(h + i, name, nl) == 0) {
			while (k < e && (h[k] == ' ' || h[k] == '\t'))
				k++;
			if (k < e && h[k] == ':') {
				size_t j = k + 1;

				any = true;
				for (;;) {
					size_t le = e;

					if (le > j && h[le - 1] == '\r')
						le--;
					sbuf_add(&b, h + j, le - j);
					if (e + 1 < len && (h[e + 1] == ' ' || h[e + 1] == '\t')) {
						j = e + 1;
						e = j;
						while (e < len && h[e] != '\n')
							e++;
						continue;
					}
					break;
				}
				sbuf_add(&b, "", 1);
			}
		}
		i = e + 1;
	}
	if (!any) {
		sbuf_free(&b);
		return NULL;
	}
	sbuf_add(&b, "", 1);
	return b.s;
}

/*
 * relay.check_from_header: may the login use the From: address(es)?
 * complete: the whole header section is in tx->hdr.  A refusal is kept in
 * tx->from_err and answered at the end of data.
 */
static void
check_from(struct smtp_session *s, bool complete)
{
	struct smtp_tx *tx = s->tx;
	const struct smtp_data *d = &tx->filter;
	struct policy_client pc;
	char buf[600], *values;
	size_t end;

	if (s->lc->role != LISTEN_SUBMISSION || !s->srv->cfg->relay.check_from_header ||
	    tx->from_err != NULL)
		return;
	if (!complete) {
		tx->from_err = xstrdup("553 5.7.1 Header section too big to check "
		                       "the From: header");
		return;
	}
	end = tx->hdr.len;
	if (!d->in_headers && (size_t)d->header_end < end)
		end = (size_t)d->header_end;
	values = header_values(tx->hdr.s ? tx->hdr.s : "", end, "from");
	smtp_policy_client(s, &pc);
	if (policy_from_header(&pc, values, buf, sizeof(buf)) != POLICY_OK)
		tx->from_err = xstrdup(buf);
	free(values);
}

/*
 * Write Received:, the buffered header section with Message-ID and Date
 * added before its end when missing (submission only, RFC 6409 8), and
 * whatever of the body was buffered with it.
 */
static void
flush_headers(struct smtp_session *s, bool fixups)
{
	struct smtp_tx *tx = s->tx;
	const struct smtp_data *d = &tx->filter;
	size_t end = (size_t)d->header_end;
	char line[600], date[64];

	check_from(s, fixups);
	add_received(s);
	if (!fixups || d->in_headers || end > tx->hdr.len ||
	    s->lc->role != LISTEN_SUBMISSION) {
		wbuf_add(tx, tx->hdr.s, tx->hdr.len);
	} else {
		wbuf_add(tx, tx->hdr.s, end);
		if (!d->have_msgid) {
			struct tm tm;
			char ts[32];

			gmtime_r(&tx->arrival, &tm);
			strftime(ts, sizeof(ts), "%Y%m%d%H%M%S", &tm);
			snprintf(line, sizeof(line), "Message-ID: <%s.%s@%s>\r\n",
			         ts, tx->qid, s->srv->cfg->hostname);
			wbuf_add(tx, line, strlen(line));
		}
		if (!d->have_date) {
			rfc5322_date(tx->arrival, date, sizeof(date));
			snprintf(line, sizeof(line), "Date: %s\r\n", date);
			wbuf_add(tx, line, strlen(line));
		}
		wbuf_add(tx, tx->hdr.s + end, tx->hdr.len - end);
	}
	sbuf_free(&tx->hdr);
	tx->hdr_done = true;
}

/* Message octets from the filter: header buffer, then the file. */
static void
sink(struct smtp_session *s, const char *p, size_t n)
{
	struct smtp_tx *tx = s->tx;

	if (tx->filter.bare || tx->filter.nul || tx->filter.too_big || tx->werr)
		return;         /* refused at the end anyway: discard */
	if (tx->hdr_done) {
		wbuf_add(tx, p, n);
		return;
	}
	if (tx->hdr.len + n > HDR_MAX) {
		/* Huge header section: no fix-ups, write through from here. */
		flush_headers(s, false);
		wbuf_add(tx, p, n);
		return;
	}
	if (n > 0 && !sbuf_add(&tx->hdr, p, n)) {
		tx->werr = ENOMEM;
		return;
	}
	if (!tx->filter.in_headers)
		flush_headers(s, true);
}

/* DATA command: ask the queue role for an incoming file first. */
void
smtp_cmd_data(struct smtp_session *s, const char *args)
{
	if (*args != '\0') {
		smtp_session_reply(s, "501 5.5.4 Syntax: DATA");
		return;
	}
	s->flags |= SF_WAIT | SF_BUSY;
	s->tx->req = queuec_open(s->srv->queuec, open_cb, s);
}

/* Transaction over (answered): back to commands. */
static void
tx_done(struct smtp_session *s)
{
	const struct msagate_config *cfg = s->srv->cfg;

	smtp_tx_free(s);
	s->state = ST_CMD;
	s->flags &= ~SF_BUSY;
	smtp_session_set_timeout(s, cfg->smtp.idle_timeout > 0 ?
	                         cfg->smtp.idle_timeout : 300);
	if (s->srv->stopping)
		smtp_session_shutdown_idle(s);
}

/* Refuse the message: nothing of it may stay in the queue. */
static void
tx_discard(struct smtp_session *s)
{
	struct smtp_tx *tx = s->tx;

	if (tx->fd >= 0) {
		close(tx->fd);
		tx->fd = -1;
	}
	if (tx->qid[0] && !tx->committing)
		queuec_abort(s->srv->queuec, tx->qid);
	tx->qid[0] = '\0';
}

static void
open_cb(void *ctx, int fd, const char *qid, const char *err)
{
	struct smtp_session *s = ctx;
	struct smtp_tx *tx = s->tx;
	struct qenvelope env;
	char *hdr = NULL, safe[200];
	long hlen;
	int dt = s->srv->cfg->smtp.data_timeout;

	if (tx)
		tx->req = NULL;
	if ((s->flags & SF_CLOSING) || tx == NULL) {
		if (fd >= 0) {
			close(fd);
			queuec_abort(s->srv->queuec, qid);
		}
		return;
	}
	s->verb = "DATA";
	if (fd < 0 || qid == NULL || strlen(qid) != QID_LEN) {
		log_warnx("%s: queue file: %s", s->id,
		          err ? log_safe(safe, sizeof(safe), err, 150) : "no qid");
		if (fd >= 0)
			close(fd);
		smtp_session_reply(s, "452 4.3.1 Insufficient system storage");
		tx_done(s);
		smtp_session_resume(s);
		return;
	}
	memcpy(tx->qid, qid, QID_LEN + 1);
	tx->fd = fd;
	tx->arrival = time(NULL);
	tx->wbuf = xmalloc(WBUF_SIZE);
	sbuf_init(&tx->hdr, 0);
	smtp_data_init(&tx->filter, s->srv->cfg->relay.message_size_limit);

	memset(&env, 0, sizeof(env));
	memcpy(env.id, tx->qid, sizeof(env.id));
	env.arrival = tx->arrival;
	env.sender = tx->sender;
	env.rcpts = tx->rcpts;
	env.n_rcpts = tx->n_rcpts;
	env.auth_user = s->auth_user;
	env.client = s->rip;
	env.client_port = s->rport;
	env.helo = s->helo;
	env.tls = s->tls_info;
	env.listener = (char *)smtp_listener_name(s);
	env.smtputf8 = tx->smtputf8;
	env.eightbit = tx->eightbit;
	if ((hlen = qfile_format_header(&env, &hdr)) < 0)
		tx->werr = EINVAL;
	else
		wbuf_add(tx, hdr, (size_t)hlen);
	free(hdr);

	s->state = ST_DATA;
	smtp_session_set_timeout(s, dt > 0 ? dt : DEF_DATA_TIMEOUT);
	smtp_session_reply(s, "354 End data with <CR><LF>.<CR><LF>");
	smtp_session_resume(s);
}

/* The real end of data: refuse, or close the file and COMMIT. */
static void
data_end(struct smtp_session *s)
{
	struct smtp_tx *tx = s->tx;
	char from[200];

	s->verb = "DATA";
	if (tx->filter.bare) {
		log_info("%s: reject: message from [%s] contains bare CR or LF "
		         "(SMTP smuggling?)", s->id, s->rip);
		tx_discard(s);
		s->flags |= SF_LOGGED;
		smtp_session_reply(s, "554 5.6.0 Message contains bare CR or LF");
		tx_done(s);
		return;
	}
	if (tx->filter.nul) {
		log_info("%s: reject: message from [%s] contains NUL characters",
		         s->id, s->rip);
		tx_discard(s);
		s->flags |= SF_LOGGED;
		smtp_session_reply(s, "554 5.6.0 Message contains NUL characters");
		tx_done(s);
		return;
	}
	if (tx->filter.too_big) {
		tx_discard(s);
		smtp_session_reply(s, "552 5.3.4 Message size exceeds fixed limit");
		tx_done(s);
		return;
	}
	if (tx->filter.received >= SMTP_MAX_HOPS) {
		/* RFC 5321 6.3: a mail loop; refuse it rather than pass it on */
		log_info("%s: reject: message from [%s] has %u Received: fields "
		         "(mail loop?)", s->id, s->rip, tx->filter.received);
		tx_discard(s);
		s->flags |= SF_LOGGED;
		smtp_session_reply(s, "554 5.4.6 Error: too many hops (%u Received: "
		                   "fields; mail loop?)", tx->filter.received);
		tx_done(s);
		return;
	}
	if (!tx->hdr_done)
		flush_headers(s, true);
	if (tx->from_err != NULL) {
		char safe[300], user[128];

		log_info("%s: reject: DATA from [%s] user=%s: %s", s->id, s->rip,
		         s->auth_user ? log_token(user, sizeof(user), s->auth_user, 100) : "-",
		         log_safe(safe, sizeof(safe), tx->from_err, 250));
		tx_discard(s);
		s->flags |= SF_LOGGED;
		smtp_session_reply(s, "%s", tx->from_err);
		tx_done(s);
		return;
	}
	wbuf_flush(tx);
	if (tx->werr == 0 && close(tx->fd) != 0)
		tx->werr = errno;
	else if (tx->werr != 0)
		close(tx->fd);
	tx->fd = -1;
	if (tx->werr != 0) {
		log_warnx("%s: queue file %s: write error: %s", s->id, tx->qid,
		          strerror(tx->werr));
		tx_discard(s);
		smtp_session_reply(s, "452 4.3.1 Insufficient system storage");
		tx_done(s);
		return;
	}
	log_debug("%s: committing %s from=<%s>", s->id, tx->qid,
	          log_safe(from, sizeof(from), tx->sender, 150));
	tx->committing = true;
	s->flags |= SF_WAIT;
	/* the queue role cuts a recycled file (qspare.h) to this length */
	tx->req = queuec_commit(s->srv->queuec, tx->qid, tx->written, commit_cb, s);
}

static void
commit_cb(void *ctx, int ok, const char *err)
{
	struct smtp_session *s = ctx;
	struct smtp_tx *tx = s->tx;
	char from[200], user[128], safe[200];

	if (tx)
		tx->req = NULL;
	if ((s->flags & SF_CLOSING) || tx == NULL)
		return;
	s->verb = "DATA";
	if (ok) {
		log_info("%s: queued: qid=%s from=<%s> nrcpt=%zu size=%lld "
		         "user=%s client=[%s]", s->id, tx->qid,
		         log_safe(from, sizeof(from), tx->sender, 150),
		         tx->n_rcpts, tx->filter.size,
		         s->auth_user ? log_token(user, sizeof(user), s->auth_user, 100) : "-",
		         s->rip);
		smtp_session_reply(s, "250 2.0.0 Ok: queued as %s", tx->qid);
	} else {
		log_warnx("%s: queue commit %s failed: %s", s->id, tx->qid,
		          err ? log_safe(safe, sizeof(safe), err, 150) : "?");
		tx->committing = false;
		tx_discard(s);
		smtp_session_reply(s, "452 4.3.1 Insufficient system storage");
	}
	tx_done(s);
	smtp_session_resume(s);
}

/* Feed buffered input to the filter until it is used up or data ends. */
void
smtp_data_input(struct smtp_session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	char out[FEED_CHUNK + SMTP_DATA_SLACK];

	while (s->state == ST_DATA && evbuffer_get_length(in) > 0) {
		struct evbuffer_iovec v;
		size_t len, used, olen;

		if (evbuffer_peek(in, FEED_CHUNK, NULL, &v, 1) < 1)
			break;
		len = v.iov_len < FEED_CHUNK ? v.iov_len : FEED_CHUNK;
		used = smtp_data_feed(&s->tx->filter, v.iov_base, len, out, &olen);
		sink(s, out, olen);
		evbuffer_drain(in, used);
		if (s->tx->filter.done) {
			s->state = ST_CMD;
			data_end(s);
		}
	}
}

/* The session goes away: forget the queue request, drop the file. */
void
smtp_data_cancel(struct smtp_session *s)
{
	struct smtp_tx *tx = s->tx;

	if (tx == NULL)
		return;
	if (tx->req) {
		queuec_req_cancel(tx->req);
		tx->req = NULL;
	}
	tx_discard(s);
}
