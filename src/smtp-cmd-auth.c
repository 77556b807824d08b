/*
 * smtp-cmd-auth.c - SMTP AUTH (RFC 4954) for the SMTP role, as a client
 * of the Dovecot auth protocol (authc.h).  The session waits (SF_WAIT)
 * while a request is in flight, so pipelined input is not processed.
 *
 * Never logged: initial responses, continuation lines, passwords.  Logged:
 * the outcome, with the user name (from the server, or the authcid decoded
 * from PLAIN/LOGIN) in the fail2ban-friendly form
 *   auth failed: rip=IP user=NAME mech=MECH
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "authc.h"
#include "log.h"
#include "smtp-clients.h"
#include "smtp-session.h"

#define USER_MAX 255

static void auth_cb(void *ctx, enum authc_result res, const char *data,
                    const char *extra);

/* Forget an AUTH exchange in progress (session reset or gone). */
void
smtp_auth_cancel(struct smtp_session *s)
{
	if (s->auth_id != 0 && s->srv->authc)
		authc_abort(s->srv->authc, s->auth_id);
	s->auth_id = 0;
	if (s->state == ST_AUTH)
		s->state = ST_CMD;
	s->auth_login_next = false;
}

/* Remember the user name a client claims (for the failure log only). */
static void
set_login(struct smtp_session *s, const char *name, size_t len)
{
	free(s->auth_login);
	s->auth_login = xstrndup(name, len > USER_MAX ? USER_MAX : len);
}

/*
 * Decode b64 and keep the authentication identity: PLAIN's
 * "authzid NUL authcid NUL password" second field, or LOGIN's user name.
 * The decoded buffer is wiped.
 */
static void
note_login(struct smtp_session *s, const char *b64, bool plain)
{
	size_t len = strlen(b64);
	unsigned char *buf;
	ssize_t n;

	if (len == 0 || strcmp(b64, "=") == 0 || len > 4 * 4096)
		return;
	buf = xmalloc(b64_decoded_max(len) + 1);
	if ((n = b64_decode(b64, len, buf)) > 0) {
		if (plain) {
			unsigned char *p = memchr(buf, '\0', (size_t)n), *q;

			if (p && (q = memchr(p + 1, '\0', (size_t)(n - (p + 1 - buf)))))
				set_login(s, (char *)p + 1, (size_t)(q - p - 1));
		} else
			set_login(s, (char *)buf, strnlen((char *)buf, (size_t)n));
	}
	secure_zero(buf, b64_decoded_max(len) + 1);
	free(buf);
}

/* Is mech among those offered now?  Copies its canonical upper case. */
static bool
mech_offered(struct smtp_session *s, const char *mech)
{
	char mechs[200], *p, *save = NULL;

	smtp_auth_mechs(s, mechs, sizeof(mechs));
	for (p = strtok_r(mechs, " ", &save); p; p = strtok_r(NULL, " ", &save))
		if (strcasecmp(p, mech) == 0)
			return true;
	return false;
}

void
smtp_cmd_auth(struct smtp_session *s, const char *args)
{
	struct authc_info info;
	const char *sp, *ir = NULL;
	size_t mlen, i;

	sp = strchr(args, ' ');
	mlen = sp ? (size_t)(sp - args) : strlen(args);
	if (mlen == 0 || mlen >= sizeof(s->auth_mech)) {
		smtp_session_reply(s, "501 5.5.4 Syntax: AUTH mechanism [initial-response]");
		return;
	}
	for (i = 0; i < mlen; i++) {
		unsigned char c = (unsigned char)args[i];

		if (!isalnum(c) && c != '-' && c != '_') {
			smtp_session_reply(s, "501 5.5.4 Syntax: AUTH mechanism "
			                   "[initial-response]");
			return;
		}
		s->auth_mech[i] = (char)toupper(c);
	}
	s->auth_mech[mlen] = '\0';
	if (sp) {
		ir = sp + 1;
		if (*ir == '\0' || strchr(ir, ' ')) {
			smtp_session_reply(s, "501 5.5.4 Syntax: AUTH mechanism "
			                   "[initial-response]");
			return;
		}
	}
	if (!mech_offered(s, s->auth_mech)) {
		smtp_session_reply(s, "504 5.5.4 Unrecognized authentication type");
		return;
	}
	if (ir && strcmp(ir, "=") != 0 && !b64_valid(ir, strlen(ir))) {
		smtp_session_reply(s, "501 5.5.2 Invalid base64 data");
		return;
	}
	free(s->auth_login);
	s->auth_login = NULL;
	s->auth_login_next = false;
	if (strcmp(s->auth_mech, "PLAIN") == 0 && ir)
		note_login(s, ir, true);
	else if (strcmp(s->auth_mech, "LOGIN") == 0) {
		if (ir)
			note_login(s, ir, false);
		else
			s->auth_login_next = true;
	}

	memset(&info, 0, sizeof(info));
	info.service = "smtp";
	info.local_ip = s->lip[0] ? s->lip : NULL;
	info.remote_ip = s->rip;
	info.local_port = s->lport;
	info.remote_port = s->rport;
	info.secured = (s->flags & SF_TLS) != 0;
	info.session = s->id;
	s->flags |= SF_WAIT;
	s->auth_id = authc_begin(s->srv->authc, s->auth_mech, ir, &info,
	                         auth_cb, s);
}

