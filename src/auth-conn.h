/*
 * auth-conn.h - the connection layer shared by the auth role's two
 * line-based servers: the Dovecot auth protocol server (src/auth-server.c)
 * and the userdb lookup socket (src/auth-userdb.c).
 *
 * A pool is one server's set of connections: it accepts on the server's
 * listening sockets, refuses connections beyond its cap, and numbers them
 * for the log.  A connection wraps a bufferevent: it reads LF-terminated
 * lines of at most class->max_line bytes (a longer line or a NUL byte
 * ends the connection), hands each one to its owner, writes replies, and
 * stops reading while more than class->out_throttle reply bytes are unsent
 * or the owner says it is busy; it reads again once that has passed.
 *
 * The owner (struct auth_client, struct userdb_conn) embeds a struct
 * auth_conn and is passed as `void *owner` to the class's callbacks.
 * Everything here runs on the event loop thread.
 */
#ifndef MSAGATE_AUTH_CONN_H
#define MSAGATE_AUTH_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/queue.h>

struct bufferevent;
struct event_base;
struct evconnlistener;

/* What differs between the servers: limits, log wording, callbacks. */
struct auth_conn_class {
	const char *name;       /* log prefix: "auth", "userdb" */
	const char *peer;       /* "<name>: BUG: <peer> <id> <what>; disconnecting" */
	size_t max_line;        /* longest line read, LF included */
	size_t out_throttle;    /* stop reading above this many unsent bytes */
	size_t write_lowat;     /* look at reading again when output drains to this */
	bool log_errors;        /* debug-log a socket error at disconnect */
	/* a newly accepted socket (taken over); the server's add_client */
	int (*add)(void *server, int fd);
	/* one line, LF removed, NUL-terminated (no other NUL in it); false
	 * when the owner was freed */
	bool (*line)(void *owner, char *line);
	/* a line longer than max_line: log and free the owner */
	void (*too_long)(void *owner);
	/* free the owner (which calls auth_conn_close) */
	void (*free)(void *owner);
	/* NULL, or true while no more lines should be read */
	bool (*busy)(const void *owner);
};

struct auth_conn {
	LIST_ENTRY(auth_conn) entry;        /* the pool's */
	struct auth_conn_pool *pool;
	struct bufferevent *bev;
	void *owner;
	unsigned int id;                    /* for the log (and Dovecot's CUID) */
	bool paused;                        /* reading is off */
};

struct auth_conn_pool {
	const struct auth_conn_class *cls;
	struct event_base *base;
	void *server;                       /* passed to cls->add */
	unsigned int max_conns;             /* connections at once */
	LIST_HEAD(, auth_conn) conns;
	unsigned int n_conns;
	unsigned int next_id;
};

void auth_conn_pool_init(struct auth_conn_pool *p,
    const struct auth_conn_class *cls, struct event_base *base, void *server,
    unsigned int max_conns);
/* Free the owner of every connection (cls->free). */
void auth_conn_pool_close_all(struct auth_conn_pool *p);

/*
 * auth_conn_listen - accept on fd (a listening socket, taken over) into
 * p through cls->add; accept errors are logged.  NULL on failure.
 */
struct evconnlistener *auth_conn_listen(struct auth_conn_pool *p, int fd);

/*
 * auth_conn_admit - may p take one more connection on fd?  false when it
 * is full (logged, fd closed); else fd is made non-blocking, close-on-exec.
 */
bool auth_conn_admit(struct auth_conn_pool *p, int fd);
/*
 * auth_conn_open - c (inside owner) serves fd from now on: numbered, in p,
 * reading.  -1 (fd closed, c not in p) when libevent cannot take fd.
 */
int auth_conn_open(struct auth_conn *c, struct auth_conn_pool *p, int fd,
    void *owner);
/* auth_conn_close - out of its pool, socket closed (the owner frees c). */
void auth_conn_close(struct auth_conn *c);

/* Queue output; reading stops while too much of it is unsent. */
void auth_conn_write(struct auth_conn *c, const void *buf, size_t len);
void auth_conn_printf(struct auth_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/*
 * auth_conn_update_read - start or stop reading as the output and the
 * owner's busy() now say; lines already buffered are handled at once
 * when reading starts again (so the owner may be freed).
 */
void auth_conn_update_read(struct auth_conn *c);

/* auth_conn_proto_error - Dovecot's answer to a broken peer: log "BUG",
 * free the owner. */
void auth_conn_proto_error(struct auth_conn *c, const char *what);

#endif
