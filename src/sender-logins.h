/*
 * sender-logins.h - the sender map of relay.sender_logins (Postfix
 * smtpd_sender_login_maps style): which SASL logins may use which
 * envelope sender (and, with relay.check_from_header, From:) addresses.
 *
 * File format, one entry a line, '#' comment lines, empty lines ignored:
 *     alice@example.test     alice, alice@example.test
 *     sales@example.test     alice bob
 *     @shop.example.test     shopapp
 * The key is an address or "@domain" (whole domain); the logins are
 * separated by commas and/or white space.  Keys and logins compare
 * case-insensitively.  A key defined twice is an error.  Pure: no logging.
 */
#ifndef MSAGATE_SENDER_LOGINS_H
#define MSAGATE_SENDER_LOGINS_H

#include <stdbool.h>

struct sender_logins;

/* Read path; NULL with *error (malloc'd "PATH:LINE: msg"). */
struct sender_logins *sender_logins_load(const char *path, char **error);
void sender_logins_free(struct sender_logins *m);
/* Re-read when the file changed; 0 unchanged or reloaded, -1 with *error
 * (the old map is kept). */
int sender_logins_refresh(struct sender_logins **m, char **error);

/*
 * The logins the map gives address (looked up as written, then without
 * the +extension when delim is a non-empty delimiter set, then as
 * "@domain"; the first key found decides, as in Postfix), or NULL.
 * The list is "login1\0login2\0\0"-shaped (empty string ends it).
 */
const char *sender_logins_find(const struct sender_logins *m,
                               const char *address, const char *delim);
/* Does the list returned by sender_logins_find contain login? */
bool sender_logins_has(const char *list, const char *login);

#endif
