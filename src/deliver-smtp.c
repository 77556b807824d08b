/*
 * deliver-smtp.c - the "smtp" delivery method: onward relay of foreign
 * recipients to relay.relayhost or, without one (and relay.mx_lookup),
 * to each recipient domain's MX hosts (RFC 5321 client).
 *
 * relay.relayhost = "[host]:port", "[192.0.2.1]:2525", "host:port" or
 * "host" (port 25; the name is resolved as an address, no MX lookup).
 * One transaction per message for all of its foreign recipients: EHLO
 * (HELO if refused), STARTTLS per relay.relayhost_tls ("required" defers
 * when it is not offered or fails, "opportunistic" falls back to plain
 * text only when it is not offered), certificate and host name
 * verification per relay.tls_verify (system CA store or
 * relay.tls_ca_file), AUTH PLAIN or LOGIN with the user:password line of
 * relay.relayhost_credentials (a file nobody but its owner may read; only
 * sent over TLS), MAIL FROM with SIZE= and BODY=8BITMIME when offered and
 * SMTPUTF8 when the message came with it (a non-ASCII envelope address is
 * bounced, 5.6.7, by a server without SMTPUTF8: RFC 6531 3.4), one
 * RCPT per recipient (2xx accepted, 4xx defer, 5xx bounce), DATA with
 * dot-stuffing, QUIT.  At most relay.relayhost_max_connections deliveries
 * talk to the relayhost at once.  Every read and write has a timeout;
 * this runs in a delivery worker thread.  The message is sent as queued
 * (no Return-Path: - that is for final delivery).
 *
 * By MX (src/mx.c): recipients grouped by domain, MX hosts in preference
 * order (the domain itself without MX), each address tried until one
 * connects, port 25, opportunistic STARTTLS without verification, no AUTH.
 * NXDOMAIN and a null MX bounce; DNS trouble defers.  The connection bound
 * is then per domain.
 */
#include <sys/socket.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "deliver-smtp.h"
#include "delivery.h"
#include "log.h"
#include "mx.h"
#include "reply-reader.h"
#include "util.h"

#define SMTP_TIMEOUT_SECS  300    /* per read or write (RFC 5321 4.5.3.2) */
#define CRED_MAX           1024   /* the credentials line */

enum tls_policy { TLS_NONE, TLS_MAY, TLS_REQUIRED };

/* A destination counted by the connection bound. */
struct slot {
	struct slot *next;
	char *key;
	int busy;
};

struct smtp_ctx {
	char *relay;                 /* "smtp:[host]:port" (or "smtp") for log lines */
	bool by_mx;                  /* no relayhost */
	struct mx_servers srv;
	char *host, *port;
	char *hostname;              /* our EHLO name */
	enum tls_policy tls;
	bool verify;
	char *cred_file;
	SSL_CTX *ssl_ctx;
	/* the connection bound */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct slot *slots;
	int max;
};

/* Where one session goes. */
struct dest {
	const char *relay;           /* for messages: "smtp:[host]:port" */
	const char *tls_name;        /* SNI and name check; NULL for none */
	const char *ip;              /* IP literal to check, or NULL */
	enum tls_policy tls;
	bool verify;
	const char *cred_file;
};

/* One connection. */
struct smtp_conn {
	int fd;
	SSL *ssl;
	struct reply_client cl;      /* reads conn_read(), writes conn_write() */
	/* EHLO keywords */
	bool esmtp, starttls, size, eightbit, smtputf8, auth_plain, auth_login;
};

