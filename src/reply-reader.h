/*
 * reply-reader.h - the client side of SMTP and LMTP, shared by the smtp
 * and lmtp delivery methods: a buffer over a read function (plain read(2)
 * or TLS), bounded lines, multi-line replies with their code and last
 * line, and the enhanced status code in a reply's text; on top of that a
 * client connection (reader, writer, last reply) that sends commands,
 * RCPT TO for each recipient and the message after DATA, and the
 * recipients' verdicts from a reply.
 */
#ifndef MSAGATE_REPLY_READER_H
#define MSAGATE_REPLY_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "delivery.h"

#define REPLY_LINE_MAX  1024    /* longer reply lines are cut (RFC: 512) */
#define REPLY_MAX_LINES 100     /* lines of one multi-line reply */

/* Like read(2): > 0 bytes, 0 at EOF, -1 with errno. */
typedef ssize_t reply_read_fn(void *ctx, void *buf, size_t len);
/* Each line of a reply (idx 0 first), e.g. for EHLO keywords. */
typedef void reply_line_fn(void *arg, int idx, const char *line);
/* Write all n bytes: 0, or -1 with errno. */
typedef int reply_write_fn(void *ctx, const char *p, size_t n);

struct reply_reader {
	reply_read_fn *read;
	void *ctx;
	char buf[4096];
	size_t len, off;
};

void reply_reader_init(struct reply_reader *r, reply_read_fn *read, void *ctx);

/* Bytes received and not read yet (after a 220 to STARTTLS: must be 0). */
size_t reply_reader_pending(const struct reply_reader *r);

/* One line, CRLF or LF stripped, cut at size; -1 at EOF (ECONNRESET) or error. */
int reply_read_line(struct reply_reader *r, char *line, size_t size);

/*
 * One reply, multi-line or not: *code and its last line (printable) in
 * text; each line to each(arg, ...) if each is not NULL.  -1 on a
 * connection error, or EPROTO for a malformed or endless reply.
 */
int reply_read(struct reply_reader *r, int *code, char *text, size_t textlen,
    reply_line_fn *each, void *arg);

/*
 * The enhanced status code ("5.1.1", RFC 3463) at the start of a reply's
 * text (the line after the code, "250 2.1.5 Ok" -> "2.1.5"), or
 * "<class>.0.0" from the code if it has none or it does not fit in out.
 */
void reply_dsn(int code, const char *text, char *out, size_t len);

/* One client connection: read and write both get ctx. */
struct reply_client {
	struct reply_reader rd;
	reply_write_fn *write;
	void *ctx;
	int code;                    /* last reply */
	char text[REPLY_LINE_MAX];   /* last reply, its last line (printable) */
};

void reply_client_init(struct reply_client *cl, reply_read_fn *read,
    reply_write_fn *write, void *ctx);

/* Read one reply into cl->code / cl->text; -1 on error (see reply_read). */
int reply_client_read(struct reply_client *cl);

/*
 * Send one command (fmt and CRLF, at most 2 KiB; E2BIG if longer) and
 * read its reply into cl->code / cl->text, each of its lines also to
 * each(arg, ...) if each is not NULL (EHLO keywords); -1 on a connection
 * error.  The line is wiped afterwards (it may hold AUTH data).
 */
int reply_command_each(struct reply_client *cl, reply_line_fn *each, void *arg,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* reply_command(cl, fmt, ...): the same without each */
#define reply_command(cl, ...) reply_command_each((cl), NULL, NULL, __VA_ARGS__)

/*
 * The last reply as recipient r's verdict: 2xx sent, 5xx bounce, else
 * defer, with the reply's enhanced status code.  The detail names stage
 * and relay ("... (in reply to RCPT TO from smtp:[host]:25)"), or only
 * the relay when stage is NULL ("... (in reply to lmtp:unix:/path)").
 */
void reply_set_rcpt(struct delivery_rcpt *r, const struct reply_client *cl,
    const char *stage, const char *relay);

/*
 * A whole-transaction failure (the last reply refused stage): its verdict
 * for every recipient not yet decided - 5xx bounce, else defer; the
 * reply's enhanced status code for 4xx/5xx, else 4.5.0.
 */
void reply_set_all(struct delivery_rcpt *r, size_t n, const bool *decided,
    const struct reply_client *cl, const char *stage, const char *relay);

/*
 * RCPT TO for each of r[0..n); a refusal decides that recipient
 * (reply_set_rcpt with stage and relay, decided[i] set).  *accepted is
 * how many were accepted.  -1 on a connection error.
 */
int reply_rcpt_to(struct reply_client *cl, struct delivery_rcpt *r, size_t n,
    bool *decided, const char *stage, const char *relay, size_t *accepted);

/* After a 354 to DATA: the message dot-stuffed and the final dot; -1 on error. */
int reply_send_message(struct reply_client *cl, const struct delivery_msg *msg);

#endif
