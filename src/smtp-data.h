/*
 * smtp-data.h - the incremental DATA filter: turns the octets a client
 * sends after "354" into the message to store.  Pure (no I/O, no
 * allocation), fed in chunks of any size, unit-tested byte by byte.
 *
 * - dot-unstuffing (RFC 5321 4.5.2);
 * - only CRLF "." CRLF ends the message;
 * - any bare CR or bare LF marks the message bad (SMTP smuggling,
 *   CVE-2023-51764 class): "\n.\n", "\r.\r", "\n.\r\n", "\r\n.\n" never end
 *   it, the caller rejects it after the real end;
 * - a NUL octet marks it bad too (no 7bit or 8BITMIME message holds one, and
 *   a next hop that drops NULs would read "\0." as a line starting with ".");
 * - counts the message size (after unstuffing) against a limit;
 * - finds the end of the header section and notes whether Message-ID:
 *   and Date: were present (for the RFC 6409 section 8 fix-ups).
 */
#ifndef MSAGATE_SMTP_DATA_H
#define MSAGATE_SMTP_DATA_H

#include <stdbool.h>
#include <stddef.h>

/* Output may be this much longer than the input of one call. */
#define SMTP_DATA_SLACK 2

struct smtp_data {
	long long size;          /* octets of message produced so far */
	long long max_size;      /* 0 = unlimited */
	bool bare;               /* a bare CR or LF was seen */
	bool nul;                /* a NUL octet was seen */
	bool too_big;            /* size > max_size */
	bool done;               /* CRLF.CRLF seen */

	bool in_headers;         /* still inside the header section */
	long long header_end;    /* when !in_headers: offset of the first octet
	                            after the header fields (the empty line or
	                            the first non-header line, or the end) */
	bool have_msgid, have_date;
	unsigned received;       /* Received: fields in the header section */

	/* private state */
	unsigned char st;        /* input state */
	unsigned char hst;       /* header line state */
	unsigned char hlen;
	char hname[12];          /* lower-cased start of the field name */
	long long line_start;    /* offset of the current output line */
};

void smtp_data_init(struct smtp_data *d, long long max_size);

/*
 * Feed n input octets.  The message octets produced are written to out
 * (room for n + SMTP_DATA_SLACK octets) and counted in *outlen.  Returns
 * the number of input octets consumed: n, or fewer when the end of data
 * was reached (then d->done is set and the rest is the next command).
 */
size_t smtp_data_feed(struct smtp_data *d, const char *in, size_t n,
                      char *out, size_t *outlen);

#endif
