/*
 * auth-proto.h - pure helpers for the Dovecot auth protocol lines
 * (../shared/spec/dovecot-auth-protocol.md), shared by the auth role's
 * server (src/auth-server.c), its userdb socket (src/auth-userdb.c) and the
 * client (src/authc.c).
 *
 * Nothing here allocates, does I/O or keeps state: the caller owns the
 * buffers.  A typical reader loop is
 *
 *	while ((r = auth_proto_line(buf, len, AUTH_PROTO_MAX_LINE, &n)) > 0) {
 *		buf[n - 1] = '\0';               (replace the LF)
 *		argc = auth_proto_split(buf, argv, AUTH_PROTO_MAX_ARGS);
 *		... (unescape every field except base64 with auth_proto_unescape)
 *		consume n bytes
 *	}
 *	if (r < 0) -> the line is too long: disconnect
 */
#ifndef MSAGATE_AUTH_PROTO_H
#define MSAGATE_AUTH_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sbuf;

/* Maximum line length, LF included (AUTH_CLIENT_MAX_LINE_LENGTH). */
#define AUTH_PROTO_MAX_LINE	16384
/* Most fields we ever look at on one line; the rest are left joined. */
#define AUTH_PROTO_MAX_ARGS	64
/* Version we speak as a server (Dovecot 2.3). */
#define AUTH_PROTO_MAJOR	1
#define AUTH_PROTO_MINOR	2
/* Stop reading a peer while this many reply bytes are unsent. */
#define AUTH_PROTO_OUTBUF_THROTTLE	(50 * 1024)
/* The server forgets a request this long after AUTH (seconds). */
#define AUTH_PROTO_REQUEST_TIMEOUT_SECS	150

/*
 * auth_proto_line - find the first complete line in buf[0..len).
 * Returns 1 and sets *linelen (LF included) when a line is there, 0 when
 * more input is needed, -1 when no LF occurs within the first max bytes
 * (the peer sent an over-long line: disconnect).
 */
int auth_proto_line(const char *buf, size_t len, size_t max, size_t *linelen);

/*
 * auth_proto_split - split a NUL-terminated line (without its LF) at TABs
 * in place.  Fills at most max pointers into argv and returns how many.
 * When there are more fields than max, the last pointer holds the rest
 * of the line, TABs included.  Empty fields are kept ("" entries).
 * The fields are still escaped.
 */
size_t auth_proto_split(char *line, char **argv, size_t max);

/*
 * auth_proto_unescape - undo Dovecot tab-escaping in place (\001 followed
 * by 0 1 t r n; any other byte stands for itself).  Returns false for a
 * dangling \001 at the end.  A decoded NUL ("\0010") truncates the C
 * string, so callers that care can compare strlen before/after; use
 * auth_proto_unescape_len() to learn the real length.
 */
bool auth_proto_unescape(char *s);
/* As above; *outlen gets the decoded length (which may include NULs). */
bool auth_proto_unescape_len(char *s, size_t *outlen);

/* auth_proto_escape - append s to out, escaping \001 TAB CR LF. */
void auth_proto_escape(struct sbuf *out, const char *s);

/*
 * auth_proto_param - if field is "key=value" return value, if field is
 * exactly "key" (a bare boolean) return "", else NULL.  Case-sensitive,
 * like Dovecot.
 */
const char *auth_proto_param(const char *field, const char *key);

/*
 * auth_proto_service - if field is "service=<s>" or "protocol=<s>" (its
 * other name in Dovecot's requests) return <s>, else NULL.
 */
const char *auth_proto_service(const char *field);

/*
 * auth_proto_version - is the split line argv[0..argc) a handshake
 * "VERSION <major> <minor>" with our major?  Sets *minor when it is.
 */
bool auth_proto_version(char *const *argv, size_t argc, unsigned int major,
    unsigned int *minor);

/* auth_proto_parse_id - request id: decimal, 1 .. 2^32-1, no sign/space. */
bool auth_proto_parse_id(const char *s, uint32_t *id);

/* auth_proto_parse_uint - decimal unsigned int (0 allowed), for VERSION/CPID. */
bool auth_proto_parse_uint(const char *s, unsigned int *out);

/*
 * auth_proto_b64_ok - the base64 of resp= / CONT: RFC 4648 alphabet with
 * '=' padding, length a multiple of 4; "" and "=" (empty response) are
 * accepted too.
 */
bool auth_proto_b64_ok(const char *s);

#endif
