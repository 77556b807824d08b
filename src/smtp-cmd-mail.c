/*
 * smtp-cmd-mail.c - MAIL FROM and RCPT TO of the SMTP role: parse, ask
 * the policy (smtp-policy.c), and, when the policy needs to know whether
 * a local user exists, ask the auth role's userdb socket (userdbc.c)
 * without blocking: the session waits (SF_WAIT) and the policy is asked
 * again with the answer.  Also loads and refreshes the maps the policy
 * reads (relay.aliases, relay.sender_logins).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "aliases.h"
#include "log.h"
#include "sender-logins.h"
#include "smtp-parse.h"
#include "smtp-policy.h"
#include "smtp-session.h"
#include "userdbc.h"

#define DEF_MAX_RECIPIENTS 100
#define MAPS_CHECK_SECS    5        /* how often files are checked for changes */
#define MAX_UDB            (int)(sizeof(((struct smtp_session *)0)->udb) / \
                                 sizeof(((struct smtp_session *)0)->udb[0]))

/* ---- maps -------------------------------------------------------------- */

void
smtp_maps_load(struct smtp_server *srv)
{
	const struct msagate_config *cfg = srv->cfg;
	char *err = NULL;

	if (cfg->relay.aliases != NULL && cfg->relay.aliases[0] != '\0') {
		if ((srv->aliases = aliases_load(cfg->relay.aliases, &err)) == NULL) {
			log_errx("aliases: %s; local recipients are deferred (451) "
			         "until it is fixed", err);
			free(err);
			srv->aliases_broken = true;
		}
	}
	if (cfg->relay.sender_logins != NULL && cfg->relay.sender_logins[0] != '\0') {
		if ((srv->logins = sender_logins_load(cfg->relay.sender_logins,
		    &err)) == NULL) {
			log_errx("sender_logins: %s; senders other than the login "
			         "are deferred (451) until it is fixed", err);
			free(err);
			srv->logins_broken = true;
		}
	}
	srv->maps_checked = time(NULL);
}

/* Re-read changed maps, at most every MAPS_CHECK_SECS. */
void
smtp_maps_refresh(struct smtp_server *srv)
{
	time_t now = time(NULL);
	char *err = NULL;

	if (now - srv->maps_checked < MAPS_CHECK_SECS && now >= srv->maps_checked)
		return;
	srv->maps_checked = now;
	if (srv->aliases_broken || srv->logins_broken) {
		/* try again from scratch */
		bool was_a = srv->aliases_broken, was_l = srv->logins_broken;

		smtp_maps_free(srv);
		smtp_maps_load(srv);
		if (was_a && !srv->aliases_broken)
			log_info("aliases: %s loaded", srv->cfg->relay.aliases);
		if (was_l && !srv->logins_broken)
			log_info("sender_logins: %s loaded", srv->cfg->relay.sender_logins);
		return;
	}
	if (srv->aliases != NULL && aliases_refresh(&srv->aliases, &err) != 0) {
		log_warnx("aliases: %s (the previous table stays in use)", err);
		free(err);
	}
	if (srv->logins != NULL && sender_logins_refresh(&srv->logins, &err) != 0) {
		log_warnx("sender_logins: %s (the previous map stays in use)", err);
		free(err);
	}
}

void
smtp_maps_free(struct smtp_server *srv)
{
	aliases_free(srv->aliases);
	srv->aliases = NULL;
	srv->aliases_broken = false;
	sender_logins_free(srv->logins);
	srv->logins = NULL;
	srv->logins_broken = false;
}

/* ---- policy view of a session ------------------------------------------ */

/* The policy's user-existence callback: answers known to this RCPT. */
static enum policy_user
session_user(void *ctx, const char *user)
{
	struct smtp_session *s = ctx;
	enum userdbc_result r;

	for (int i = 0; i < s->n_udb; i++)
		if (strcmp(s->udb[i].name, user) == 0)
			return (enum policy_user)s->udb[i].res;
	if (s->srv->userdbc == NULL)
		return POLICY_USER_TEMPFAIL;
	r = userdbc_cached(s->srv->userdbc, user);
	if (r == USERDBC_FOUND)
		return POLICY_USER_EXISTS;
	if (r == USERDBC_NOTFOUND)
		return POLICY_USER_UNKNOWN;
	return POLICY_USER_PENDING;
}

