/*
 * reply-reader.h - the client side of SMTP and LMTP replies, shared by the
 * smtp and lmtp delivery methods: a buffer over a read function (plain
 * read(2) or TLS), bounded lines, multi-line replies with their code and
 * last line, and the enhanced status code in a reply's text.
 */
#ifndef MSAGATE_REPLY_READER_H
#define MSAGATE_REPLY_READER_H

#include <stddef.h>
#include <sys/types.h>

#define REPLY_LINE_MAX  1024    /* longer reply lines are cut (RFC: 512) */
#define REPLY_MAX_LINES 100     /* lines of one multi-line reply */

/* Like read(2): > 0 bytes, 0 at EOF, -1 with errno. */
typedef ssize_t reply_read_fn(void *ctx, void *buf, size_t len);
/* Each line of a reply (idx 0 first), e.g. for EHLO keywords. */
typedef void reply_line_fn(void *arg, int idx, const char *line);

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

#endif