/* A client line answering our 334 challenge. */
void
smtp_auth_line(struct smtp_session *s, const char *line)
{
	size_t len = strlen(line);

	s->verb = "AUTH";
	if (strcmp(line, "*") == 0) {
		smtp_auth_cancel(s);
		smtp_session_reply(s, "501 5.7.0 Authentication aborted");
		return;
	}
	if (len > 0 && !b64_valid(line, len)) {
		smtp_auth_cancel(s);
		smtp_session_reply(s, "501 5.5.2 Invalid base64 data");
		return;
	}
	if (s->auth_login_next) {
		note_login(s, line, false);
		s->auth_login_next = false;
	}
	s->state = ST_CMD;
	s->flags |= SF_WAIT;
	authc_continue(s->srv->authc, s->auth_id, line);
}

/* The value of field key ("user=") in a reply's extra fields, if any. */
static const char *
extra_field(const char *extra, const char *key, char *buf, size_t len)
{
	const char *p = extra;
	size_t kl = strlen(key);

	while (p && *p) {
		if (strncmp(p, key, kl) == 0) {
			size_t n = strcspn(p + kl, "\t");

			if (n >= len)
				n = len - 1;
			memcpy(buf, p + kl, n);
			buf[n] = '\0';
			return n ? buf : NULL;
		}
		p = strchr(p, '\t');
		if (p)
			p++;
	}
	return NULL;
}

static void
auth_cb(void *ctx, enum authc_result res, const char *data, const char *extra)
{
	struct smtp_session *s = ctx;
	char ubuf[USER_MAX + 1], safe[128];
	const char *user;

	if (res != AUTHC_CONT)
		s->auth_id = 0;
	if (s->flags & SF_CLOSING) {
		smtp_auth_cancel(s);
		return;
	}
	s->verb = "AUTH";
	if ((res == AUTHC_FAIL || res == AUTHC_TEMPFAIL) &&
	    extra_field(extra, "blocked=", ubuf, sizeof(ubuf)) != NULL) {
		/* the auth service blocks this address for a while: new
		 * connections from it get 421 at once until then */
		unsigned long long secs;

		if (parse_uint(ubuf, SMTP_BLOCK_MAX_SECS, &secs) && secs > 0)
			smtp_clients_block(s->srv->clients,
			    (struct sockaddr *)&s->peer, time(NULL) + (time_t)secs);
		s->state = ST_CMD;
		log_info("%s: auth blocked: rip=%s for %s s, disconnecting",
		         s->id, s->rip, log_safe(safe, sizeof(safe), ubuf, 12));
		smtp_session_reply(s, "421 4.7.0 %s Error: too many failed "
		    "authentications from your address; try again later",
		    s->srv->cfg->hostname);
		smtp_session_close(s);
		res = AUTHC_FAIL;       /* for the clean-up below */
		goto out;
	}
	switch (res) {
	case AUTHC_CONT:
		s->state = ST_AUTH;
		smtp_session_reply(s, "334 %s", data ? data : "");
		break;
	case AUTHC_OK:
		user = data && *data ? data : s->auth_login ? s->auth_login : "";
		free(s->auth_user);
		s->auth_user = xstrndup(user, strnlen(user, USER_MAX));
		s->flags |= SF_AUTH;
		s->state = ST_CMD;
		log_info("%s: auth ok: rip=%s user=%s mech=%s", s->id, s->rip,
		         log_token(safe, sizeof(safe), s->auth_user, 100),
		         s->auth_mech);
		smtp_session_reply(s, "235 2.7.0 Authentication successful");
		break;
	case AUTHC_FAIL:
		s->state = ST_CMD;
		user = extra_field(extra, "user=", ubuf, sizeof(ubuf));
		if (user == NULL)
			user = s->auth_login;
		log_info("%s: auth failed: rip=%s user=%s mech=%s", s->id, s->rip,
		         user && *user ? log_token(safe, sizeof(safe), user, 100) : "-",
		         s->auth_mech);
		/* smtp.max_auth_failures per session (0: only max_errors) */
		if (s->srv->cfg->smtp.max_auth_failures > 0 &&
		    ++s->auth_failures >= s->srv->cfg->smtp.max_auth_failures) {
			log_info("%s: too many failed authentications from [%s], "
			         "disconnecting", s->id, s->rip);
			/* the answer to this AUTH first, as Postfix does: a
			 * client shows "wrong password", not a temporary error */
			smtp_session_reply(s, "535 5.7.8 Authentication credentials invalid");
			smtp_session_reply(s, "421 4.7.0 %s Error: too many failed "
			    "authentications", s->srv->cfg->hostname);
			smtp_session_close(s);
			break;
		}
		smtp_session_reply(s, "535 5.7.8 Authentication credentials invalid");
		break;
	case AUTHC_TEMPFAIL:
		s->state = ST_CMD;
		log_warnx("%s: auth temporary failure: rip=%s mech=%s%s%s", s->id,
		          s->rip, s->auth_mech, data ? ": " : "",
		          data ? log_safe(safe, sizeof(safe), data, 100) : "");
		smtp_session_reply(s, "454 4.7.0 Temporary authentication failure");
		break;
	case AUTHC_BADB64:
		s->state = ST_CMD;
		smtp_session_reply(s, "501 5.5.2 Invalid base64 data");
		break;
	}
out:
	if (res != AUTHC_CONT) {
		free(s->auth_login);
		s->auth_login = NULL;
		s->auth_login_next = false;
	}
	smtp_session_resume(s);
}
