/*
 * smtp-policy.c - the SMTP role's policy decisions (see smtp-policy.h):
 * relay control and local-user existence for RCPT, sender ownership for
 * MAIL FROM and the From: header.  Pure functions of struct
 * policy_client; no I/O, no logging.
 *
 * Recipients (policy_rcpt):
 *   - submission listeners: AUTH is required (530 otherwise; the session
 *     gate already says so before MAIL);
 *   - the client is "trusted" when authenticated, or on a relay listener
 *     from inside relay.mynetworks (Postfix permit_mynetworks);
 *   - the domain is classified local / relay_domains / foreign.  Matching
 *     is case-insensitive and ignores one trailing dot; an address
 *     literal ([192.0.2.1], [IPv6:...]) and anything not listed (UTF-8
 *     U-labels of an A-label domain included) is foreign;
 *   - foreign: trusted clients only, else 554 5.7.1 Relay access denied;
 *   - relay_domains: anyone, but a local part carrying routing ('%', '!',
 *     '@' inside quotes) only from trusted clients (Postfix
 *     allow_untrusted_routing = no);
 *   - local: the recipient must exist, for everyone: <Postmaster>, an
 *     alias (full local part, then without +tag), or a user the auth role
 *     knows ("local@domain", then the bare "local"; lower-cased, without
 *     +tag).  A local part that cannot be a mailbox (routing characters,
 *     empty, quoted specials) is 550 5.1.1 User unknown: it is never
 *     passed on.  Lookup failures are 451 4.3.0.
 * The source route of a path (@a,@b:user@c) is dropped by the parser
 * (RFC 5321 4.1.1.3, C.), so the final address is what is judged.
 *
 * Senders (policy_sender / policy_from_header), submission only:
 *   - the null sender is allowed for authenticated users (bounces, MDNs);
 *   - an address is owned by login L when it is L itself (exact local
 *     part, case-insensitive domain), the same with a +tag, or, for a
 *     login without a domain (PAM users such as "bob"), bob@ any local
 *     domain; otherwise relay.sender_logins must give it (or its
 *     @domain) to L.  Else 553 5.7.1.
 */
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "aliases.h"
#include "log.h"
#include "sender-logins.h"
#include "smtp-policy.h"

#define USER_MAX 255

enum dclass { D_LOCAL, D_RELAY, D_FOREIGN };

bool
smtp_domain_in(const char *domain, char *const *list, size_t n)
{
	size_t dl = strlen(domain);

	if (domain[0] == '[')
		return false;
	if (dl > 0 && domain[dl - 1] == '.')
		dl--;
	if (dl == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		size_t ll = strlen(list[i]);

		if (ll > 0 && list[i][ll - 1] == '.')
			ll--;
		if (ll == dl && strncasecmp(domain, list[i], dl) == 0)
			return true;
	}
	return false;
}

bool
policy_in_mynetworks(const struct msagate_config *cfg,
                     const struct sockaddr *peer)
{
	if (peer == NULL)
		return false;
	for (size_t i = 0; i < cfg->relay.n_mynetworks; i++)
		if (cidr_match(&cfg->relay.mynetworks[i], peer))
			return true;
	return false;
}

static enum dclass
classify(const struct msagate_config *cfg, const char *domain)
{
	if (smtp_domain_in(domain, cfg->relay.local_domains,
	                   cfg->relay.n_local_domains))
		return D_LOCAL;
	if (smtp_domain_in(domain, cfg->relay.relay_domains,
	                   cfg->relay.n_relay_domains))
		return D_RELAY;
	return D_FOREIGN;
}

/* Does the raw local part carry source routing ('@', '%', '!')? */
static bool
has_routing(const char *local, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (local[i] == '@' || local[i] == '%' || local[i] == '!')
			return true;
	return false;
}

/*
 * The mailbox name of a local part: quotes removed, lower-cased (ASCII).
 * false when it cannot name a local mailbox: empty, too long, routing
 * characters, white space, controls, quotes or backslashes inside.
 */
static bool
mailbox_name(const char *local, size_t len, char *out, size_t olen)
{
	size_t o = 0, i = 0, end = len;

	if (len >= 2 && local[0] == '"' && local[len - 1] == '"') {
		i = 1;
		end = len - 1;
	}
	for (; i < end; i++) {
		unsigned char c = (unsigned char)local[i];

		if (c <= 32 || c == 127 || c == '"' || c == '\\' || c == '@' ||
		    c == '%' || c == '!' || c == ',' || c == ':' || c == ';' ||
		    c == '<' || c == '>' || c == '(' || c == ')' || c == '[' ||
		    c == ']')
			return false;
		if (o + 1 >= olen)
			return false;
		out[o++] = (char)tolower(c);
	}
	out[o] = '\0';
	return o > 0 && out[0] != '.' && out[o - 1] != '.' && !strstr(out, "..");
}

/* name without the +tag (recipient_delimiter characters) into base. */
static void
strip_tag(const struct msagate_config *cfg, const char *name, char *base,
          size_t blen)
{
	const char *d = cfg->relay.recipient_delimiter;
	size_t n = strlen(name);

	if (d != NULL && d[0] != '\0') {
		size_t k = strcspn(name, d);

		if (k > 0)
			n = k;
	}
	if (n >= blen)
		n = blen - 1;
	memcpy(base, name, n);
	base[n] = '\0';
}

