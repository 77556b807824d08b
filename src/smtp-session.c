/*
 * smtp-session.c - one SMTP session (RFC 5321, 6409, 2920, 3207): its life
 * cycle on a bufferevent (plain, STARTTLS-upgraded or implicit TLS), line
 * reading with bounds, the command table with all the gates in one place,
 * and the simple commands.  AUTH lives in smtp-cmd-auth.c, DATA in
 * smtp-cmd-data.c, policy decisions in smtp-policy.c.
 *
 * Pipelining: input lines are processed one by one from the input buffer;
 * a command that needs an async answer (AUTH, DATA's queue file, COMMIT)
 * sets SF_WAIT, which stops processing until smtp_session_resume().
 * Replies accumulate in the output buffer and leave together.
 *
 * Freeing is always deferred to a fresh loop iteration (or to the write
 * callback once the output is flushed), so a handler may close the session
 * and return normally.
 */
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>

#include "authc.h"
#include "log.h"
#include "smtp-clients.h"
#include "smtp-parse.h"
#include "smtp-policy.h"
#include "smtp-session.h"
#include "tls.h"

/* Stop reading from a client with this much unprocessed input. */
#define INPUT_HIGH_WATER (64 * 1024)
/* Stop processing commands while this many reply octets are unsent. */
#define OUTPUT_HIGH_WATER (64 * 1024)
#define CLOSE_TIMEOUT 10     /* seconds to flush the last replies */

/* Limits from cfg->smtp, with the defaults used when they are unset (0). */
#define DEF_MAX_LINE       512     /* RFC 5321 4.5.3.1.4, incl. CRLF */
#define DEF_MAX_AUTH_LINE  12288   /* AUTH initial response / continuation */
#define DEF_MAX_RECIPIENTS 100
#define DEF_MAX_ERRORS     10
#define DEF_IDLE_TIMEOUT   300     /* RFC 5321 4.5.3.2.7: at least 5 minutes */

static int
limit(int v, int def)
{
	return v > 0 ? v : def;
}

static void read_cb(struct bufferevent *bev, void *arg);
static void write_cb(struct bufferevent *bev, void *arg);
static void event_cb(struct bufferevent *bev, short what, void *arg);
static void process_input(struct smtp_session *s);

const char *
smtp_listener_name(const struct smtp_session *s)
{
	return s->lc->role == LISTEN_RELAY ? "relay" : "submission";
}

/* Wire the session's callbacks, bounds and timeout on a new bufferevent. */
static void
setup_bev(struct smtp_session *s)
{
	bufferevent_setcb(s->bev, read_cb, write_cb, event_cb, s);
	bufferevent_setwatermark(s->bev, EV_READ, 0,
	    (size_t)limit(s->srv->cfg->smtp.max_auth_line, DEF_MAX_AUTH_LINE) * 2 >
	    INPUT_HIGH_WATER ?
	    (size_t)limit(s->srv->cfg->smtp.max_auth_line, DEF_MAX_AUTH_LINE) * 2 :
	    INPUT_HIGH_WATER);
	smtp_session_set_timeout(s, limit(s->srv->cfg->smtp.idle_timeout,
	                                  DEF_IDLE_TIMEOUT));
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
}

void
smtp_session_set_timeout(struct smtp_session *s, int seconds)
{
	struct timeval tv = { seconds, 0 };

	bufferevent_set_timeouts(s->bev, &tv, &tv);
}

