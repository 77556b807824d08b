/*
 * dsn.h - the bounce message and the delay warning: an RFC 3464 delivery
 * status notification (multipart/report; report-type=delivery-status)
 * with a human-readable part, the machine-readable message/delivery-status
 * part and the headers of the original message (text/rfc822-headers).
 */
#ifndef MSAGATE_DSN_H
#define MSAGATE_DSN_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "qfile.h"
#include "util.h"

#define DSN_MAX_HEADERS (64 * 1024)  /* original headers included, at most */

/* One failed (or, for a delay warning, deferred) recipient. */
struct dsn_rcpt {
	const char *final;           /* address the failure is about */
	const char *orig;            /* envelope recipient (may equal final) */
	const char *status;          /* "5.1.1" ("4.4.1" when delayed) */
	const char *detail;          /* printable text */
	bool remote;                 /* detail is a remote reply (smtp; ...) */
};

/*
 * dsn_build - append the whole DSN message (header and body, CRLF line
 * ends) to out.  orig: the bounced message's envelope; headers: its header
 * section as queued (bounded by the caller to DSN_MAX_HEADERS).
 */
void dsn_build(struct sbuf *out, const char *hostname,
    const struct qenvelope *orig, const struct dsn_rcpt *r, size_t n,
    const char *headers, size_t hlen, time_t now);

/*
 * dsn_build_delay - the same for a delay warning: Action: delayed, a 4.x.x
 * Status (4.0.0 when r[i].status is not one) and Will-Retry-Until:
 * retry_until (arrival + queue lifetime).
 */
void dsn_build_delay(struct sbuf *out, const char *hostname,
    const struct qenvelope *orig, const struct dsn_rcpt *r, size_t n,
    const char *headers, size_t hlen, time_t now, time_t retry_until);

#endif