/* Lower-case domain without a trailing dot. */
static void
norm_domain(const char *d, char *out, size_t olen)
{
	size_t n = strlen(d), i;

	if (n > 0 && d[n - 1] == '.')
		n--;
	if (n >= olen)
		n = olen - 1;
	for (i = 0; i < n; i++)
		out[i] = (char)tolower((unsigned char)d[i]);
	out[i] = '\0';
}

/* "CODE <addr>: text" (addr made printable) into buf; returns r. */
static enum policy_result
reply(char *buf, size_t len, enum policy_result r, const char *code,
      const char *addr, const char *text)
{
	char safe[300];

	snprintf(buf, len, "%s <%s>: %s", code,
	         log_safe(safe, sizeof(safe), addr, SMTP_PATH_MAX), text);
	return r;
}

static enum policy_result
temp_failure(char *buf, size_t len)
{
	snprintf(buf, len, "451 4.3.0 Temporary lookup failure");
	return POLICY_DEFER;
}

/* Ask the user-existence callback; maps its answer. */
static enum policy_user
ask_user(const struct policy_client *c, const char *user)
{
	if (c->user_exists == NULL)
		return POLICY_USER_TEMPFAIL;
	return c->user_exists(c->user_ctx, user);
}

/* Does local user name (already a mailbox name) at domain exist? */
static enum policy_result
local_user(const struct policy_client *c, const struct smtp_addr *to,
           const char *name, const char *domain, char *buf, size_t len)
{
	char base[USER_MAX + 1], full[USER_MAX + SMTP_DOMAIN_MAX + 2];
	size_t n;
	enum policy_user u;

	strip_tag(c->cfg, name, base, sizeof(base));
	if (strcmp(base, "postmaster") == 0)
		return POLICY_OK;       /* RFC 5321 4.5.1 */
	if (c->aliases_broken)
		return temp_failure(buf, len);
	if (c->aliases != NULL && (aliases_lookup(c->aliases, name, &n) != NULL ||
	    aliases_lookup(c->aliases, base, &n) != NULL))
		return POLICY_OK;
	snprintf(full, sizeof(full), "%s@%s", base, domain);
	u = ask_user(c, full);
	if (u == POLICY_USER_UNKNOWN)
		u = ask_user(c, base);
	switch (u) {
	case POLICY_USER_EXISTS:
		return POLICY_OK;
	case POLICY_USER_UNKNOWN:
		return reply(buf, len, POLICY_REJECT, "550 5.1.1", to->addr,
		    "Recipient address rejected: User unknown");
	case POLICY_USER_PENDING:
		/* the name the callback has no answer for yet */
		snprintf(buf, len, "%s", ask_user(c, full) == POLICY_USER_PENDING ?
		         full : base);
		return POLICY_PENDING;
	case POLICY_USER_TEMPFAIL:
	default:
		return temp_failure(buf, len);
	}
}

enum policy_result
policy_rcpt(const struct policy_client *c, const struct smtp_addr *to,
            char *buf, size_t len)
{
	const struct msagate_config *cfg = c->cfg;
	char name[USER_MAX + 1], domain[SMTP_DOMAIN_MAX + 1];
	bool trusted;

	if (c->role == LISTEN_SUBMISSION && c->auth_user == NULL) {
		snprintf(buf, len, "530 5.7.0 Authentication required");
		return POLICY_REJECT;
	}
	trusted = c->auth_user != NULL || (c->role == LISTEN_RELAY &&
	    policy_in_mynetworks(cfg, c->peer));

	if (to->domain[0] == '\0') {
		/* the parser lets only <Postmaster> through without a domain */
		if (to->local_len == 10 && strncasecmp(to->addr, "postmaster", 10) == 0)
			return POLICY_OK;
		return reply(buf, len, POLICY_REJECT, "550 5.1.1", to->addr,
		    "Recipient address rejected: User unknown");
	}
	switch (classify(cfg, to->domain)) {
	case D_FOREIGN:
		if (trusted)
			return POLICY_OK;
		return reply(buf, len, POLICY_REJECT, "554 5.7.1", to->addr,
		    "Relay access denied");
	case D_RELAY:
		if (!trusted && has_routing(to->addr, to->local_len))
			return reply(buf, len, POLICY_REJECT, "554 5.7.1", to->addr,
		    "Relay access denied");
		return POLICY_OK;
	case D_LOCAL:
	default:
		break;
	}
	if (!mailbox_name(to->addr, to->local_len, name, sizeof(name)))
		return reply(buf, len, POLICY_REJECT, "550 5.1.1", to->addr,
		    "Recipient address rejected: User unknown");
	norm_domain(to->domain, domain, sizeof(domain));
	return local_user(c, to, name, domain, buf, len);
}

