/*
 * delivery.h - the delivery-method interface of the queue manager.
 *
 * A method (maildir, lmtp, discard; later smtp for onward relay) is a
 * struct delivery_method: init() once in the queue role, deliver() from a
 * delivery worker thread for one message and one or more recipients (more
 * than one only when the method says `batch`), free() at the end.
 * deliver() must fill in every recipient's status; it may block (it runs
 * in a worker thread, never on the queue role's event loop) but must bound
 * every wait with a timeout.
 *
 * Also here: the helpers the methods share (streaming the queued message
 * with CRLF->LF conversion or SMTP dot-stuffing, address helpers, and for
 * lmtp and smtp connecting with timeouts).
 */
#ifndef MSAGATE_DELIVERY_H
#define MSAGATE_DELIVERY_H

#include <sys/socket.h>

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "qfile.h"

#define DELIVERY_DETAIL_MAX 400

enum delivery_status {
	DELIVERY_SENT,
	DELIVERY_DEFER,              /* temporary: retried later */
	DELIVERY_BOUNCE              /* permanent: a DSN goes to the sender */
};

/* One recipient handed to a method, with the method's verdict. */
struct delivery_rcpt {
	const char *address;         /* final address (after aliases) */
	const char *orig;            /* as in the envelope */
	/* filled in by deliver(): */
	enum delivery_status status;
	char dsn[16];                /* enhanced status code, e.g. "5.1.1" */
	char detail[DELIVERY_DETAIL_MAX]; /* printable ASCII, no CR/LF/TAB */
	bool remote_reply;           /* detail is the remote server's reply */
};

/* The message being delivered. */
struct delivery_msg {
	const char *qid;
	const struct qenvelope *env;
	int fd;                      /* the queue file; read it with pread() */
	long long body_offset;       /* where the message starts */
	long long body_size;
};

struct delivery_method {
	const char *name;
	bool batch;                  /* deliver() may take several recipients */
	/* Set up from the configuration; NULL with *error (malloc'd). */
	void *(*init)(const struct msagate_config *cfg, char **error);
	/* For log lines: "maildir", "lmtp:unix:/run/dovecot/lmtp", ... */
	const char *(*relay)(void *ctx);
	void (*deliver)(void *ctx, const struct delivery_msg *msg,
	    struct delivery_rcpt *rcpts, size_t n);
	void (*free)(void *ctx);
};

extern const struct delivery_method delivery_maildir;
extern const struct delivery_method delivery_lmtp;
extern const struct delivery_method delivery_discard;
extern const struct delivery_method delivery_smtp;    /* onward relay */

/* The method called name, or NULL. */
const struct delivery_method *delivery_method_find(const char *name);

/* Set a recipient's verdict; fmt's result is made printable and bounded. */
void delivery_set(struct delivery_rcpt *r, enum delivery_status st,
    const char *dsn, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/*
 * delivery_set_all - the same verdict for every recipient of r[0..n) not
 * yet decided (decided may be NULL: all of them); remote says whether it
 * is the peer's reply.
 */
void delivery_set_all(struct delivery_rcpt *r, size_t n, const bool *decided,
    enum delivery_status st, const char *dsn, const char *why, bool remote);

/*
 * The connection to relay was lost during stage (err an errno value, 0
 * when the peer closed it):
 * defer every recipient not yet decided with 4.4.2.
 */
void delivery_set_all_lost(struct delivery_rcpt *r, size_t n,
    const bool *decided, const char *relay, const char *stage, int err);

/* Copy s into dst (size len) with control characters and TAB as '?'. */
void delivery_printable(char *dst, size_t len, const char *s);

/* How delivery_copy_body() writes the message. */
enum delivery_copy_mode {
	DELIVERY_COPY_LF,            /* CRLF -> LF (Maildir files) */
	DELIVERY_COPY_DOTSTUFF       /* CRLF kept, leading '.' doubled, ends in CRLF */
};

/*
 * Stream the message (msg->fd from body_offset) through out() in chunks.
 * Returns 0, or -1 when reading failed (errno) or out() returned -1.
 */
int delivery_copy_body(const struct delivery_msg *msg,
    enum delivery_copy_mode mode,
    int (*out)(void *arg, const char *p, size_t n), void *arg);

/*
 * Split "local@domain" into a lowercased local part without the +tag
 * (delimiter: one character or "") and a lowercased domain.  Returns -1
 * for an address with no '@', an empty part, or parts too long for the
 * buffers.
 */
int delivery_split_address(const char *address, const char *delimiter,
    char *local, size_t llen, char *domain, size_t dlen);

/* true if domain is one of cfg->relay.local_domains (case-insensitive). */
bool delivery_domain_is_local(const struct msagate_config *cfg,
    const char *domain);

#define DELIVERY_CONNECT_SECS 30     /* connect() to an LMTP/SMTP server */

/*
 * One connection attempt (lmtp, smtp): a close-on-exec socket of family,
 * type and protocol connected to sa within DELIVERY_CONNECT_SECS, then
 * blocking with an io_secs timeout on each read and write.  The fd, or -1
 * with "connect to <label>: <error>" in why.
 */
int delivery_connect_addr(int family, int type, int protocol,
    const struct sockaddr *sa, socklen_t len, const char *label, int io_secs,
    char *why, size_t wlen);

/*
 * Resolve host and port, and connect (delivery_connect_addr) to the first
 * of its addresses that answers.  The fd, or -1 with why: the resolver's
 * error, no address, or the last connect failure (naming label).
 */
int delivery_connect_host(const char *host, const char *port,
    const char *label, int io_secs, char *why, size_t wlen);

#endif