int
smtp_parse_relayhost(const char *s, char **host, char **port)
{
	const char *p = NULL;

	*host = *port = NULL;
	if (s == NULL || s[0] == '\0')
		return -1;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (close == NULL || close == s + 1)
			return -1;
		if (close[1] == ':')
			p = close + 2;
		else if (close[1] != '\0')
			return -1;
		*host = xstrndup(s + 1, (size_t)(close - s - 1));
	} else {
		const char *colon = strrchr(s, ':');

		if (colon == s || (colon != NULL && strchr(s, ':') != colon))
			return -1;
		if (colon != NULL)
			p = colon + 1;
		*host = colon ? xstrndup(s, (size_t)(colon - s)) : xstrdup(s);
	}
	if (p != NULL && (p[0] == '\0' || strspn(p, "0123456789") != strlen(p) ||
	    strlen(p) > 5 || atoi(p) < 1 || atoi(p) > 65535)) {
		free(*host);
		*host = NULL;
		return -1;
	}
	*port = xstrdup(p ? p : "25");
	return 0;
}

static void
smtp_free(void *ctx)
{
	struct smtp_ctx *c = ctx;

	if (c == NULL)
		return;
	free(c->relay);
	free(c->host);
	free(c->port);
	free(c->hostname);
	free(c->cred_file);
	if (c->ssl_ctx != NULL)
		SSL_CTX_free(c->ssl_ctx);
	while (c->slots != NULL) {
		struct slot *sl = c->slots;

		c->slots = sl->next;
		free(sl->key);
		free(sl);
	}
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->cv);
	free(c);
}

