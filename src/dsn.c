/*
 * dsn.c - builds RFC 3464 bounce messages and delay warnings (see dsn.h).  Every string that
 * came from outside (addresses, remote replies, original headers) is
 * either already printable ASCII or made so here, and every line ends in
 * CRLF, so the result can be queued as it is.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "dsn.h"

/* Printable ASCII only, at most max bytes. */
static void
put_clean(struct sbuf *b, const char *s, size_t max)
{
	for (size_t i = 0; s != NULL && s[i] != '\0' && i < max; i++) {
		unsigned char c = (unsigned char)s[i];
		char ch = c < 0x20 || c >= 0x7f ? '?' : (char)c;

		sbuf_add(b, &ch, 1);
	}
}

static void
rfc5322_date(char *buf, size_t len, time_t t)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%a, %d %b %Y %H:%M:%S +0000", &tm);
}

/* Both kinds of DSN; retry_until != 0 makes it a delay warning. */
static void
build(struct sbuf *out, const char *hostname, const struct qenvelope *orig,
    const struct dsn_rcpt *r, size_t n, const char *headers, size_t hlen,
    time_t now, time_t retry_until)
{
	char date[64], adate[64], udate[64], boundary[64];
	bool delayed = retry_until != 0;
	size_t i;

	rfc5322_date(date, sizeof(date), now);
	rfc5322_date(adate, sizeof(adate), orig->arrival);
	rfc5322_date(udate, sizeof(udate), retry_until);
	snprintf(boundary, sizeof(boundary), "%s.%lld/%s", orig->id,
	    (long long)now, "msagate");

	sbuf_printf(out, "Date: %s\r\n", date);
	sbuf_addstr(out, "From: Mail Delivery System <MAILER-DAEMON@");
	put_clean(out, hostname, 255);
	sbuf_addstr(out, ">\r\nTo: <");
	put_clean(out, orig->sender, 512);
	sbuf_addstr(out, delayed ? ">\r\nSubject: Delayed Mail (still being retried)\r\n" :
	    ">\r\nSubject: Undelivered Mail Returned to Sender\r\n");
	sbuf_printf(out, "Message-ID: <%s.%lld.%s@", orig->id, (long long)now,
	    delayed ? "delay" : "dsn");
	put_clean(out, hostname, 255);
	sbuf_addstr(out, ">\r\nAuto-Submitted: auto-replied\r\n"
	    "MIME-Version: 1.0\r\n");
	sbuf_printf(out, "Content-Type: multipart/report; "
	    "report-type=delivery-status;\r\n\tboundary=\"%s\"\r\n", boundary);
	sbuf_addstr(out, "\r\nThis is a MIME-encapsulated message.\r\n\r\n");

	/* 1: for people */
	sbuf_printf(out, "--%s\r\n", boundary);
	sbuf_addstr(out, "Content-Description: Notification\r\n"
	    "Content-Type: text/plain; charset=us-ascii\r\n\r\n");
	sbuf_addstr(out, "This is the mail system at host ");
	put_clean(out, hostname, 255);
	if (delayed) {
		sbuf_addstr(out, ".\r\n\r\n####### THIS IS A WARNING ONLY.  YOU DO "
		    "NOT NEED TO RESEND YOUR MESSAGE. #######\r\n\r\nYour message "
		    "could not be delivered yet to the recipients below.\r\n"
		    "It will be retried until ");
		sbuf_addstr(out, udate);
		sbuf_addstr(out, ".\r\nIts headers are attached below.\r\n\r\n");
	} else {
		sbuf_addstr(out, ".\r\n\r\nI'm sorry to have to inform you that your "
		    "message could not\r\nbe delivered to one or more recipients. "
		    "Its headers are attached below.\r\n\r\n");
	}
	for (i = 0; i < n; i++) {
		sbuf_addstr(out, "<");
		put_clean(out, r[i].final, 512);
		sbuf_addstr(out, ">: ");
		put_clean(out, r[i].detail, 500);
		sbuf_addstr(out, "\r\n");
	}
	sbuf_addstr(out, "\r\n");

	/* 2: for programs (RFC 3464) */
	sbuf_printf(out, "--%s\r\n", boundary);
	sbuf_addstr(out, "Content-Description: Delivery report\r\n"
	    "Content-Type: message/delivery-status\r\n\r\n");
	sbuf_addstr(out, "Reporting-MTA: dns; ");
	put_clean(out, hostname, 255);
	sbuf_printf(out, "\r\nX-Msagate-Queue-ID: %s\r\n", orig->id);
	if (orig->sender[0] != '\0') {
		sbuf_addstr(out, "X-Msagate-Sender: rfc822; ");
		put_clean(out, orig->sender, 512);
		sbuf_addstr(out, "\r\n");
	}
	sbuf_printf(out, "Arrival-Date: %s\r\n", adate);
	for (i = 0; i < n; i++) {
		sbuf_addstr(out, "\r\nFinal-Recipient: rfc822; ");
		put_clean(out, r[i].final, 512);
		sbuf_addstr(out, "\r\n");
		if (r[i].orig != NULL && strcmp(r[i].orig, r[i].final) != 0) {
			sbuf_addstr(out, "Original-Recipient: rfc822; ");
			put_clean(out, r[i].orig, 512);
			sbuf_addstr(out, "\r\n");
		}
		if (delayed) {
			sbuf_addstr(out, "Action: delayed\r\nStatus: ");
			put_clean(out, r[i].status && r[i].status[0] == '4' ?
			    r[i].status : "4.0.0", 15);
		} else {
			sbuf_addstr(out, "Action: failed\r\nStatus: ");
			put_clean(out, r[i].status && r[i].status[0] == '5' ?
			    r[i].status : "5.0.0", 15);
		}
		sbuf_addstr(out, r[i].remote ? "\r\nDiagnostic-Code: smtp; " :
		    "\r\nDiagnostic-Code: x-msagate; ");
		put_clean(out, r[i].detail, 500);
		sbuf_addstr(out, "\r\n");
		if (delayed)
			sbuf_printf(out, "Will-Retry-Until: %s\r\n", udate);
	}
	sbuf_addstr(out, "\r\n");

	/* 3: the original headers */
	sbuf_printf(out, "--%s\r\n", boundary);
	sbuf_addstr(out, delayed ? "Content-Description: Delayed Message Headers\r\n" :
	    "Content-Description: Undelivered Message Headers\r\n");
	sbuf_addstr(out, "Content-Type: text/rfc822-headers\r\n\r\n");
	if (hlen > DSN_MAX_HEADERS)
		hlen = DSN_MAX_HEADERS;
	/* only whole lines, and never a line that looks like our boundary */
	for (i = 0; i < hlen;) {
		const char *nl = memchr(headers + i, '\n', hlen - i);
		size_t len;

		if (nl == NULL)
			break;
		len = (size_t)(nl - (headers + i)) + 1;
		if (!(len >= 2 && headers[i] == '-' && headers[i + 1] == '-'))
			sbuf_add(out, headers + i, len);
		i += len;
	}
	sbuf_printf(out, "\r\n--%s--\r\n", boundary);
}

void
dsn_build(struct sbuf *out, const char *hostname, const struct qenvelope *orig,
    const struct dsn_rcpt *r, size_t n, const char *headers, size_t hlen,
    time_t now)
{
	build(out, hostname, orig, r, n, headers, hlen, now, 0);
}

void
dsn_build_delay(struct sbuf *out, const char *hostname,
    const struct qenvelope *orig, const struct dsn_rcpt *r, size_t n,
    const char *headers, size_t hlen, time_t now, time_t retry_until)
{
	build(out, hostname, orig, r, n, headers, hlen, now,
	    retry_until != 0 ? retry_until : 1);
}
