/*
 * smtp-parse.h - pure parsers for SMTP command lines (RFC 5321, with the
 * parameters of RFC 1870 SIZE, RFC 6152 8BITMIME, RFC 6531 SMTPUTF8 and
 * RFC 4954 AUTH=): the verb, MAIL FROM / RCPT TO paths and parameters,
 * the EHLO/HELO argument.  No I/O, no allocation: unit-tested on its own.
 *
 * Errors are returned as complete reply lines ("501 5.1.7 ..."), so the
 * session only has to send them.
 */
#ifndef MSAGATE_SMTP_PARSE_H
#define MSAGATE_SMTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>

/* RFC 5321 4.5.3.1 limits. */
#define SMTP_LOCAL_MAX   64
#define SMTP_DOMAIN_MAX  255
#define SMTP_PATH_MAX    256    /* including "<" and ">" */
#define SMTP_HELO_MAX    255

enum smtp_body {
	SMTP_BODY_NONE,
	SMTP_BODY_7BIT,
	SMTP_BODY_8BITMIME,
};

/* A parsed mailbox: "local@domain" (or "" for the null path). */
struct smtp_addr {
	char addr[SMTP_PATH_MAX + 1];    /* without the angle brackets */
	size_t local_len;                /* octets before the '@' */
	const char *domain;              /* into addr; "" when none (Postmaster) */
	bool utf8;                       /* contains non-ASCII octets */
};

struct smtp_mail_args {
	struct smtp_addr from;
	long long size;                  /* SIZE=, -1 when not given */
	enum smtp_body body;
	bool smtputf8;
};

struct smtp_rcpt_args {
	struct smtp_addr to;
};

/*
 * Split a command line (NUL-terminated, no CRLF) into its verb and the
 * argument string.  The verb is copied upper-cased into verb (size vlen);
 * *args points after the single space separating them ("" if none).
 * Returns false if the verb is empty or too long or not alphabetic.
 */
bool smtp_split_verb(const char *line, char *verb, size_t vlen,
                     const char **args);

/* true for the start of an HTTP request line (cross-protocol attacks). */
bool smtp_is_http(const char *line);

/*
 * MAIL FROM:<path> [params].  Returns NULL on success, else the reply
 * line to send.  max_size: message_size_limit (0 = none) for the SIZE=
 * check.
 */
const char *smtp_parse_mail(const char *args, long long max_size,
                            struct smtp_mail_args *out);

/* RCPT TO:<path> [params].  utf8_ok: SMTPUTF8 was given on MAIL. */
const char *smtp_parse_rcpt(const char *args, bool utf8_ok,
                            struct smtp_rcpt_args *out);

/*
 * EHLO/HELO argument: a domain or an address literal.  We are lenient as
 * RFC 5321 4.1.4 asks (no verification), but refuse what cannot be put in
 * a Received: header: empty, spaces, control or non-ASCII octets, longer
 * than SMTP_HELO_MAX.  Returns NULL or the reply line.
 */
const char *smtp_parse_helo(const char *args);

/*
 * Parse one path "<...>" (or "<>" when allow_null) at *p, advancing *p
 * past it.  Returns 0 on success, -1 syntax, -2 too long, -3 non-ASCII
 * when !utf8_ok.  Exposed for the unit tests.
 */
int smtp_parse_path(const char **p, bool allow_null, bool utf8_ok,
                    struct smtp_addr *out);

/* Most addresses taken from one header field value. */
#define SMTP_HDR_ADDRS_MAX 32

/*
 * The mailboxes of an RFC 5322 address-list header value (From:, unfolded,
 * NUL-terminated): display names, comments and groups are skipped, each
 * addr-spec or angle-addr is checked with smtp_parse_path (UTF-8
 * allowed, source routes dropped).  Returns how many (0..max) were
 * stored, or -1 when the value is malformed or holds more than max: the
 * caller must then refuse, never guess.
 */
int smtp_parse_header_addrs(const char *value, struct smtp_addr *out,
                            int max);

#endif
