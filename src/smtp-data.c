/*
 * smtp-data.c - the incremental DATA filter (see smtp-data.h): a byte
 * state machine for dot-unstuffing, end-of-data detection and bare CR/LF
 * detection, plus a second one that tracks the header section of the
 * produced message.
 */
#include <ctype.h>
#include <string.h>

#include "smtp-data.h"

/* Input states, relative to the line structure the client sends. */
enum {
	S_BOL,      /* at the start of a line (after CRLF, or start of data) */
	S_TEXT,     /* inside a line */
	S_CR,       /* CR seen inside a line, held back */
	S_DOT,      /* "." at the start of a line, held back */
	S_DOTCR,    /* "." CR at the start of a line, held back */
};

/* Header line states. */
enum {
	H_BOL,      /* at the start of a header line */
	H_NAME,     /* in the field name */
	H_NAMEWSP,  /* obsolete WSP between the name and ':' */
	H_VALUE,    /* after ':' or in a continuation line, until LF */
	H_BLANKCR,  /* CR at the start of a line */
};

void
smtp_data_init(struct smtp_data *d, long long max_size)
{
	memset(d, 0, sizeof(*d));
	d->max_size = max_size;
	d->st = S_BOL;
	d->in_headers = true;
	d->hst = H_BOL;
}

static void
header_end(struct smtp_data *d, long long at)
{
	d->in_headers = false;
	d->header_end = at;
}

/* The name of a complete field is known: is it one we look for? */
static void
header_name(struct smtp_data *d)
{
	if (d->hlen == 10 && memcmp(d->hname, "message-id", 10) == 0)
		d->have_msgid = true;
	else if (d->hlen == 4 && memcmp(d->hname, "date", 4) == 0)
		d->have_date = true;
	else if (d->hlen == 8 && memcmp(d->hname, "received", 8) == 0 &&
	    d->received < 65535)
		d->received++;
}

/* Track the header section over one produced octet at offset off. */
static void
header_byte(struct smtp_data *d, unsigned char c, long long off)
{
	switch (d->hst) {
	case H_BOL:
		d->line_start = off;
		if (c == '\r')
			d->hst = H_BLANKCR;
		else if ((c == ' ' || c == '\t') && off > 0)
			d->hst = H_VALUE;       /* folded continuation */
		else if (c > 32 && c < 127 && c != ':') {
			d->hname[0] = (char)tolower(c);
			d->hlen = 1;
			d->hst = H_NAME;
		} else
			header_end(d, off);     /* not a header line: body */
		break;
	case H_NAME:
		if (c == ':') {
			header_name(d);
			d->hst = H_VALUE;
		} else if (c > 32 && c < 127) {
			if (d->hlen < sizeof(d->hname))
				d->hname[d->hlen] = (char)tolower(c);
			if (d->hlen < 255)
				d->hlen++;
		} else if (c == ' ' || c == '\t')
			d->hst = H_NAMEWSP;
		else
			header_end(d, d->line_start);
		break;
	case H_NAMEWSP:
		if (c == ':') {
			header_name(d);
			d->hst = H_VALUE;
		} else if (c != ' ' && c != '\t')
			header_end(d, d->line_start);
		break;
	case H_VALUE:
		if (c == '\n')
			d->hst = H_BOL;
		break;
	case H_BLANKCR:
		/* The empty line ends the header section (or a bare CR: the
		 * message is refused anyway). */
		header_end(d, d->line_start);
		break;
	}
}

/* Append one produced octet. */
static inline void
emit(struct smtp_data *d, char c, char *out, size_t *o)
{
	if (d->in_headers)
		header_byte(d, (unsigned char)c, d->size);
	out[(*o)++] = c;
	d->size++;
}

size_t
smtp_data_feed(struct smtp_data *d, const char *in, size_t n, char *out,
               size_t *outlen)
{
	size_t i, o = 0;

	for (i = 0; i < n && !d->done; i++) {
		char c = in[i];

		switch (d->st) {
		case S_BOL:
			if (c == '.') {
				d->st = S_DOT;
				continue;
			}
			break;          /* like S_TEXT below */
		case S_TEXT:
			break;
		case S_CR:
			if (c == '\n') {
				emit(d, '\r', out, &o);
				emit(d, '\n', out, &o);
				d->st = S_BOL;
				continue;
			}
			d->bare = true;         /* CR not followed by LF */
			emit(d, '\r', out, &o);
			d->st = S_TEXT;
			break;
		case S_DOT:
			if (c == '\r') {
				d->st = S_DOTCR;
				continue;
			}
			/* "." followed by more text: the dot was stuffing
			 * (4.5.2: the first character is deleted). */
			d->st = S_TEXT;
			break;
		case S_DOTCR:
			if (c == '\n') {
				d->done = true;         /* CRLF "." CRLF */
				continue;
			}
			/* ".\r" then something else: a bare CR. */
			d->bare = true;
			emit(d, '\r', out, &o);
			d->st = S_TEXT;
			break;
		}
		/* An ordinary octet inside a line (S_TEXT). */
		if (c == '\r')
			d->st = S_CR;
		else if (c == '\n') {
			/* Bare LF.  The next line does NOT start a line in the
			 * SMTP sense, so "\n.\n" or "\n.\r\n" cannot end data. */
			d->bare = true;
			emit(d, c, out, &o);
			d->st = S_TEXT;
		} else {
			if (c == '\0')
				d->nul = true;
			emit(d, c, out, &o);
			d->st = S_TEXT;
		}
	}
	if (d->done && d->in_headers)
		header_end(d, d->size);
	if (d->max_size > 0 && d->size > d->max_size)
		d->too_big = true;
	*outlen = o;
	return i;
}
