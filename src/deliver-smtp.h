/*
 * deliver-smtp.h - the parsers of the "smtp" (onward relay) delivery
 * method, exported for its unit test (t/unit/test-smtp-client.c).  The
 * method itself is delivery_smtp in delivery.h.
 */
#ifndef MSAGATE_DELIVER_SMTP_H
#define MSAGATE_DELIVER_SMTP_H

#include <stddef.h>

/*
 * Split relay.relayhost: "[host]:port", "[host]", "host:port" or "host"
 * (port 25) into malloc'd host and port.  Returns 0, or -1 for a
 * malformed value (nothing allocated).
 */
int smtp_parse_relayhost(const char *s, char **host, char **port);

/*
 * Read the credentials file (one line "user:password").  Refused when group
 * or others have any access, or it is not a regular file.  Returns 0, or
 * -1 with a reason in why that never holds the secret.
 */
int smtp_read_credentials(const char *file, char *user, size_t ulen,
    char *pass, size_t plen, char *why, size_t wlen);

#endif
