/*
 * reply-reader.c - reading SMTP/LMTP replies on the client side (see
 * reply-reader.h).
 */
#include <errno.h>
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
					errno = ECONNRESET;
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
