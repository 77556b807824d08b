/*
 * smtp-policy.h - the SMTP role's policy decisions, each in one function:
 * may this recipient be accepted (relay control), may this sender be
 * used (sender ownership; a later issue fills it in).
 */
#ifndef MSAGATE_SMTP_POLICY_H
#define MSAGATE_SMTP_POLICY_H

#include "smtp-parse.h"
#include "smtp-session.h"

/* NULL to accept the recipient, else the reply line to send. */
const char *smtp_policy_rcpt(struct smtp_session *s, const struct smtp_addr *to,
                             char *buf, size_t len);

/* NULL to accept the sender, else the reply line (553 5.7.1 ...). */
const char *smtp_policy_sender(struct smtp_session *s,
                               const struct smtp_addr *from,
                               char *buf, size_t len);

/* Is domain (case-insensitive) in list? */
bool smtp_domain_in(const char *domain, char *const *list, size_t n);

#endif