/* Numeric address and port of sa into buf; v4-mapped shown as IPv4. */
static void
addr_string(const struct sockaddr *sa, socklen_t len, char *buf, size_t blen,
            unsigned *port)
{
	char serv[16];

	if (getnameinfo(sa, len, buf, (socklen_t)blen, serv, sizeof(serv),
	                NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
		snprintf(buf, blen, "unknown");
		*port = 0;
		return;
	}
	if (strncasecmp(buf, "::ffff:", 7) == 0 && strchr(buf, '.'))
		memmove(buf, buf + 7, strlen(buf + 7) + 1);
	*port = (unsigned)atoi(serv);
}

struct smtp_session *
smtp_session_new(struct smtp_server *srv, const struct listen_cfg *lc, int fd,
                 const struct sockaddr *sa, int salen)
{
	struct smtp_session *s = xcalloc(1, sizeof(*s));
	struct sockaddr_storage local;
	socklen_t llen = sizeof(local);
	unsigned char rnd[8];

	s->srv = srv;
	s->lc = lc;
	s->fd = fd;
	if ((size_t)salen > sizeof(s->peer))
		salen = sizeof(s->peer);
	memcpy(&s->peer, sa, (size_t)salen);
	addr_string(sa, (socklen_t)salen, s->rip, sizeof(s->rip), &s->rport);
	if (getsockname(fd, (struct sockaddr *)&local, &llen) == 0)
		addr_string((struct sockaddr *)&local, llen, s->lip,
		            sizeof(s->lip), &s->lport);
	random_bytes(rnd, sizeof(rnd));
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(s->id + 2 * i, 3, "%02X", rnd[i]);

	if (lc->tls == LISTEN_TLS_IMPLICIT) {
		SSL *ssl = SSL_new(srv->ssl_ctx);

		if (ssl == NULL) {
			tls_log_errors("SSL_new");
			free(s);
			return NULL;
		}
		s->bev = bufferevent_openssl_socket_new(srv->base, fd, ssl,
		    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
		if (s->bev == NULL) {
			SSL_free(ssl);
			free(s);
			return NULL;
		}
		bufferevent_openssl_set_allow_dirty_shutdown(s->bev, 1);
		s->flags |= SF_TLS;
	} else {
		/* The fd is closed by us: STARTTLS replaces this bufferevent. */
		s->bev = bufferevent_socket_new(srv->base, fd, 0);
		if (s->bev == NULL) {
			free(s);
			return NULL;
		}
	}
	TAILQ_INSERT_TAIL(&srv->sessions, s, entry);
	srv->n_sessions++;
	smtp_clients_add(srv->clients, (struct sockaddr *)&s->peer, 1);
	setup_bev(s);
	log_info("%s: connect from [%s]:%u to %s port %u%s", s->id, s->rip,
	         s->rport, smtp_listener_name(s), lc->port,
	         lc->tls == LISTEN_TLS_IMPLICIT ? " (implicit TLS)" : "");
	/* With implicit TLS this leaves after the handshake. */
	smtp_session_reply(s, "220 %s ESMTP msagate", srv->cfg->hostname);
	return s;
}

void
smtp_tx_free(struct smtp_session *s)
{
	struct smtp_tx *tx = s->tx;

	if (tx == NULL)
		return;
	for (size_t i = 0; i < tx->n_rcpts; i++)
		free(tx->rcpts[i]);
	free(tx->rcpts);
	free(tx->sender);
	free(tx->from_err);
	free(tx->wbuf);
	sbuf_free(&tx->hdr);
	free(tx);
	s->tx = NULL;
}

void
smtp_session_free(struct smtp_session *s)
{
	struct smtp_server *srv = s->srv;
	char user[128];

	smtp_auth_cancel(s);
	smtp_rcpt_cancel(s);
	smtp_data_cancel(s);
	smtp_tx_free(s);
	log_info("%s: disconnect from [%s]:%u tls=%s user=%s errors=%d", s->id,
	         s->rip, s->rport, s->tls_info ? s->tls_info : "-",
	         s->auth_user ? log_token(user, sizeof(user), s->auth_user, 100) : "-",
	         s->n_errors);
	if (s->bev) {
		bufferevent_setcb(s->bev, NULL, NULL, NULL, NULL);
		if (s->flags & SF_TLS) {
			SSL *ssl = bufferevent_openssl_get_ssl(s->bev);

			/* Best effort close_notify; never blocks. */
			if (ssl && SSL_is_init_finished(ssl))
				(void)SSL_shutdown(ssl);
			ERR_clear_error();
		}
		bufferevent_free(s->bev);
	}
	if (!(s->flags & SF_TLS))
		close(s->fd);
	TAILQ_REMOVE(&srv->sessions, s, entry);
	srv->n_sessions--;
	smtp_clients_add(srv->clients, (struct sockaddr *)&s->peer, -1);
	if (s->eof_timer != NULL)
		event_free(s->eof_timer);
	free(s->helo);
	free(s->auth_user);
	free(s->tls_info);
	free(s->auth_login);
	free(s);
	if ((srv->stopping || srv->retiring) && srv->n_sessions == 0)
		event_base_loopexit(srv->base, NULL);
}

static void
deferred_free_cb(evutil_socket_t fd, short what, void *arg)
{
	smtp_session_free(arg);
}

/* Free the session on the next loop iteration (once). */
static void
schedule_free(struct smtp_session *s)
{
	static const struct timeval zero = { 0, 0 };

	if (s->freeing)
		return;
	s->freeing = true;
	s->flags |= SF_CLOSING;
	if (s->bev)
		bufferevent_disable(s->bev, EV_READ | EV_WRITE);
	if (event_base_once(s->srv->base, -1, EV_TIMEOUT, deferred_free_cb, s,
	                    &zero) != 0)
		fatalx("event_base_once failed");
}

/* The client closed its side and the answer it waits for never came. */
static void
eof_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_session *s = arg;

	(void)fd;
	(void)what;
	log_info("%s: timeout after %s from [%s] (the client had closed its side)",
	         s->id, s->state == ST_DATA ? "DATA" : s->verb ? s->verb : "CONNECT",
	         s->rip);
	schedule_free(s);
}

/*
 * A session whose client has closed its side waits for another role (no
 * reading, so no read timeout): give up after the idle timeout.  Re-armed
 * by each new wait.
 */
static void
arm_eof_timer(struct smtp_session *s)
{
	struct timeval tv = { limit(s->srv->cfg->smtp.idle_timeout, DEF_IDLE_TIMEOUT), 0 };

	if (s->eof_timer == NULL)
		s->eof_timer = evtimer_new(s->srv->base, eof_timeout_cb, s);
	if (s->eof_timer == NULL || evtimer_add(s->eof_timer, &tv) != 0)
		schedule_free(s);
}

void
smtp_session_close(struct smtp_session *s)
{
	if (s->flags & SF_CLOSING)
		return;
	s->flags |= SF_CLOSING;
	bufferevent_disable(s->bev, EV_READ);
	if (evbuffer_get_length(bufferevent_get_output(s->bev)) == 0) {
		schedule_free(s);
		return;
	}
	smtp_session_set_timeout(s, CLOSE_TIMEOUT);
	bufferevent_enable(s->bev, EV_WRITE);
}

/* Write one reply line as is. */
static void
put_line(struct smtp_session *s, const char *line)
{
	struct evbuffer *out = bufferevent_get_output(s->bev);

	evbuffer_add(out, line, strlen(line));
	evbuffer_add(out, "\r\n", 2);
}

/*
 * Send one reply line.  Junk (500: unrecognized or garbled commands, lines
 * too long) and failed authentications (535) count toward max_errors; past
 * it the reply is replaced by 421 4.7.0 and the session closed.  Replies to commands given in the
 * wrong state (503, 530) or with bad arguments (501) do not count: they are
 * a client's mistakes, not an attack.  Error replies are logged (not 535:
 * the auth code logs those in the fail2ban form).
 */
void
smtp_session_reply(struct smtp_session *s, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int code;

	if (s->flags & SF_CLOSING)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	code = atoi(buf);
	if ((code == 500 || code == 535) && buf[3] == ' ' &&
	    ++s->n_errors > limit(s->srv->cfg->smtp.max_errors, DEF_MAX_ERRORS)) {
		/* this error is one too many: 421 instead, and close */
		log_info("%s: too many errors from [%s] after %s, disconnecting",
		         s->id, s->rip, s->verb ? s->verb : "junk");
		snprintf(buf, sizeof(buf), "421 4.7.0 %s Error: too many errors",
		         s->srv->cfg->hostname);
		put_line(s, buf);
		smtp_session_close(s);
		return;
	}
	put_line(s, buf);
	if (code >= 400 && code != 421 && code != 535 && buf[3] == ' ' &&
	    !(s->flags & SF_LOGGED))
		log_info("%s: reject: %s from [%s]: %s", s->id,
		         s->verb ? s->verb : "-", s->rip, buf);
	s->flags &= ~SF_LOGGED;
}

void
smtp_session_resume(struct smtp_session *s)
{
	s->flags &= ~SF_WAIT;
	if (!(s->flags & SF_CLOSING))
		process_input(s);
}

/* SIGTERM: idle sessions are told and closed; DATA ones finish first. */
void
smtp_session_shutdown_idle(struct smtp_session *s)
{
	if (s->flags & (SF_BUSY | SF_CLOSING))
		return;
	smtp_session_reply(s, "421 4.3.2 %s Service shutting down, closing "
	                   "transmission channel", s->srv->cfg->hostname);
	smtp_session_close(s);
}

/* ------------------------------------------------------------------ */
/* the command table and its gates                                      */

enum {
	CF_PRETLS   = 0x001, /* allowed before STARTTLS where TLS is required */
	CF_PREAUTH  = 0x002, /* allowed before AUTH where AUTH is required */
	CF_HELO     = 0x004, /* needs HELO/EHLO first */
	CF_NOTX     = 0x008, /* refused inside a mail transaction */
	CF_MAIL     = 0x010, /* needs MAIL first */
	CF_RCPT     = 0x020, /* needs an accepted RCPT first */
	CF_NOAUTHED = 0x040, /* refused once authenticated (AUTH) */
	CF_AUTHCMD  = 0x080, /* only where AUTH is offered */
	CF_TLSCMD   = 0x100, /* only where STARTTLS is offered */
};

struct smtp_cmd {
	const char *name;
	unsigned flags;
	void (*fn)(struct smtp_session *s, const char *args);
};

static void cmd_ehlo(struct smtp_session *s, const char *args);
static void cmd_helo(struct smtp_session *s, const char *args);
static void cmd_starttls(struct smtp_session *s, const char *args);
static void cmd_rset(struct smtp_session *s, const char *args);
static void cmd_noop(struct smtp_session *s, const char *args);
static void cmd_quit(struct smtp_session *s, const char *args);
static void cmd_help(struct smtp_session *s, const char *args);
static void cmd_vrfy(struct smtp_session *s, const char *args);

static const struct smtp_cmd commands[] = {
	{ "EHLO",     CF_PRETLS | CF_PREAUTH, cmd_ehlo },
	{ "HELO",     CF_PRETLS | CF_PREAUTH, cmd_helo },
	{ "STARTTLS", CF_PRETLS | CF_PREAUTH | CF_TLSCMD | CF_NOTX, cmd_starttls },
	{ "AUTH",     CF_PREAUTH | CF_HELO | CF_NOAUTHED | CF_AUTHCMD | CF_NOTX,
	              smtp_cmd_auth },
	{ "MAIL",     CF_HELO | CF_NOTX, smtp_cmd_mail },
	{ "RCPT",     CF_HELO | CF_MAIL, smtp_cmd_rcpt },
	{ "DATA",     CF_HELO | CF_MAIL | CF_RCPT, smtp_cmd_data },
	{ "RSET",     CF_PRETLS | CF_PREAUTH, cmd_rset },
	{ "NOOP",     CF_PRETLS | CF_PREAUTH, cmd_noop },
	{ "QUIT",     CF_PRETLS | CF_PREAUTH, cmd_quit },
	{ "HELP",     CF_PRETLS | CF_PREAUTH, cmd_help },
	{ "VRFY",     CF_PRETLS | CF_PREAUTH, cmd_vrfy },
};

/* TLS still missing on a listener that requires it (RFC 3207 4). */
static bool
tls_required(const struct smtp_session *s)
{
	return s->lc->role == LISTEN_SUBMISSION &&
	    s->lc->tls == LISTEN_TLS_STARTTLS && !(s->flags & SF_TLS);
}

/* AUTH missing on a listener that requires it (RFC 6409 4.3). */
static bool
auth_required(const struct smtp_session *s)
{
	return s->lc->role == LISTEN_SUBMISSION && !(s->flags & SF_AUTH);
}

/* AUTH is offered only on submission listeners, only under TLS. */
static bool
auth_offered(const struct smtp_session *s)
{
	return s->lc->role == LISTEN_SUBMISSION && (s->flags & SF_TLS) &&
	    !(s->flags & SF_AUTH);
}

static bool
starttls_offered(const struct smtp_session *s)
{
	return s->lc->tls == LISTEN_TLS_STARTTLS && !(s->flags & SF_TLS) &&
	    s->srv->ssl_ctx != NULL;
}

/*
 * All the gates, in one place: returns the reply refusing cmd in the
 * session's current state, or NULL when the handler may run.
 */
static const char *
gate(const struct smtp_session *s, const struct smtp_cmd *cmd)
{
	if (cmd->flags & CF_TLSCMD) {
		if (s->flags & SF_TLS)
			return "503 5.5.1 Error: TLS already active";
		if (!starttls_offered(s))
			return "502 5.5.1 Error: command not implemented";
	}
	if (!(cmd->flags & CF_PRETLS) && tls_required(s))
		return "530 5.7.0 Must issue a STARTTLS command first";
	if ((cmd->flags & CF_HELO) && !(s->flags & SF_HELO))
		return "503 5.5.1 Error: send HELO/EHLO first";
	if (!(cmd->flags & CF_PREAUTH) && auth_required(s))
		return "530 5.7.0 Authentication required";
	if ((cmd->flags & CF_NOAUTHED) && (s->flags & SF_AUTH))
		return "503 5.5.1 Already authenticated";
	if ((cmd->flags & CF_AUTHCMD) && !auth_offered(s))
		return "503 5.5.1 Error: authentication not enabled";
	if ((cmd->flags & CF_NOTX) && s->tx)
		return cmd->fn == smtp_cmd_mail ? "503 5.5.1 Error: nested MAIL command" :
		    "503 5.5.1 Error: MAIL transaction in progress";
	if ((cmd->flags & CF_MAIL) && !s->tx)
		return "503 5.5.1 Error: need MAIL command";
	if ((cmd->flags & CF_RCPT) && s->tx->n_rcpts == 0)
		return "503 5.5.1 Error: need RCPT command";
	return NULL;
}

/* One complete command line (no CRLF, NUL-free). */
static void
handle_line(struct smtp_session *s, char *line, size_t len)
{
	char verb[16], safe[64];
	const char *args;
	const char *err;
	size_t i;

	if (s->state == ST_AUTH) {
		smtp_auth_line(s, line);
		return;
	}
	while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t'))
		line[--len] = '\0';
	if (smtp_is_http(line)) {
		log_info("%s: HTTP request from [%s]: %s, disconnecting", s->id,
		         s->rip, log_safe(safe, sizeof(safe), line, 40));
		s->flags |= SF_CLOSING;
		schedule_free(s);
		return;
	}
	if (!smtp_split_verb(line, verb, sizeof(verb), &args)) {
		s->verb = NULL;
		smtp_session_reply(s, "500 5.5.2 Error: bad syntax");
		return;
	}
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(verb, commands[i].name) == 0)
			break;
	if (i == sizeof(commands) / sizeof(commands[0])) {
		s->verb = "unknown";
		smtp_session_reply(s, "500 5.5.1 Error: command not recognized");
		return;
	}
	s->verb = commands[i].name;
	if ((err = gate(s, &commands[i])) != NULL) {
		smtp_session_reply(s, "%s", err);
		return;
	}
	commands[i].fn(s, args);
}