void
smtp_policy_client(struct smtp_session *s, struct policy_client *pc)
{
	struct smtp_server *srv = s->srv;

	smtp_maps_refresh(srv);
	memset(pc, 0, sizeof(*pc));
	pc->cfg = srv->cfg;
	pc->role = s->lc->role;
	pc->peer = (const struct sockaddr *)&s->peer;
	pc->auth_user = (s->flags & SF_AUTH) ? s->auth_user : NULL;
	pc->aliases = srv->aliases;
	pc->aliases_broken = srv->aliases_broken;
	pc->logins = srv->logins;
	pc->logins_broken = srv->logins_broken;
	pc->user_exists = session_user;
	pc->user_ctx = s;
}

/* ---- MAIL ------------------------------------------------------------------ */

void
smtp_cmd_mail(struct smtp_session *s, const char *args)
{
	const struct msagate_config *cfg = s->srv->cfg;
	struct policy_client pc;
	struct smtp_mail_args m;
	const char *err;
	char buf[600], safe[300];

	if ((err = smtp_parse_mail(args, cfg->relay.message_size_limit, &m)) != NULL) {
		smtp_session_reply(s, "%s", err);
		return;
	}
	smtp_policy_client(s, &pc);
	if (policy_sender(&pc, &m.from, buf, sizeof(buf)) != POLICY_OK) {
		log_info("%s: reject: MAIL from [%s]: %s", s->id, s->rip,
		         log_safe(safe, sizeof(safe), buf, 250));
		s->flags |= SF_LOGGED;
		smtp_session_reply(s, "%s", buf);
		return;
	}
	s->tx = xcalloc(1, sizeof(*s->tx));
	s->tx->sender = xstrdup(m.from.addr);
	s->tx->declared_size = m.size;
	s->tx->smtputf8 = m.smtputf8;
	s->tx->eightbit = m.body == SMTP_BODY_8BITMIME;
	s->tx->fd = -1;
	smtp_session_reply(s, "250 2.1.0 Ok");
}

/* ---- RCPT ------------------------------------------------------------------ */

static void rcpt_decide(struct smtp_session *s);

/* Forget the recipient being decided and its lookups. */
static void
rcpt_reset(struct smtp_session *s)
{
	free(s->rcpt_to);
	s->rcpt_to = NULL;
	for (int i = 0; i < s->n_udb; i++)
		free(s->udb[i].name);
	s->n_udb = 0;
}

void
smtp_rcpt_cancel(struct smtp_session *s)
{
	if (s->udb_id != 0 && s->srv->userdbc != NULL)
		userdbc_abort(s->srv->userdbc, s->udb_id);
	s->udb_id = 0;
	rcpt_reset(s);
}

static void
udb_cb(void *ctx, enum userdbc_result res)
{
	struct smtp_session *s = ctx;
	enum policy_user u;

	s->udb_id = 0;
	if ((s->flags & SF_CLOSING) || s->rcpt_to == NULL || s->tx == NULL) {
		rcpt_reset(s);
		return;
	}
	u = res == USERDBC_FOUND ? POLICY_USER_EXISTS :
	    res == USERDBC_NOTFOUND ? POLICY_USER_UNKNOWN : POLICY_USER_TEMPFAIL;
	/* the name asked is the last entry, added without an answer yet */
	if (s->n_udb > 0)
		s->udb[s->n_udb - 1].res = (int)u;
	/*
	 * The policy may want another name looked up (local@domain, then
	 * local): then this RCPT is still undecided and the commands
	 * pipelined behind it must wait too, or their replies would overtake
	 * its reply (RFC 2920: replies in the order of the commands).
	 */
	s->flags &= ~SF_WAIT;
	rcpt_decide(s);
	if (!(s->flags & SF_WAIT))
		smtp_session_resume(s);
}

