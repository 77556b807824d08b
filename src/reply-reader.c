/*
 * reply-reader.c - the client side of SMTP/LMTP for the delivery methods:
 * reading replies, sending commands and the message, and the recipients'
 * verdicts from a reply (see reply-reader.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "delivery.h"
#include "reply-reader.h"

void
reply_reader_init(struct reply_reader *r, reply_read_fn *read, void *ctx)
{
	r->read = read;
	r->ctx = ctx;
	r->len = r->off = 0;
}

size_t
reply_reader_pending(const struct reply_reader *r)
{
	return r->len - r->off;
}

int
reply_read_line(struct reply_reader *r, char *line, size_t size)
{
	size_t n = 0;

	for (;;) {
		if (r->off == r->len) {
			ssize_t got;

			errno = 0;
			got = r->read(r->ctx, r->buf, sizeof(r->buf));
			if (got <= 0) {
				if (got == 0)
					errno = 0;      /* the peer closed: see delivery_set_all_lost */
				return -1;
			}
			r->len = (size_t)got;
			r->off = 0;
		}
		char ch = r->buf[r->off++];

		if (ch == '\n')
			break;
		if (n + 1 < size)
			line[n++] = ch;
	}
	if (n > 0 && line[n - 1] == '\r')
		n--;
	line[n] = '\0';
	return 0;
}

int
reply_read(struct reply_reader *r, int *code, char *text, size_t textlen,
    reply_line_fn *each, void *arg)
{
	char line[REPLY_LINE_MAX];

	for (int i = 0; i < REPLY_MAX_LINES; i++) {
		if (reply_read_line(r, line, sizeof(line)) < 0)
			return -1;
		if (strlen(line) < 3 || line[0] < '2' || line[0] > '5' ||
		    line[1] < '0' || line[1] > '9' || line[2] < '0' || line[2] > '9' ||
		    (line[3] != '\0' && line[3] != ' ' && line[3] != '-')) {
			errno = EPROTO;
			return -1;
		}
		if (each != NULL)
			each(arg, i, line);
		if (line[3] == '-')
			continue;
		*code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
		delivery_printable(text, textlen, line);
		return 0;
	}
	errno = EPROTO;
	return -1;
}

void
reply_dsn(int code, const char *text, char *out, size_t len)
{
	const char *t = strlen(text) > 4 ? text + 4 : "";
	int cls = code / 100;
	size_t n;

	if (t[0] == '0' + cls && t[1] == '.' &&
	    (n = strspn(t, "0123456789.")) >= 5 && n < len) {
		memcpy(out, t, n);
		out[n] = '\0';
		return;
	}
	snprintf(out, len, "%d.0.0", cls);
}

void
reply_client_init(struct reply_client *cl, reply_read_fn *read,
    reply_write_fn *write, void *ctx)
{
	reply_reader_init(&cl->rd, read, ctx);
	cl->write = write;
	cl->ctx = ctx;
	cl->code = 0;
	cl->text[0] = '\0';
}

int
reply_client_read(struct reply_client *cl)
{
	return reply_read(&cl->rd, &cl->code, cl->text, sizeof(cl->text), NULL,
	    NULL);
}

int
reply_command_each(struct reply_client *cl, reply_line_fn *each, void *arg,
    const char *fmt, ...)
{
	char buf[2048];
	va_list ap;
	int n, rc;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 2, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(buf) - 2)
		return errno = E2BIG, -1;
	memcpy(buf + n, "\r\n", 3);
	rc = cl->write(cl->ctx, buf, (size_t)n + 2) < 0 ? -1 :
	    reply_read(&cl->rd, &cl->code, cl->text, sizeof(cl->text), each, arg);
	explicit_bzero(buf, sizeof(buf));    /* may have held AUTH data */
	return rc;
}

void
reply_set_rcpt(struct delivery_rcpt *r, const struct reply_client *cl,
    const char *stage, const char *relay)
{
	char dsn[16];

	reply_dsn(cl->code, cl->text, dsn, sizeof(dsn));
	if (cl->code / 100 == 2)
		delivery_set(r, DELIVERY_SENT, dsn, "%s (%s)", cl->text, relay);
	else if (stage == NULL)
		delivery_set(r, cl->code / 100 == 5 ? DELIVERY_BOUNCE :
		    DELIVERY_DEFER, dsn, "%s (in reply to %s)", cl->text, relay);
	else
		delivery_set(r, cl->code / 100 == 5 ? DELIVERY_BOUNCE :
		    DELIVERY_DEFER, dsn, "%s (in reply to %s from %s)", cl->text,
		    stage, relay);
	r->remote_reply = true;
}

void
reply_set_all(struct delivery_rcpt *r, size_t n, const bool *decided,
    const struct reply_client *cl, const char *stage, const char *relay)
{
	char dsn[16], why[512];
	int cls = cl->code / 100;

	reply_dsn(cl->code, cl->text, dsn, sizeof(dsn));
	snprintf(why, sizeof(why), "%.250s (in reply to %s from %.200s)",
	    cl->text, stage, relay);
	delivery_set_all(r, n, decided, cls == 5 ? DELIVERY_BOUNCE :
	    DELIVERY_DEFER, cls == 5 || cls == 4 ? dsn : "4.5.0", why, true);
}

int
reply_rcpt_to(struct reply_client *cl, struct delivery_rcpt *r, size_t n,
    bool *decided, const char *stage, const char *relay, size_t *accepted)
{
	*accepted = 0;
	for (size_t i = 0; i < n; i++) {
		if (reply_command(cl, "RCPT TO:<%s>", r[i].address) < 0)
			return -1;
		if (cl->code / 100 == 2) {
			(*accepted)++;
			continue;
		}
		reply_set_rcpt(&r[i], cl, stage, relay);
		decided[i] = true;
	}
	return 0;
}

int
reply_send_message(struct reply_client *cl, const struct delivery_msg *msg)
{
	if (delivery_copy_body(msg, DELIVERY_COPY_DOTSTUFF, cl->write, cl->ctx) < 0)
		return -1;
	return cl->write(cl->ctx, ".\r\n", 3);
}
