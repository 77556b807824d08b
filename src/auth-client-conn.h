/*
 * auth-client-conn.h - the connection core shared by the two clients of
 * the auth role's sockets: src/authc.c (Dovecot auth client protocol,
 * ../shared/spec/dovecot-auth-protocol.md sections 0-2) and src/userdbc.c
 * (the userdb/master subset, section 3).  Both speak LF-ended lines over
 * one UNIX stream socket that multiplexes many requests by id, and both
 * reconnect on demand; only the protocol on top differs.
 *
 * What the core does:
 *  - the non-blocking connect, logging "cannot connect" once until the
 *    next success ("connected to ... again");
 *  - a bounded line reader: a line longer than max_line bytes (LF not
 *    counted) or one with a NUL byte ends the connection;
 *  - a bounded output buffer, sent at once and wiped as it drains (the
 *    auth client's lines carry credentials);
 *  - the table of requests in flight: ids unique on the connection, never
 *    0, increasing; one timer per request.
 * What stays with each client: the greeting and handshake, building and
 * parsing the lines, the answers to its callers.
 *
 * A client embeds a struct acc_conn (initialised with acc_init) and puts a
 * struct acc_req in its request type.  The core tells the client
 * through struct acc_ops when the socket is connected, for every line, and
 * when the connection fails (with the client's own words for why); on
 * failure the client logs, calls acc_close() and fails its requests.
 * Per request the core allocates only the timer, per line nothing; the
 * only syscalls it makes once connected are recv() and send().
 */
#ifndef MSAGATE_AUTH_CLIENT_CONN_H
#define MSAGATE_AUTH_CLIENT_CONN_H

#include <sys/queue.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

/* The struct that holds member `m` at p (p != NULL). */
#define ACC_CONTAINER(p, type, m) \
	((type *)(void *)((char *)(p) - offsetof(type, m)))

struct acc_ops {
	/* Connected: queue the greeting with acc_write() (sent right after). */
	void (*connected)(void *arg);
	/* One line from the server: LF removed, NUL-terminated, writable. */
	void (*line)(void *arg, char *line);
	/*
	 * The connection is broken; why is one of the texts below, the errno
	 * text of a failed connect/recv/send, or NULL (nothing worth a log
	 * line).  The client must call acc_close() before returning.
	 */
	void (*down)(void *arg, const char *why);
	/* why for: the server closed it, over-long line, NUL byte in a line */
	const char *eof, *long_line, *nul;
	/* the server closing an idle connection (no request in flight): NULL */
	bool idle_eof_quiet;
};

/* The part of a request the core knows, embedded in the client's request. */
struct acc_req {
	TAILQ_ENTRY(acc_req) link;
	uint32_t id;
	struct event *timer;         /* NULL until acc_req_arm() */
};
TAILQ_HEAD(acc_req_list, acc_req);

/* One connection (open or not) to a socket; read-only for the client. */
struct acc_conn {
	struct event_base *base;
	const char *who;             /* log prefix, e.g. "auth client" */
	char *path;
	int timeout_ms;              /* per request */
	const struct acc_ops *ops;
	void *arg;
	int fd;                      /* -1: down */
	bool connecting, warned;
	struct event *rev, *wev;
	char *in;                    /* max_line + 2 bytes */
	size_t in_len, max_line;
	char *out;
	size_t out_len, out_cap, out_max;
	struct acc_req_list reqs;    /* in flight */
	uint32_t last_id;
};

/*
 * Set c up (not connected).  who must outlive c; max_line is the longest
 * line accepted from the server without its LF; out_max bounds the unsent
 * output.
 */
void acc_init(struct acc_conn *c, struct event_base *base, const char *who,
              const char *path, int timeout_ms, size_t max_line,
              size_t out_max, const struct acc_ops *ops, void *arg);
/* Close and free what acc_init made; the client has removed its requests. */
void acc_cleanup(struct acc_conn *c);

/*
 * Connect unless open.  0: connected (ops->connected ran) or connecting
 * (it runs later); -1: failed, errno set (logged once until a success).
 */
int acc_connect(struct acc_conn *c);
/* Close the socket and drop buffered input and output; no callback. */
void acc_close(struct acc_conn *c);

static inline bool
acc_is_open(const struct acc_conn *c)
{
	return c->fd >= 0;
}

/* Queue bytes for the server; false if out_max would be passed. */
bool acc_write(struct acc_conn *c, const char *p, size_t n);
/* Send what is queued as far as the socket takes it (rest: on EV_WRITE). */
void acc_flush(struct acc_conn *c);

/* Bytes queued and not sent yet. */
static inline size_t
acc_pending(const struct acc_conn *c)
{
	return c->out_len;
}

/* Give r the next free id and append it to c->reqs. */
void acc_req_add(struct acc_conn *c, struct acc_req *r);
/* Start r's timer: cb(arg) after c->timeout_ms. */
void acc_req_arm(struct acc_conn *c, struct acc_req *r, event_callback_fn cb,
                 void *arg);
/* The request in flight with this id, or NULL. */
struct acc_req *acc_req_find(const struct acc_conn *c, uint32_t id);
/* Take r out of c->reqs and stop its timer. */
void acc_req_remove(struct acc_conn *c, struct acc_req *r);

#endif
