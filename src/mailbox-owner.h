/*
 * mailbox-owner.h - whose is a local mailbox: the recipient's uid, gid and
 * home as the auth role's userdb socket tells them (passwd-file uid/gid/
 * home fields; for PAM/system users the account's), asked the way the
 * SMTP role asks whether a recipient exists (local@domain, then local),
 * and the rule saying which uids the queue may write as.
 *
 * The lookup blocks (bounded by a timeout): it runs in the queue
 * manager's delivery threads, never on an event loop.
 */
#ifndef MSAGATE_MAILBOX_OWNER_H
#define MSAGATE_MAILBOX_OWNER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define OWNER_HOME_MAX 1024

struct mailbox_owner {
	bool has_uid;                /* the userdb gave a uid */
	uid_t uid;
	gid_t gid;
	char home[OWNER_HOME_MAX];   /* "" when none */
};

enum owner_result {
	OWNER_FOUND,                 /* the user exists (with or without uid) */
	OWNER_NOTFOUND,
	OWNER_TEMPFAIL               /* socket down, timeout, FAIL, bad fields */
};

/*
 * mailbox_owner_lookup - ask socket_path about local@domain, then about
 * local (local already without +tag, lowercased).  err (size errlen)
 * says why on OWNER_TEMPFAIL.  The whole lookup takes at most
 * timeout_ms; while the socket is missing or refuses connections (the
 * auth role is starting) it is retried within that time.
 */
enum owner_result mailbox_owner_lookup(const char *socket_path,
    const char *local, const char *domain, int timeout_ms,
    struct mailbox_owner *o, char *err, size_t errlen);

/*
 * mailbox_owner_fields - fill o from the fields of a USER reply as sent:
 * TAB-separated, each Dovecot-escaped ("uid=1001\tgid=mail\thome=/home/x";
 * other fields ignored).  uid and gid may be numbers or names; a uid without
 * gid takes the account's primary group.  A gid without uid is ignored.
 * Returns 0, or -1 with err (unknown name, bad number, relative home).
 */
int mailbox_owner_fields(const char *fields, struct mailbox_owner *o,
    char *err, size_t errlen);

/*
 * mailbox_owner_refused - NULL when the queue may write as uid/gid, else
 * why not: uid 0 and gid 0 never, uids below min_uid
 * (relay.delivery.min_uid) never.
 */
const char *mailbox_owner_refused(uid_t uid, gid_t gid, long long min_uid,
    char *buf, size_t len);

#endif
