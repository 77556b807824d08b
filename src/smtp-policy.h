/*
 * smtp-policy.h - the SMTP role's policy decisions, each in one function
 * and one place: may this recipient be accepted (relay control, local
 * user existence), may this sender be used (sender ownership, for MAIL
 * FROM and, where configured, the From: header).
 *
 * The functions are pure: everything they need is in struct
 * policy_client, including a callback that says whether a local user
 * exists.  That callback may answer POLICY_USER_PENDING ("ask me again
 * later"): the session then runs the asynchronous userdb lookup and calls
 * the policy again with the answer at hand.  The golden-file driver
 * (t/unit/test-relay-policy.c) calls the very same functions with a fake
 * callback.
 *
 * Results are tri-state (plus "pending"): a lookup or parse error is a
 * temporary or permanent refusal, never a permit.
 */
#ifndef MSAGATE_SMTP_POLICY_H
#define MSAGATE_SMTP_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "config.h"
#include "smtp-parse.h"

struct aliases;
struct sender_logins;
struct smtp_session;

enum policy_result {
	POLICY_OK,           /* accept */
	POLICY_REJECT,       /* 5xx reply in the buffer */
	POLICY_DEFER,        /* 4xx reply in the buffer (lookup failure) */
	POLICY_PENDING,      /* a user lookup must run first (name in the buffer) */
};

enum policy_user {
	POLICY_USER_EXISTS,
	POLICY_USER_UNKNOWN,
	POLICY_USER_TEMPFAIL,
	POLICY_USER_PENDING,
};

/* Does the auth role know user (a lower-cased login name)? */
typedef enum policy_user policy_user_fn(void *ctx, const char *user);

/* Everything a decision may depend on. */
struct policy_client {
	const struct msagate_config *cfg;
	enum listen_role role;
	const struct sockaddr *peer;       /* the client's address */
	const char *auth_user;             /* SASL login, NULL when none */
	const struct aliases *aliases;     /* NULL: none configured */
	bool aliases_broken;               /* configured but unreadable */
	const struct sender_logins *logins;/* NULL: none configured */
	bool logins_broken;                /* configured but unreadable */
	policy_user_fn *user_exists;       /* NULL: no userdb (tempfail) */
	void *user_ctx;
};

/*
 * May the recipient be accepted?  POLICY_OK, or the reply (REJECT/DEFER)
 * in buf, or PENDING with the user name to look up in buf.
 */
enum policy_result policy_rcpt(const struct policy_client *c,
                               const struct smtp_addr *to,
                               char *buf, size_t len);

/*
 * The address to queue for a recipient policy_rcpt accepted, into out
 * (at least SMTP_PATH_MAX + SMTP_DOMAIN_MAX + 2 bytes): <Postmaster>
 * gets the first local domain (the hostname when there is none), a
 * quoted local part at a local domain loses its quotes (what they held
 * needs none: policy_rcpt checked it as a mailbox name), so delivery and
 * the aliases see the name that was checked.  Anything else as it came.
 */
void policy_rcpt_address(const struct msagate_config *cfg,
                         const struct smtp_addr *to, char *out, size_t olen);

/* May the client use this envelope sender?  POLICY_OK or the reply. */
enum policy_result policy_sender(const struct policy_client *c,
                                 const struct smtp_addr *from,
                                 char *buf, size_t len);

/*
 * The From: header check (relay.check_from_header): the header field
 * values of every From: line (unfolded, NUL-separated list "v1\0v2\0\0",
 * or NULL when there is none) must each hold only addresses the login
 * owns.  POLICY_OK or the 553 reply.
 */
enum policy_result policy_from_header(const struct policy_client *c,
                                      const char *values,
                                      char *buf, size_t len);

/* Is the client inside relay.mynetworks? */
bool policy_in_mynetworks(const struct msagate_config *cfg,
                          const struct sockaddr *peer);

/*
 * Is domain (case-insensitive, one trailing dot ignored) in list?  An
 * address literal ("[...]") never is.
 */
bool smtp_domain_in(const char *domain, char *const *list, size_t n);

#endif