/* Longest line (incl. CRLF) allowed for what starts the input now. */
static size_t
line_limit(struct smtp_session *s, struct evbuffer *in)
{
	const struct msagate_config *cfg = s->srv->cfg;
	char head[5];

	if (s->state == ST_AUTH ||
	    (evbuffer_copyout(in, head, 5) == 5 && strncasecmp(head, "AUTH ", 5) == 0))
		return (size_t)limit(cfg->smtp.max_auth_line, DEF_MAX_AUTH_LINE);
	return (size_t)limit(cfg->smtp.max_line, DEF_MAX_LINE);
}

static void
line_too_long(struct smtp_session *s)
{
	s->verb = NULL;
	if (s->state == ST_AUTH)
		smtp_auth_cancel(s);   /* also back to ST_CMD */
	smtp_session_reply(s, "500 5.5.2 Error: line too long");
}

/*
 * The client closed its side and every command it sent is answered (what
 * is left is an unfinished line or message): close once the replies are
 * out.  An unfinished transaction is dropped, as on a lost connection.
 */
static void
input_ended(struct smtp_session *s)
{
	if (s->state == ST_DATA || s->tx)
		log_info("%s: lost connection after %s from [%s]", s->id,
		         s->state == ST_DATA ? "DATA" : s->verb ? s->verb : "CONNECT",
		         s->rip);
	smtp_session_close(s);
}

