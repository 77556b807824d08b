/*
 * deliver-maildir.c - the "maildir" delivery method: one file per
 * recipient in PATH/new, written with the Maildir protocol (maildir.c).
 * PATH comes from relay.delivery.path with %d = domain, %n = local part
 * without the +tag, %u = local@domain (both lowercased), %h = the
 * recipient's home directory from the userdb, %% = '%'.  Missing
 * directories are created with mode 0700 on first delivery.
 *
 * Whose files: when msagated runs as root, the recipient is looked up in
 * the userdb (the auth role's socket, as the SMTP role does for RCPT);
 * with a uid there (passwd-file uid/gid fields, the system account for
 * PAM) the Maildir is created and written as that uid and gid, by a child
 * of the delivery helper (deliver-helper.c) - unless the uid is 0, below
 * relay.delivery.min_uid, or the gid is 0: then the recipient is deferred
 * and nothing is written.  Without a uid (or started without root) the
 * queue role writes itself, as `user` (one virtual-mail account, like
 * Dovecot's vmail).  A path that cannot be written is a temporary failure
 * (the administrator can fix it); an address that cannot name a directory
 * safely ('/', leading '.', control characters) is a permanent one.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "deliver-helper.h"
#include "delivery.h"
#include "mailbox-owner.h"
#include "maildir.h"
#include "util.h"

#define OWNER_TIMEOUT_MS 10000

struct maildir_ctx {
	char *path;                  /* template */
	char *delimiter;
	char *userdb_socket;
	long long min_uid;
	bool wants_home;             /* the template has %h */
	char host[MAILDIR_HOST_MAX]; /* for unique names: '/' and ':' encoded */
};

/* Does the template use %h (a "%%h" is a literal)? */
static bool
uses_home(const char *t)
{
	for (; *t != '\0'; t++)
		if (*t == '%') {
			if (t[1] == 'h')
				return true;
			if (t[1] != '\0')
				t++;
		}
	return false;
}

static void *
maildir_init(const struct msagate_config *cfg, char **error)
{
	struct maildir_ctx *c;

	if (cfg->relay.delivery_path == NULL || (cfg->relay.delivery_path[0] != '/' &&
	    strncmp(cfg->relay.delivery_path, "%h", 2) != 0)) {
		*error = xstrdup("relay.delivery.path must be an absolute path");
		return NULL;
	}
	c = xcalloc(1, sizeof(*c));
	c->path = xstrdup(cfg->relay.delivery_path);
	c->delimiter = xstrdup(cfg->relay.recipient_delimiter ?
	    cfg->relay.recipient_delimiter : "");
	c->userdb_socket = xstrdup(cfg->auth.userdb_socket ?
	    cfg->auth.userdb_socket : "");
	c->min_uid = cfg->relay.delivery_min_uid > 0 ?
	    cfg->relay.delivery_min_uid : 1000;
	c->wants_home = uses_home(c->path);
	maildir_host(cfg->hostname, c->host, sizeof(c->host));
	return c;
}

static const char *
maildir_relay(void *ctx)
{
	(void)ctx;
	return "maildir";
}

static void
maildir_free(void *ctx)
{
	struct maildir_ctx *c = ctx;

	if (c == NULL)
		return;
	free(c->path);
	free(c->delimiter);
	free(c->userdb_socket);
	free(c);
}

/*
 * May this string become one path component?  Printable ASCII but '/', '\\'
 * and '"', and well-formed UTF-8 (an SMTPUTF8 local part: jörg@...); not
 * empty, no leading dot.
 */
static bool
safe_component(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	if (p[0] == '\0' || p[0] == '.')
		return false;
	while (*p != '\0') {
		unsigned char ch = *p;
		int more = ch >= 0xf0 && ch <= 0xf4 ? 3 : ch >= 0xe0 && ch <= 0xef ? 2 :
		    ch >= 0xc2 && ch <= 0xdf ? 1 : ch < 0x80 ? 0 : -1;

		if (more < 0 || (more == 0 && (ch <= 0x20 || ch == 0x7f || ch == '/' ||
		    ch == '\\' || ch == '"')))
			return false;
		for (p++; more > 0; more--, p++)
			if ((*p & 0xc0) != 0x80)
				return false;
	}
	return true;
}

/* Expand the template for one address; -1 if it does not fit, -2 if it
 * needs a home directory and there is none. */
static int
expand_path(const char *tmpl, const char *local, const char *domain,
    const char *home, char *out, size_t len)
{
	size_t j = 0;

	for (const char *p = tmpl; *p != '\0'; p++) {
		char one[2] = { *p, '\0' };
		const char *add = one;
		int n;

		if (*p == '%') {
			switch (p[1]) {
			case 'd': add = domain; p++; break;
			case 'n': add = local; p++; break;
			case 'h':
				if (home == NULL || home[0] != '/')
					return -2;
				add = home;
				p++;
				break;
			case 'u':
				n = snprintf(out + j, len - j, "%s@%s", local, domain);
				if (n < 0 || (size_t)n >= len - j)
					return -1;
				j += (size_t)n;
				p++;
				continue;
			case '%': p++; break;
			default: break;
			}
		}
		n = snprintf(out + j, len - j, "%s", add);
		if (n < 0 || (size_t)n >= len - j)
			return -1;
		j += (size_t)n;
	}
	return 0;
}