void
policy_rcpt_address(const struct msagate_config *cfg, const struct smtp_addr *to,
                    char *out, size_t olen)
{
	if (to->domain[0] == '\0') {
		/* RFC 5321 4.5.1: this host's postmaster */
		snprintf(out, olen, "postmaster@%s", cfg->relay.n_local_domains > 0 ?
		         cfg->relay.local_domains[0] : cfg->hostname);
		return;
	}
	if (to->local_len >= 2 && to->addr[0] == '"' &&
	    to->addr[to->local_len - 1] == '"' &&
	    classify(cfg, to->domain) == D_LOCAL) {
		snprintf(out, olen, "%.*s@%s", (int)(to->local_len - 2), to->addr + 1,
		         to->domain);
		return;
	}
	snprintf(out, olen, "%s", to->addr);
}

/* ---- senders --------------------------------------------------------- */

/* Same domain: case-insensitive, one trailing dot ignored on each. */
static bool
same_domain(const char *a, size_t al, const char *b, size_t bl)
{
	if (al > 0 && a[al - 1] == '.')
		al--;
	if (bl > 0 && b[bl - 1] == '.')
		bl--;
	return al == bl && al > 0 && strncasecmp(a, b, al) == 0;
}

/*
 * Is addr (local@domain as parsed, local part length ll) the login
 * itself, possibly with a +tag?
 */
static bool
is_login(const struct policy_client *c, const char *addr, size_t ll,
         const char *domain)
{
	const char *login = c->auth_user, *at = strrchr(login, '@');
	const char *d = c->cfg->relay.recipient_delimiter;
	size_t lll = at ? (size_t)(at - login) : strlen(login), bl = ll;

	if (d != NULL && d[0] != '\0') {
		size_t k = strcspn(addr, d);

		if (k > 0 && k < ll)
			bl = k;
	}
	if (lll == 0 || (ll != lll && bl != lll) || memcmp(addr, login, lll) != 0)
		return false;
	if (at != NULL)
		return same_domain(domain, strlen(domain), at + 1, strlen(at + 1));
	/* a login without a domain owns login@ every local domain */
	return smtp_domain_in(domain, c->cfg->relay.local_domains,
	                      c->cfg->relay.n_local_domains);
}

/* Ownership of one address (local part length ll); OK, REJECT, DEFER. */
static enum policy_result
owned(const struct policy_client *c, const char *addr, size_t ll,
      const char *domain, const char *what, char *buf, size_t len)
{
	char safe[300], user[128];
	const char *list;

	if (domain[0] != '\0' && is_login(c, addr, ll, domain))
		return POLICY_OK;
	if (c->logins_broken)
		return temp_failure(buf, len);
	if (c->logins != NULL && domain[0] != '\0' && domain[0] != '[') {
		list = sender_logins_find(c->logins, addr,
		                          c->cfg->relay.recipient_delimiter);
		if (sender_logins_has(list, c->auth_user))
			return POLICY_OK;
	}
	snprintf(buf, len, "553 5.7.1 <%s>: %s rejected: not owned by user %s",
	         log_safe(safe, sizeof(safe), addr, SMTP_PATH_MAX), what,
	         log_safe(user, sizeof(user), c->auth_user, 100));
	return POLICY_REJECT;
}

enum policy_result
policy_sender(const struct policy_client *c, const struct smtp_addr *from,
              char *buf, size_t len)
{
	if (c->role == LISTEN_RELAY)
		return POLICY_OK;       /* an MTA port: no ownership to check */
	if (c->auth_user == NULL) {
		snprintf(buf, len, "530 5.7.0 Authentication required");
		return POLICY_REJECT;
	}
	if (from->addr[0] == '\0')
		return POLICY_OK;       /* null sender */
	return owned(c, from->addr, from->local_len, from->domain,
	             "Sender address", buf, len);
}

enum policy_result
policy_from_header(const struct policy_client *c, const char *values,
                   char *buf, size_t len)
{
	struct smtp_addr addrs[SMTP_HDR_ADDRS_MAX];
	enum policy_result r;
	int n;

	if (c->role == LISTEN_RELAY || !c->cfg->relay.check_from_header)
		return POLICY_OK;
	if (c->auth_user == NULL) {
		snprintf(buf, len, "530 5.7.0 Authentication required");
		return POLICY_REJECT;
	}
	if (values == NULL || values[0] == '\0') {
		snprintf(buf, len, "553 5.7.1 Message has no From: header");
		return POLICY_REJECT;
	}
	for (const char *v = values; *v; v += strlen(v) + 1) {
		n = smtp_parse_header_addrs(v, addrs, SMTP_HDR_ADDRS_MAX);
		if (n <= 0) {
			snprintf(buf, len, "553 5.7.1 From: header not understood%s",
			         n == 0 ? " (no address)" : "");
			return POLICY_REJECT;
		}
		for (int i = 0; i < n; i++) {
			if (addrs[i].addr[0] == '\0') {
				snprintf(buf, len, "553 5.7.1 From: header not understood");
				return POLICY_REJECT;
			}
			r = owned(c, addrs[i].addr, addrs[i].local_len,
			          addrs[i].domain, "From: header address", buf, len);
			if (r != POLICY_OK)
				return r;
		}
	}
	return POLICY_OK;
}