/*
 * Run buffered input through the state machine until it must wait; once
 * the client has closed its side (SF_EOF) and nothing more can be done with
 * what it sent, close.
 */
static void
process_input(struct smtp_session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);

	while (!(s->flags & (SF_WAIT | SF_CLOSING | SF_STARTTLS))) {
		struct evbuffer_ptr eol;
		size_t eol_len = 0, avail, len, lim;
		char *line;

		/* A client pipelining without reading our replies: wait until
		 * they have left (write_cb) instead of buffering without end. */
		if (evbuffer_get_length(bufferevent_get_output(s->bev)) >
		    OUTPUT_HIGH_WATER) {
			s->flags |= SF_OUTFULL;
			break;
		}

		if (s->state == ST_DATA) {
			if (evbuffer_get_length(in) == 0)
				break;
			smtp_data_input(s);
			if (s->state == ST_DATA)
				break;          /* consumed everything */
			continue;
		}
		avail = evbuffer_get_length(in);
		if (avail == 0)
			break;
		eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);
		if (eol.pos < 0) {
			/* no complete line yet */
			if (s->flags & SF_DISCARD)
				evbuffer_drain(in, avail);
			else if (avail >= line_limit(s, in)) {
				evbuffer_drain(in, avail);
				s->flags |= SF_DISCARD;
				line_too_long(s);
			}
			break;
		}
		len = (size_t)eol.pos;
		if (s->flags & SF_DISCARD) {
			/* the end of an over-long line already answered */
			evbuffer_drain(in, len + eol_len);
			s->flags &= ~SF_DISCARD;
			continue;
		}
		lim = line_limit(s, in);
		if (len + 2 > lim) {
			evbuffer_drain(in, len + eol_len);
			line_too_long(s);
			continue;
		}
		line = xmalloc(len + 1);
		evbuffer_remove(in, line, len);
		evbuffer_drain(in, eol_len);
		line[len] = '\0';
		if (memchr(line, '\0', len) != NULL) {
			s->verb = NULL;
			if (s->state == ST_AUTH)
				smtp_auth_cancel(s);
			smtp_session_reply(s, "500 5.5.2 Error: NUL in command line");
		} else
			handle_line(s, line, len);
		/* AUTH lines carry credentials */
		secure_zero(line, len);
		free(line);
	}
	if ((s->flags & SF_EOF) && !(s->flags & (SF_WAIT | SF_CLOSING | SF_OUTFULL)))
		input_ended(s);
	else if ((s->flags & (SF_EOF | SF_WAIT | SF_CLOSING)) == (SF_EOF | SF_WAIT))
		arm_eof_timer(s);
}