static void *
smtp_init(const struct msagate_config *cfg, char **error)
{
	struct smtp_ctx *c = xcalloc(1, sizeof(*c));
	const char *t = cfg->relay.relayhost_tls ? cfg->relay.relayhost_tls : "opportunistic";

	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	c->hostname = xstrdup(cfg->hostname ? cfg->hostname : "localhost");
	c->max = cfg->relay.relayhost_max_conns > 0 ? cfg->relay.relayhost_max_conns : 4;
	if (cfg->relay.relayhost == NULL || cfg->relay.relayhost[0] == '\0') {
		/* by MX: opportunistic TLS, no verification, no AUTH */
		c->by_mx = true;
		c->relay = xstrdup("smtp");
		c->srv.list = (const char *const *)cfg->relay.dns_servers;
		c->srv.n = cfg->relay.n_dns_servers;
		c->tls = TLS_MAY;
		if ((c->ssl_ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
			*error = xstrdup("cannot create the TLS client context");
			goto bad;
		}
		SSL_CTX_set_min_proto_version(c->ssl_ctx, TLS1_2_VERSION);
		SSL_CTX_set_verify(c->ssl_ctx, SSL_VERIFY_NONE, NULL);
		return c;
	}
	if (smtp_parse_relayhost(cfg->relay.relayhost, &c->host, &c->port) < 0) {
		*error = xasprintf("relay.relayhost \"%s\": expected [host]:port, "
		    "host:port or host", cfg->relay.relayhost ? cfg->relay.relayhost : "");
		goto bad;
	}
	c->relay = xasprintf("smtp:[%s]:%s", c->host, c->port);
	c->tls = strcmp(t, "required") == 0 ? TLS_REQUIRED :
	    strcmp(t, "none") == 0 ? TLS_NONE : TLS_MAY;
	c->verify = cfg->relay.tls_verify;
	if (cfg->relay.relayhost_credentials != NULL &&
	    cfg->relay.relayhost_credentials[0] != '\0')
		c->cred_file = xstrdup(cfg->relay.relayhost_credentials);
	if (c->tls != TLS_NONE) {
		if ((c->ssl_ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
			*error = xstrdup("cannot create the TLS client context");
			goto bad;
		}
		SSL_CTX_set_min_proto_version(c->ssl_ctx, TLS1_2_VERSION);
		SSL_CTX_set_options(c->ssl_ctx, SSL_OP_NO_COMPRESSION |
		    SSL_OP_NO_RENEGOTIATION);
		if (c->verify) {
			int r = cfg->relay.tls_ca_file && cfg->relay.tls_ca_file[0] ?
			    SSL_CTX_load_verify_locations(c->ssl_ctx,
			    cfg->relay.tls_ca_file, NULL) :
			    SSL_CTX_set_default_verify_paths(c->ssl_ctx);

			if (r != 1) {
				ERR_clear_error();
				*error = xasprintf("cannot load the CA certificates%s%s",
				    cfg->relay.tls_ca_file ? " from " : "",
				    cfg->relay.tls_ca_file ? cfg->relay.tls_ca_file : "");
				goto bad;
			}
			SSL_CTX_set_verify(c->ssl_ctx, SSL_VERIFY_PEER, NULL);
		} else {
			SSL_CTX_set_verify(c->ssl_ctx, SSL_VERIFY_NONE, NULL);
		}
	}
	return c;
bad:
	smtp_free(c);
	return NULL;
}

static const char *
smtp_relay(void *ctx)
{
	return ((struct smtp_ctx *)ctx)->relay;
}

/* read(2) or SSL_read() on the connection, for the reply reader */
static ssize_t
conn_read(void *arg, void *p, size_t n)
{
	struct smtp_conn *k = arg;

	if (k->ssl != NULL) {
		int r = SSL_read(k->ssl, p, (int)(n > 65536 ? 65536 : n));

		if (r > 0)
			return r;
		if (SSL_get_error(k->ssl, r) == SSL_ERROR_ZERO_RETURN)
			return 0;
		ERR_clear_error();
		if (errno == 0 || errno == EAGAIN)
			errno = errno == EAGAIN ? ETIMEDOUT : EPROTO;
		return -1;
	}
	for (;;) {
		ssize_t r = read(k->fd, p, n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN)
			errno = ETIMEDOUT;
		return r;
	}
}

/* write_all(3) or SSL_write() on the connection, for the reply client */
static int
conn_write(void *arg, const char *p, size_t n)
{
	struct smtp_conn *k = arg;

	if (k->ssl == NULL)
		return write_all(k->fd, p, n) < 0 ? -1 : 0;
	while (n > 0) {
		int r = SSL_write(k->ssl, p, (int)(n > 65536 ? 65536 : n));

		if (r <= 0) {
			ERR_clear_error();
			if (errno == 0 || errno == EAGAIN)
				errno = errno == EAGAIN ? ETIMEDOUT : EPIPE;
			return -1;
		}
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

/* Does the envelope (sender, these recipients) hold a non-ASCII octet? */
static bool
needs_utf8(const char *sender, const struct delivery_rcpt *rcpts, size_t n)
{
	for (const unsigned char *p = (const unsigned char *)sender; *p; p++)
		if (*p >= 0x80)
			return true;
	for (size_t i = 0; i < n; i++)
		for (const unsigned char *p = (const unsigned char *)rcpts[i].address;
		    *p; p++)
			if (*p >= 0x80)
				return true;
	return false;
}

/* Note the EHLO keywords of one reply line ("250-STARTTLS"). */
static void
ehlo_keyword(struct smtp_conn *k, const char *kw)
{
	if (strcasecmp(kw, "STARTTLS") == 0)
		k->starttls = true;
	else if (strncasecmp(kw, "SIZE", 4) == 0 && (kw[4] == '\0' || kw[4] == ' '))
		k->size = true;
	else if (strcasecmp(kw, "8BITMIME") == 0)
		k->eightbit = true;
	else if (strcasecmp(kw, "SMTPUTF8") == 0)
		k->smtputf8 = true;
	else if (strncasecmp(kw, "AUTH", 4) == 0 && (kw[4] == ' ' || kw[4] == '=')) {
		char tmp[REPLY_LINE_MAX], *save = NULL, *w;

		snprintf(tmp, sizeof(tmp), "%s", kw + 5);
		for (w = strtok_r(tmp, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
			if (strcasecmp(w, "PLAIN") == 0)
				k->auth_plain = true;
			else if (strcasecmp(w, "LOGIN") == 0)
				k->auth_login = true;
		}
	}
}

/* EHLO: the keywords of each line after the first ("250-STARTTLS"). */
static void
ehlo_line(void *arg, int idx, const char *line)
{
	if (idx > 0 && line[0] == '2' && line[3] != '\0')
		ehlo_keyword(arg, line + 4);
}

/* smtp_read_credentials - see deliver-smtp.h; the caller logs why. */
int
smtp_read_credentials(const char *file, char *user, size_t ulen, char *pass,
    size_t plen, char *why, size_t wlen)
{
	char buf[CRED_MAX + 1], *colon, *eol;
	struct stat sb;
	ssize_t n;
	size_t got = 0;
	int fd;

	if ((fd = open(file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0) {
		snprintf(why, wlen, "cannot open relay credentials %s: %s", file,
		    strerror(errno));
		return -1;
	}
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) || (sb.st_mode & 077) != 0) {
		snprintf(why, wlen, "relay credentials %s refused: group or others "
		    "may read it (chmod 600) or not a regular file", file);
		close(fd);
		return -1;
	}
	while (got < CRED_MAX && (n = read(fd, buf + got, CRED_MAX - got)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	buf[got] = '\0';
	if ((eol = strpbrk(buf, "\r\n")) != NULL)
		*eol = '\0';
	colon = strchr(buf, ':');
	if (colon == NULL || colon == buf || strlen(buf) >= CRED_MAX ||
	    (size_t)(colon - buf) >= ulen || strlen(colon + 1) >= plen) {
		explicit_bzero(buf, sizeof(buf));
		snprintf(why, wlen, "relay credentials %s: expected one line "
		    "user:password", file);
		return -1;
	}
	*colon = '\0';
	memcpy(user, buf, strlen(buf) + 1);
	memcpy(pass, colon + 1, strlen(colon + 1) + 1);
	explicit_bzero(buf, sizeof(buf));
	return 0;
}

/* base64 of n bytes, malloc'd. */
static char *
base64_encode(const unsigned char *in, size_t n)
{
	char *out = xmalloc(b64_encoded_len(n) + 1);

	b64_encode(in, n, out);
	return out;
}

/* AUTH PLAIN or LOGIN; 0 when accepted, -1 on I/O error, 1 on refusal. */
static int
authenticate(struct smtp_conn *k, const char *user, const char *pass)
{
	char raw[CRED_MAX * 2 + 4], *b64 = NULL;
	size_t ul = strlen(user), pl = strlen(pass);
	int rc;

	if (k->auth_plain) {
		raw[0] = '\0';
		memcpy(raw + 1, user, ul);
		raw[1 + ul] = '\0';
		memcpy(raw + 2 + ul, pass, pl);
		b64 = base64_encode((const unsigned char *)raw, ul + pl + 2);
		explicit_bzero(raw, sizeof(raw));
		rc = reply_command(&k->cl, "AUTH PLAIN %s", b64);
		explicit_bzero(b64, strlen(b64));
		free(b64);
		if (rc < 0)
			return -1;
		return k->cl.code == 235 ? 0 : 1;
	}
	if (reply_command(&k->cl, "AUTH LOGIN") < 0)
		return -1;
	if (k->cl.code != 334)
		return 1;
	b64 = base64_encode((const unsigned char *)user, ul);
	rc = reply_command(&k->cl, "%s", b64);
	free(b64);
	if (rc < 0)
		return -1;
	if (k->cl.code != 334)
		return 1;
	b64 = base64_encode((const unsigned char *)pass, pl);
	rc = reply_command(&k->cl, "%s", b64);
	explicit_bzero(b64, strlen(b64));
	free(b64);
	if (rc < 0)
		return -1;
	return k->cl.code == 235 ? 0 : 1;
}

/* STARTTLS handshake (after a 220); -1 with why. */
static int
start_tls(struct smtp_ctx *c, const struct dest *d, struct smtp_conn *k,
    char *why, size_t wlen)
{
	unsigned long e;
	long vr;

	if ((k->ssl = SSL_new(c->ssl_ctx)) == NULL || SSL_set_fd(k->ssl, k->fd) != 1)
		goto fail;
	/* SNI and the name to verify: not for IP literals */
	if (d->tls_name != NULL) {
		(void)SSL_set_tlsext_host_name(k->ssl, d->tls_name);
		if (d->verify)
			(void)SSL_set1_host(k->ssl, d->tls_name);
	} else if (d->verify && d->ip != NULL) {
		X509_VERIFY_PARAM *p = SSL_get0_param(k->ssl);

		(void)X509_VERIFY_PARAM_set1_ip_asc(p, d->ip);
	}
	if (SSL_connect(k->ssl) == 1)
		return 0;
fail:
	vr = k->ssl ? SSL_get_verify_result(k->ssl) : X509_V_OK;
	e = ERR_peek_last_error();
	if (vr != X509_V_OK)
		snprintf(why, wlen, "TLS handshake with %s failed: certificate "
		    "verification: %s", d->relay, X509_verify_cert_error_string(vr));
	else
		snprintf(why, wlen, "TLS handshake with %s failed: %s", d->relay,
		    e ? ERR_reason_error_string(e) ? ERR_reason_error_string(e) :
		    "error" : "connection closed");
	ERR_clear_error();
	if (k->ssl != NULL) {
		SSL_free(k->ssl);
		k->ssl = NULL;
	}
	return -1;
}

/* EHLO, falling back to HELO; 0, -1 (I/O) or 1 (refused: k->cl.code). */
static int
greet(struct smtp_ctx *c, struct smtp_conn *k)
{
	k->esmtp = k->starttls = k->size = k->eightbit = k->smtputf8 = false;
	k->auth_plain = k->auth_login = false;
	if (reply_command_each(&k->cl, ehlo_line, k, "EHLO %s",
	    c->hostname) < 0)
		return -1;
	if (k->cl.code == 250) {
		k->esmtp = true;
		return 0;
	}
	if (reply_command(&k->cl, "HELO %s", c->hostname) < 0)
		return -1;
	return k->cl.code == 250 ? 0 : 1;
}

/* Wait for a connection slot to destination key (the bound). */
static void
slot_get(struct smtp_ctx *c, const char *key)
{
	struct slot *sl;

	pthread_mutex_lock(&c->mu);
	for (sl = c->slots; sl != NULL; sl = sl->next)
		if (strcasecmp(sl->key, key) == 0)
			break;
	if (sl == NULL) {
		sl = xcalloc(1, sizeof(*sl));
		sl->key = xstrdup(key);
		sl->next = c->slots;
		c->slots = sl;
	}
	while (sl->busy >= c->max)
		pthread_cond_wait(&c->cv, &c->mu);
	sl->busy++;
	pthread_mutex_unlock(&c->mu);
}

static void
slot_put(struct smtp_ctx *c, const char *key)
{
	pthread_mutex_lock(&c->mu);
	for (struct slot *sl = c->slots; sl != NULL; sl = sl->next)
		if (strcasecmp(sl->key, key) == 0) {
			sl->busy--;
			break;
		}
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

/*
 * One SMTP session on the connected fd (closed here) for the recipients;
 * every recipient gets its verdict.
 */
static void
session(struct smtp_ctx *c, const struct dest *d, int fd,
    const struct delivery_msg *msg, struct delivery_rcpt *rcpts, size_t n)
{
	struct smtp_conn *k = xcalloc(1, sizeof(*k));
	bool *decided = xcalloc(n ? n : 1, sizeof(bool));
	size_t n_acc = 0;
	char why[512], user[CRED_MAX], pass[CRED_MAX], extra[80];
	const char *stage = "greeting";
	int r;

	k->fd = fd;
	reply_client_init(&k->cl, conn_read, conn_write, k);
	user[0] = '\0';
	if (reply_client_read(&k->cl) < 0)
		goto ioerr;
	if (k->cl.code != 220)
		goto badreply;
	stage = "EHLO";
	if ((r = greet(c, k)) < 0)
		goto ioerr;
	if (r > 0)
		goto badreply;
	if (d->tls != TLS_NONE && k->starttls) {
		stage = "STARTTLS";
		if (reply_command(&k->cl, "STARTTLS") < 0)
			goto ioerr;
		if (k->cl.code != 220) {
			if (d->tls == TLS_REQUIRED)
				goto badreply;
		} else if (reply_reader_pending(&k->cl.rd) > 0) {
			/*
			 * Bytes after the 220 came in the clear and would be
			 * read as if they came over TLS (STARTTLS response
			 * injection by a man in the middle): no TLS session
			 * with this peer, and nothing of it believed.
			 */
			snprintf(why, sizeof(why), "%s sent data after its 220 to "
			    "STARTTLS (response injection?)", d->relay);
			log_warnx("smtp delivery: %s", why);
			delivery_set_all(rcpts, n, NULL, DELIVERY_DEFER, "4.7.5", why, false);
			goto out;
		} else {
			if (start_tls(c, d, k, why, sizeof(why)) < 0) {
				delivery_set_all(rcpts, n, NULL, DELIVERY_DEFER, "4.7.5", why, false);
				goto out;
			}
			stage = "EHLO";
			if ((r = greet(c, k)) < 0)
				goto ioerr;
			if (r > 0)
				goto badreply;
		}
	} else if (d->tls == TLS_REQUIRED) {
		snprintf(why, sizeof(why), "TLS is required, but %s did not offer "
		    "STARTTLS", d->relay);
		delivery_set_all(rcpts, n, NULL, DELIVERY_DEFER, "4.7.4", why, false);
		(void)reply_command(&k->cl, "QUIT");
		goto out;
	}
	if (d->cred_file != NULL) {
		stage = "AUTH";
		if (smtp_read_credentials(d->cred_file, user, sizeof(user), pass,
		    sizeof(pass), why, sizeof(why)) < 0) {
			log_warnx("queue: %s", why);
			delivery_set_all(rcpts, n, NULL, DELIVERY_DEFER, "4.7.0", why, false);
			(void)reply_command(&k->cl, "QUIT");
			goto out;
		}
		if (k->ssl == NULL || (!k->auth_plain && !k->auth_login)) {
			explicit_bzero(pass, sizeof(pass));
			snprintf(why, sizeof(why), "%s does not offer AUTH PLAIN or "
			    "LOGIN%s", d->relay, k->ssl ? "" : " over TLS; credentials "
			    "are only sent over TLS");
			delivery_set_all(rcpts, n, NULL, DELIVERY_DEFER, "4.7.0", why, false);
			(void)reply_command(&k->cl, "QUIT");
			goto out;
		}
		r = authenticate(k, user, pass);
		explicit_bzero(pass, sizeof(pass));
		if (r < 0)
			goto ioerr;
		if (r > 0) {
			/* an authentication failure is ours to fix: never bounce */
			snprintf(why, sizeof(why), "authentication failed: %.250s (in "
			    "reply to AUTH from %.200s)", k->cl.text, d->relay);
			delivery_set_all(rcpts, n, NULL, DELIVERY_DEFER, "4.7.0", why, true);
			(void)reply_command(&k->cl, "QUIT");
			goto out;
		}
	}
	stage = "MAIL FROM";
	if (msg->env->smtputf8 && needs_utf8(msg->env->sender, rcpts, n) &&
	    !(k->esmtp && k->smtputf8)) {
		/* RFC 6531 3.4: never to a server that cannot take it */
		snprintf(why, sizeof(why), "%.200s does not support SMTPUTF8, which "
		    "the non-ASCII envelope address needs (RFC 6531)", d->relay);
		delivery_set_all(rcpts, n, NULL, DELIVERY_BOUNCE, "5.6.7", why, false);
		(void)reply_command(&k->cl, "QUIT");
		goto out;
	}
	extra[0] = '\0';
	if (k->esmtp && k->size)
		snprintf(extra, sizeof(extra), " SIZE=%lld", msg->body_size);
	if (k->esmtp && k->eightbit)
		strncat(extra, " BODY=8BITMIME", sizeof(extra) - strlen(extra) - 1);
	if (k->esmtp && k->smtputf8 && msg->env->smtputf8)
		strncat(extra, " SMTPUTF8", sizeof(extra) - strlen(extra) - 1);
	if (reply_command(&k->cl, "MAIL FROM:<%s>%s", msg->env->sender, extra) < 0)
		goto ioerr;
	if (k->cl.code / 100 != 2)
		goto badreply;
	stage = "RCPT TO";
	if (reply_rcpt_to(&k->cl, rcpts, n, decided, "RCPT TO", d->relay,
	    &n_acc) < 0)
		goto ioerr;
	if (n_acc == 0) {
		(void)reply_command(&k->cl, "QUIT");
		goto out;
	}
	stage = "DATA";
	if (reply_command(&k->cl, "DATA") < 0)
		goto ioerr;
	if (k->cl.code != 354)
		goto badreply;
	stage = "end of data";
	if (reply_send_message(&k->cl, msg) < 0 || reply_client_read(&k->cl) < 0)
		goto ioerr;
	/* SMTP: the one reply after the final dot, for every accepted recipient */
	for (size_t i = 0; i < n; i++) {
		if (decided[i])
			continue;
		reply_set_rcpt(&rcpts[i], &k->cl, "end of data", d->relay);
		decided[i] = true;
	}
	(void)reply_command(&k->cl, "QUIT");
	goto out;
ioerr:
	delivery_set_all_lost(rcpts, n, decided, d->relay, stage, errno);
	goto out;
badreply:
	/* a whole-transaction failure: the reply decides for everyone */
	reply_set_all(rcpts, n, decided, &k->cl, stage, d->relay);
	(void)reply_command(&k->cl, "QUIT");
out:
	if (k->ssl != NULL) {
		(void)SSL_shutdown(k->ssl);
		SSL_free(k->ssl);
		ERR_clear_error();
	}
	if (k->fd >= 0)
		close(k->fd);
	explicit_bzero(user, sizeof(user));
	free(k);
	free(decided);
}

/* Connect to one of addrs; the fd, or -1 with why. */
static int
connect_any(const struct mx_addr *addrs, size_t n, const char *label,
    char *why, size_t wlen)
{
	int fd = -1;

	for (size_t i = 0; i < n && fd < 0; i++)
		fd = delivery_connect_addr(addrs[i].ss.ss_family, SOCK_STREAM, 0,
		    (const struct sockaddr *)&addrs[i].ss, addrs[i].len, label,
		    SMTP_TIMEOUT_SECS, why, wlen);
	return fd;
}

/* The recipients of one domain, by MX. */
static void
deliver_domain(struct smtp_ctx *c, const char *domain,
    const struct delivery_msg *msg, struct delivery_rcpt *rcpts, size_t n)
{
	struct mx_host *hosts = xcalloc(MX_MAX_HOSTS, sizeof(*hosts));
	struct mx_addr *addrs = xcalloc(MX_MAX_ADDRS, sizeof(*addrs));
	size_t nh = 0, na;
	char why[512], label[MX_NAME_MAX + 80];
	enum mx_result res;

	res = mx_lookup(domain, &c->srv, hosts, &nh, why, sizeof(why));
	if (res == MX_NXDOMAIN || res == MX_NULL) {
		delivery_set_all(rcpts, n, NULL, DELIVERY_BOUNCE, res == MX_NULL ? "5.1.10" :
		    "5.1.2", why, false);
		goto out;
	}
	if (res != MX_OK) {
		delivery_set_all(rcpts, n, NULL, DELIVERY_DEFER, "4.4.3", why, false);
		goto out;
	}
	slot_get(c, domain);
	snprintf(why, sizeof(why), "no MX host of %s reachable", domain);
	for (size_t h = 0; h < nh; h++) {
		char ip[64] = "";
		struct dest d;
		int fd;

		res = mx_addresses(hosts[h].name, 25, &c->srv, addrs, &na, why,
		    sizeof(why));
		if (res != MX_OK)
			continue;
		snprintf(label, sizeof(label), "smtp:%s:25", hosts[h].name);
		if ((fd = connect_any(addrs, na, label, why, sizeof(why))) < 0)
			continue;
		{
			struct sockaddr_storage ss;
			socklen_t sl = sizeof(ss);

			if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0)
				(void)getnameinfo((struct sockaddr *)&ss, sl, ip, sizeof(ip),
				    NULL, 0, NI_NUMERICHOST);
		}
		snprintf(label, sizeof(label), "smtp:%s[%s]:25", hosts[h].name, ip);
		memset(&d, 0, sizeof(d));
		d.relay = label;
		d.tls_name = hosts[h].name;
		d.tls = TLS_MAY;
		session(c, &d, fd, msg, rcpts, n);
		slot_put(c, domain);
		goto out;
	}
	slot_put(c, domain);
	delivery_set_all(rcpts, n, NULL, DELIVERY_DEFER, "4.4.1", why, false);
out:
	free(hosts);
	free(addrs);
}

static void
smtp_deliver(void *ctx, const struct delivery_msg *msg,
    struct delivery_rcpt *rcpts, size_t n)
{
	struct smtp_ctx *c = ctx;

	if (!c->by_mx) {
		struct dest d;
		char why[512];
		bool literal = strchr(c->host, ':') != NULL ||
		    strspn(c->host, "0123456789.") == strlen(c->host);
		int fd;

		memset(&d, 0, sizeof(d));
		d.relay = c->relay;
		d.tls_name = literal ? NULL : c->host;
		d.ip = literal ? c->host : NULL;
		d.tls = c->tls;
		d.verify = c->verify;
		d.cred_file = c->cred_file;
		slot_get(c, c->relay);
		if ((fd = delivery_connect_host(c->host, c->port, c->relay,
		    SMTP_TIMEOUT_SECS, why, sizeof(why))) < 0)
			delivery_set_all(rcpts, n, NULL, DELIVERY_DEFER, "4.4.1", why, false);
		else
			session(c, &d, fd, msg, rcpts, n);
		slot_put(c, c->relay);
		return;
	}
	/* by MX: one group of recipients per domain */
	{
		bool *done = xcalloc(n ? n : 1, sizeof(bool));
		struct delivery_rcpt *group = xcalloc(n ? n : 1, sizeof(*group));
		size_t *map = xcalloc(n ? n : 1, sizeof(*map));

		for (size_t i = 0; i < n; i++) {
			const char *at = strrchr(rcpts[i].address, '@');
			size_t ng = 0;

			if (done[i])
				continue;
			if (at == NULL || at[1] == '\0') {
				delivery_set(&rcpts[i], DELIVERY_BOUNCE, "5.1.3",
				    "no domain in the address");
				done[i] = true;
				continue;
			}
			for (size_t j = i; j < n; j++) {
				const char *at2 = strrchr(rcpts[j].address, '@');

				if (done[j] || at2 == NULL || strcasecmp(at2, at) != 0)
					continue;
				group[ng] = rcpts[j];
				map[ng++] = j;
				done[j] = true;
			}
			deliver_domain(c, at + 1, msg, group, ng);
			for (size_t g = 0; g < ng; g++)
				rcpts[map[g]] = group[g];
		}
		free(done);
		free(group);
		free(map);
	}
}

const struct delivery_method delivery_smtp = {
	.name = "smtp",
	.batch = true,
	.init = smtp_init,
	.relay = smtp_relay,
	.deliver = smtp_deliver,
	.free = smtp_free,
};
