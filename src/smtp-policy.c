/*
 * smtp-policy.c - the SMTP role's policy decisions: relay control for
 * RCPT and the sender-ownership hook for MAIL.  The full relay policy and
 * sender ownership (553 5.7.1) come with later issues; this is the one
 * place they will live.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "smtp-policy.h"

bool
smtp_domain_in(const char *domain, char *const *list, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcasecmp(domain, list[i]) == 0)
			return true;
	return false;
}

/* Is the client inside relay.mynetworks? */
static bool
client_in_mynetworks(const struct smtp_session *s)
{
	const struct msagate_config *cfg = s->srv->cfg;
	size_t i;

	for (i = 0; i < cfg->relay.n_mynetworks; i++)
		if (cidr_match(&cfg->relay.mynetworks[i],
		               (const struct sockaddr *)&s->peer))
			return true;
	return false;
}

/*
 * Relay control.  Submission listeners: authentication is required before
 * MAIL (a gate), so any domain is fine here.  Relay listeners: local and
 * relay domains from anyone, other domains only from mynetworks.  A
 * recipient without a domain (<Postmaster>) is local.
 */
const char *
smtp_policy_rcpt(struct smtp_session *s, const struct smtp_addr *to,
                 char *buf, size_t len)
{
	const struct msagate_config *cfg = s->srv->cfg;
	char safe[300];

	if (s->lc->role == LISTEN_SUBMISSION && (s->flags & SF_AUTH))
		return NULL;
	if (to->domain[0] == '\0')
		return NULL;
	if (smtp_domain_in(to->domain, cfg->relay.local_domains,
	                   cfg->relay.n_local_domains) ||
	    smtp_domain_in(to->domain, cfg->relay.relay_domains,
	                   cfg->relay.n_relay_domains))
		return NULL;
	if (client_in_mynetworks(s))
		return NULL;
	snprintf(buf, len, "554 5.7.1 <%s>: Relay access denied",
	         log_safe(safe, sizeof(safe), to->addr, SMTP_PATH_MAX));
	return buf;
}

/*
 * Sender ownership hook: may the (authenticated) client use this sender?
 * For now every well-formed sender is accepted.
 */
const char *
smtp_policy_sender(struct smtp_session *s, const struct smtp_addr *from,
                   char *buf, size_t len)
{
	(void)s;
	(void)from;
	(void)buf;
	(void)len;
	return NULL;
}