/* ------------------------------------------------------------------ */
/* libevent callbacks                                                   */

static void
read_cb(struct bufferevent *bev, void *arg)
{
	struct smtp_session *s = arg;

	if (s->flags & SF_CLOSING) {
		evbuffer_drain(bufferevent_get_input(bev),
		               evbuffer_get_length(bufferevent_get_input(bev)));
		return;
	}
	if (!(s->flags & SF_WAIT))
		process_input(s);
}

/* The plain 220 has left: put TLS on the socket (RFC 3207 4.2). */
static void
start_tls(struct smtp_session *s)
{
	SSL *ssl;

	/* Whatever was pipelined after STARTTLS is thrown away (CVE-2011-0411). */
	evbuffer_drain(bufferevent_get_input(s->bev),
	               evbuffer_get_length(bufferevent_get_input(s->bev)));
	bufferevent_setcb(s->bev, NULL, NULL, NULL, NULL);
	bufferevent_free(s->bev);
	s->bev = NULL;
	if ((ssl = SSL_new(s->srv->ssl_ctx)) == NULL ||
	    (s->bev = bufferevent_openssl_socket_new(s->srv->base, s->fd, ssl,
	        BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE)) == NULL) {
		tls_log_errors("STARTTLS");
		if (ssl)
			SSL_free(ssl);
		s->bev = NULL;          /* the fd is closed by the free */
		schedule_free(s);
		return;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(s->bev, 1);
	/* RFC 3207 4.2: forget everything learnt before TLS. */
	s->flags &= ~(SF_STARTTLS | SF_HELO | SF_EHLO | SF_DISCARD);
	s->flags |= SF_TLS;
	free(s->helo);
	s->helo = NULL;
	smtp_tx_free(s);
	s->state = ST_CMD;
	setup_bev(s);
}

static void
write_cb(struct bufferevent *bev, void *arg)
{
	struct smtp_session *s = arg;

	if (evbuffer_get_length(bufferevent_get_output(bev)) != 0)
		return;
	if (s->flags & SF_CLOSING)
		schedule_free(s);
	else if (s->flags & SF_STARTTLS)
		start_tls(s);
	else if (s->flags & SF_OUTFULL) {
		s->flags &= ~SF_OUTFULL;
		if (!(s->flags & SF_WAIT))
			process_input(s);
	}
}

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct smtp_session *s = arg;
	char info[128];

	if (what & BEV_EVENT_CONNECTED) {
		/* TLS handshake finished (implicit or after STARTTLS) */
		SSL *ssl = bufferevent_openssl_get_ssl(bev);

		if (ssl) {
			tls_describe(ssl, info, sizeof(info));
			free(s->tls_info);
			s->tls_info = xstrdup(info);
			log_info("%s: TLS established with [%s]: %s", s->id,
			         s->rip, info);
		}
		return;
	}
	if (s->flags & SF_CLOSING) {
		schedule_free(s);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		if (what & BEV_EVENT_WRITING) {
			log_info("%s: write timeout to [%s]", s->id, s->rip);
			schedule_free(s);
			return;
		}
		log_info("%s: timeout after %s from [%s]", s->id,
		         s->state == ST_DATA ? "DATA" : s->verb ? s->verb : "CONNECT",
		         s->rip);
		smtp_session_reply(s, "421 4.4.2 %s Error: timeout exceeded",
		                   s->srv->cfg->hostname);
		smtp_session_close(s);
		return;
	}
	if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR)) {
		/*
		 * The client closed its side (a pipeline ending in QUIT and a
		 * half-close, a shell pipe): it may still read.  Answer every
		 * command it sent - a DATA being committed too: a message
		 * queued without its 250 would be sent again, a duplicate -
		 * then close (process_input).  Reading stays off for good
		 * (bufferevent_openssl would report the EOF again), and with
		 * reading goes the read timeout: a wait for another role is
		 * bounded by eof_timer instead.
		 */
		if (s->flags & SF_EOF)
			return;
		s->flags |= SF_EOF;
		bufferevent_disable(bev, EV_READ);
		if (s->flags & SF_WAIT)
			arm_eof_timer(s);
		else
			process_input(s);
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		unsigned long e = (s->flags & SF_TLS) ?
		    bufferevent_get_openssl_error(bev) : 0;

		if (e != 0) {
			ERR_error_string_n(e, info, sizeof(info));
			log_info("%s: TLS error with [%s]: %s", s->id, s->rip, info);
		} else
			log_info("%s: lost connection after %s from [%s]: %s", s->id,
			         s->verb ? s->verb : "CONNECT", s->rip,
			         strerror(EVUTIL_SOCKET_ERROR()));
		ERR_clear_error();
	} else if (s->state == ST_DATA || s->tx || (s->flags & SF_WAIT))
		log_info("%s: lost connection after %s from [%s]", s->id,
		         s->state == ST_DATA ? "DATA" : s->verb ? s->verb : "CONNECT",
		         s->rip);
	schedule_free(s);
}