/*
 * Whose mailbox: *o from the userdb when we may write as others (root)
 * or the path needs %h.  false with r's verdict set when it cannot be
 * decided or is refused.  An address an alias led to must be a user:
 * the SMTP side checked only the alias, and a typo in the aliases file
 * would otherwise make a mailbox nobody reads (5.1.1, as Postfix's
 * "unknown user").
 */
static bool
find_owner(struct maildir_ctx *c, struct delivery_rcpt *r, const char *local,
    const char *domain, struct mailbox_owner *o)
{
	char err[200], why[160];
	bool privileged = deliver_helper_privileged();
	/* (no userdb socket - only in unit tests - means nobody to ask) */
	bool via_alias = r->orig != NULL && strcasecmp(r->orig, r->address) != 0 &&
	    c->userdb_socket[0] != '\0';

	memset(o, 0, sizeof(*o));
	if (!privileged && !c->wants_home && !via_alias)
		return true;
	switch (mailbox_owner_lookup(c->userdb_socket, local, domain,
	    OWNER_TIMEOUT_MS, o, err, sizeof(err))) {
	case OWNER_TEMPFAIL:
		delivery_set(r, DELIVERY_DEFER, "4.3.0", "cannot find the mailbox "
		    "owner: %s", err);
		return false;
	case OWNER_NOTFOUND:
		if (via_alias) {
			delivery_set(r, DELIVERY_BOUNCE, "5.1.1", "unknown user: "
			    "an alias of <%.200s> leads here, but no such user exists",
			    r->orig);
			return false;
		}
		memset(o, 0, sizeof(*o));
		return true;
	case OWNER_FOUND:
		break;
	}
	if (!privileged) {
		o->has_uid = false;     /* everything runs as the invoking user */
		return true;
	}
	if (o->has_uid && (o->uid != geteuid() || o->gid != getegid()) &&
	    mailbox_owner_refused(o->uid, o->gid, c->min_uid, why, sizeof(why))) {
		delivery_set(r, DELIVERY_DEFER, "4.3.5", "%s", why);
		return false;
	}
	return true;
}

static void
maildir_deliver(void *ctx, const struct delivery_msg *msg,
    struct delivery_rcpt *rcpts, size_t n)
{
	struct maildir_ctx *c = ctx;

	for (size_t i = 0; i < n; i++) {
		struct delivery_rcpt *r = &rcpts[i];
		char local[256], domain[256], dir[MAILDIR_PATH_MAX];
		struct mailbox_owner o;
		struct sbuf h;
		const char *step = "";
		int rc;

		if (delivery_split_address(r->address, c->delimiter, local,
		    sizeof(local), domain, sizeof(domain)) < 0 ||
		    !safe_component(local) || !safe_component(domain)) {
			delivery_set(r, DELIVERY_BOUNCE, "5.1.3",
			    "address cannot name a mailbox");
			continue;
		}
		if (!find_owner(c, r, local, domain, &o))
			continue;
		rc = expand_path(c->path, local, domain, o.home, dir, sizeof(dir));
		if (rc == -2) {
			delivery_set(r, DELIVERY_DEFER, "4.3.5", "relay.delivery.path "
			    "uses %%h but the userdb gives no home for this user");
			continue;
		}
		if (rc < 0) {
			delivery_set(r, DELIVERY_BOUNCE, "5.1.3",
			    "mailbox path too long");
			continue;
		}
		sbuf_init(&h, 0);
		sbuf_printf(&h, "Return-Path: <%s>\nDelivered-To: %s\n",
		    msg->env->sender, r->address);
		if (o.has_uid && (o.uid != geteuid() || o.gid != getegid())) {
			struct helper_request req = {
				.kind = HELPER_MAILDIR, .uid = o.uid, .gid = o.gid,
				.target = dir, .sender = msg->env->sender,
				.rcpt = r->address, .head = h.s,
			};

			deliver_helper_call(&req, msg, r);
		} else {
			rc = maildir_store(dir, c->host, h.s, h.len, msg, &step);
			maildir_verdict(r, rc < 0 ? errno : 0, step, dir);
		}
		sbuf_free(&h);
	}
}

const struct delivery_method delivery_maildir = {
	.name = "maildir",
	.batch = false,
	.init = maildir_init,
	.relay = maildir_relay,
	.deliver = maildir_deliver,
	.free = maildir_free,
};