/* Is addr already a recipient of tx?  Same local part, domain in any case. */
static bool
rcpt_listed(const struct smtp_tx *tx, const char *addr)
{
	const char *at = strrchr(addr, '@');
	size_t ll = at ? (size_t)(at - addr) : strlen(addr);

	for (size_t i = 0; i < tx->n_rcpts; i++) {
		const char *r = tx->rcpts[i], *rat = strrchr(r, '@');
		size_t rll = rat ? (size_t)(rat - r) : strlen(r);

		if (rll == ll && memcmp(r, addr, ll) == 0 &&
		    (at == NULL ? rat == NULL : rat != NULL && strcasecmp(rat, at) == 0))
			return true;
	}
	return false;
}

/* Ask the policy about s->rcpt_to; answer, or start a lookup and wait. */
static void
rcpt_decide(struct smtp_session *s)
{
	struct smtp_tx *tx = s->tx;
	struct policy_client pc;
	enum policy_result r;
	char buf[600], safe[300], from[220];

	smtp_policy_client(s, &pc);
	r = policy_rcpt(&pc, s->rcpt_to, buf, sizeof(buf));
	if (r == POLICY_PENDING) {
		if (s->n_udb >= MAX_UDB) {
			/* the policy keeps asking: never permit by accident */
			snprintf(buf, sizeof(buf), "451 4.3.0 Temporary lookup failure");
			r = POLICY_DEFER;
		} else {
			s->udb[s->n_udb].name = xstrdup(buf);
			s->udb[s->n_udb].res = POLICY_USER_PENDING;
			s->n_udb++;
			s->flags |= SF_WAIT;
			s->udb_id = userdbc_lookup(s->srv->userdbc, buf, udb_cb, s);
			return;
		}
	}
	if (r == POLICY_OK) {
		char addr[SMTP_PATH_MAX + SMTP_DOMAIN_MAX + 2];

		policy_rcpt_address(s->srv->cfg, s->rcpt_to, addr, sizeof(addr));
		/* the same recipient twice gets one copy (as Postfix's cleanup) */
		if (!rcpt_listed(tx, addr)) {
			if (tx->n_rcpts == tx->cap_rcpts) {
				tx->cap_rcpts = tx->cap_rcpts ? tx->cap_rcpts * 2 : 4;
				tx->rcpts = xrealloc(tx->rcpts, tx->cap_rcpts * sizeof(char *));
			}
			tx->rcpts[tx->n_rcpts++] = xstrdup(addr);
		}
		smtp_session_reply(s, "250 2.1.5 Ok");
	} else {
		log_info("%s: reject: RCPT from [%s]: %s; from=<%s>", s->id, s->rip,
		         log_safe(safe, sizeof(safe), buf, 250),
		         log_safe(from, sizeof(from), tx->sender, 200));
		s->flags |= SF_LOGGED;
		smtp_session_reply(s, "%s", buf);
	}
	rcpt_reset(s);
}

void
smtp_cmd_rcpt(struct smtp_session *s, const char *args)
{
	struct smtp_tx *tx = s->tx;
	struct smtp_rcpt_args r;
	const char *err;
	int max = s->srv->cfg->smtp.max_recipients > 0 ?
	    s->srv->cfg->smtp.max_recipients : DEF_MAX_RECIPIENTS;

	if (tx->n_rcpts >= (size_t)max) {
		smtp_session_reply(s, "452 4.5.3 Error: too many recipients");
		return;
	}
	if ((err = smtp_parse_rcpt(args, tx->smtputf8, &r)) != NULL) {
		smtp_session_reply(s, "%s", err);
		return;
	}
	rcpt_reset(s);
	s->rcpt_to = xmalloc(sizeof(*s->rcpt_to));
	*s->rcpt_to = r.to;
	/* domain points into addr: re-point it into the copy */
	s->rcpt_to->domain = s->rcpt_to->addr + (r.to.domain - r.to.addr);
	rcpt_decide(s);
}