/* ------------------------------------------------------------------ */
/* the simple commands                                                  */

const char *
smtp_auth_mechs(struct smtp_session *s, char *buf, size_t len)
{
	const struct msagate_config *cfg = s->srv->cfg;
	bool ready = s->srv->authc && authc_ready(s->srv->authc);
	size_t i, o = 0;

	buf[0] = '\0';
	for (i = 0; i < cfg->auth.n_mechanisms; i++) {
		const char *m = cfg->auth.mechanisms[i];
		int n;

		if (ready && !authc_has_mech(s->srv->authc, m))
			continue;
		n = snprintf(buf + o, len - o, "%s%s", o ? " " : "", m);
		if (n < 0 || (size_t)n >= len - o) {
			buf[o] = '\0';
			break;
		}
		o += (size_t)n;
	}
	return buf;
}

static void
set_helo(struct smtp_session *s, const char *args, bool ehlo)
{
	free(s->helo);
	s->helo = xstrdup(args);
	smtp_tx_free(s);        /* EHLO/HELO imply RSET (4.1.4) */
	s->flags |= SF_HELO;
	if (ehlo)
		s->flags |= SF_EHLO;
	else
		s->flags &= ~SF_EHLO;
}

static void
cmd_ehlo(struct smtp_session *s, const char *args)
{
	const struct msagate_config *cfg = s->srv->cfg;
	const char *ext[10];
	char size[48], auth[256], mechs[200];
	const char *err;
	size_t n = 0, i;

	if ((err = smtp_parse_helo(args)) != NULL) {
		smtp_session_reply(s, "%s", err);
		return;
	}
	set_helo(s, args, true);
	ext[n++] = "PIPELINING";
	if (cfg->relay.message_size_limit > 0)
		snprintf(size, sizeof(size), "SIZE %lld", cfg->relay.message_size_limit);
	else
		snprintf(size, sizeof(size), "SIZE");
	ext[n++] = size;
	ext[n++] = "8BITMIME";
	ext[n++] = "ENHANCEDSTATUSCODES";
	ext[n++] = "SMTPUTF8";
	if (starttls_offered(s))
		ext[n++] = "STARTTLS";
	if (auth_offered(s) && *smtp_auth_mechs(s, mechs, sizeof(mechs))) {
		snprintf(auth, sizeof(auth), "AUTH %s", mechs);
		ext[n++] = auth;
	}
	smtp_session_reply(s, "250-%s", cfg->hostname);
	for (i = 0; i < n; i++)
		smtp_session_reply(s, "250%c%s", i + 1 == n ? ' ' : '-', ext[i]);
}

