/*
 * qfile.h - the on-disk queue: layout of state_dir and the format of one
 * queue file (envelope header, blank line, then the message as received,
 * with CRLF line ends).
 *
 * Layout under state_dir:
 *   incoming/ID   being written; removed at queue start-up if left over
 *   incoming/spare.N  a file kept for reuse (qspare.h); removed at
 *                 start-up and at a clean stop
 *   queue/ID      committed (fsynced, renamed, directory fsynced)
 *
 * Queue file header: "MSAGATE-QUEUE 1\n" then "key=value\n" lines, values
 * with no CR/LF/NUL: id, arrival (unix seconds), sender (without <>; empty
 * for the null sender), rcpt (one line each, in order), auth_user, client
 * (address), client_port, helo, tls (e.g. "TLSv1.3 TLS_AES_256_GCM_SHA384"),
 * listener ("submission" or "relay"), smtputf8 ("yes", only when MAIL had
 * SMTPUTF8), body ("8BITMIME", only when MAIL had BODY=8BITMIME).  Then one
 * empty line, then the message.  Unknown keys are ignored by readers.  The
 * message size is the file size minus body_offset.
 */
#ifndef MSAGATE_QFILE_H
#define MSAGATE_QFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <time.h>

#define QFILE_MAGIC "MSAGATE-QUEUE 1"
#define QID_LEN 16       /* uppercase hex characters */

struct qenvelope {
	char id[QID_LEN + 1];
	time_t arrival;
	char *sender;        /* "" = null sender */
	char **rcpts;
	size_t n_rcpts;
	char *auth_user;     /* NULL if none */
	char *client;
	unsigned client_port;
	char *helo;
	char *tls;           /* NULL if none */
	char *listener;
	bool smtputf8;       /* MAIL ... SMTPUTF8 (RFC 6531): "smtputf8=yes" */
	bool eightbit;       /* MAIL ... BODY=8BITMIME (RFC 6152): "body=8BITMIME" */
	long long body_offset; /* set by qfile_read_header: where the message starts */
};

/* Make a fresh queue id (time + counter + random), NUL-terminated. */
void qid_new(char out[QID_LEN + 1]);
/* true if s is a syntactically valid queue id. */
int qid_valid(const char *s);

/*
 * Serialise the envelope header (including the blank line) into a malloc'd
 * buffer; returns its length.  Values with CR/LF/NUL are refused (-1).
 */
long qfile_format_header(const struct qenvelope *env, char **out);

/* Read the header of an open queue file; 0 ok, -1 bad format. */
int qfile_read_header(FILE *fp, struct qenvelope *env);
void qenvelope_free(struct qenvelope *env);

/*
 * qfile_list_ids - the valid queue ids in the directory dfd (not moved:
 * read through a dup), sorted, i.e. in arrival order.  0, or -1 with errno.
 * Free with qfile_free_ids().
 */
int qfile_list_ids(int dfd, char ***ids, size_t *n);
void qfile_free_ids(char **ids, size_t n);
/* qsort/bsearch comparison of two (char *) queue ids. */
int qid_cmp(const void *a, const void *b);

/*
 * true if the open file fd starts with a queue header naming id (its
 * first two lines): a message written for that id, as opposed to a file
 * that was never written or still holds a recycled message (qspare.h).
 */
bool qfile_names_itself(int fd, const char *id);

/* state_dir/sub/id into buf; returns buf. */
char *qfile_path(char *buf, size_t len, const char *state_dir,
                 const char *sub, const char *id);

#endif