static void
cmd_helo(struct smtp_session *s, const char *args)
{
	const char *err;

	if ((err = smtp_parse_helo(args)) != NULL) {
		smtp_session_reply(s, "%s", err);
		return;
	}
	set_helo(s, args, false);
	smtp_session_reply(s, "250 %s", s->srv->cfg->hostname);
}

static void
cmd_starttls(struct smtp_session *s, const char *args)
{
	if (*args != '\0') {
		smtp_session_reply(s, "501 5.5.4 Syntax: STARTTLS");
		return;
	}
	smtp_session_reply(s, "220 2.0.0 Ready to start TLS");
	/* Stop reading; drop what was pipelined; switch once 220 has left. */
	s->flags |= SF_STARTTLS;
	bufferevent_disable(s->bev, EV_READ);
	evbuffer_drain(bufferevent_get_input(s->bev),
	               evbuffer_get_length(bufferevent_get_input(s->bev)));
}

static void
cmd_rset(struct smtp_session *s, const char *args)
{
	if (*args != '\0') {
		smtp_session_reply(s, "501 5.5.4 Syntax: RSET");
		return;
	}
	smtp_tx_free(s);
	smtp_session_reply(s, "250 2.0.0 Ok");
}

static void
cmd_noop(struct smtp_session *s, const char *args)
{
	smtp_session_reply(s, "250 2.0.0 Ok");
}

static void
cmd_quit(struct smtp_session *s, const char *args)
{
	smtp_session_reply(s, "221 2.0.0 Bye");
	smtp_session_close(s);
}

static void
cmd_help(struct smtp_session *s, const char *args)
{
	smtp_session_reply(s, "214 2.0.0 Commands: EHLO HELO STARTTLS AUTH MAIL "
	                   "RCPT DATA RSET NOOP QUIT HELP VRFY (RFC 5321, 6409)");
}

static void
cmd_vrfy(struct smtp_session *s, const char *args)
{
	smtp_session_reply(s, "252 2.5.2 Cannot VRFY user; try RCPT");
}
