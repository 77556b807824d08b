/*
 * auth-userdb.h - the auth role's userdb lookup socket: the Dovecot
 * master/userdb protocol subset of ../shared/spec/dovecot-auth-protocol.md
 * section 3 (handshake, USER -> USER/NOTFOUND/FAIL), served on the auth
 * role's event loop; the lookups themselves run on the auth server's
 * worker threads (backends may block, e.g. NSS behind getpwnam).
 *
 * Used by the SMTP role (src/userdbc.c) to ask whether a local recipient
 * exists.  The socket is private (mode 0600, owned by cfg->user): nothing
 * secret is ever answered, only existence, the canonical name and userdb
 * fields (uid, gid, home, ...).
 */
#ifndef MSAGATE_AUTH_USERDB_H
#define MSAGATE_AUTH_USERDB_H

struct event_base;
struct auth_server;
struct backend_chain;
struct userdb_server;

/* Longest line read from a peer, LF included (Dovecot's MAX_INBUF_SIZE). */
#define USERDB_MAX_LINE		1024
/* Lookups in flight per connection; more input waits until some finish. */
#define USERDB_MAX_INFLIGHT	256
/* Connections at once; more are closed at accept. */
#define USERDB_MAX_CLIENTS	256
/* Handshake versions we send and accept (major must match). */
#define USERDB_PROTO_MAJOR	1
#define USERDB_PROTO_MINOR	1

/*
 * userdb_server_new - serve listen_fd (a listening UNIX socket, taken
 * over), or only connections added with userdb_server_add_client() when
 * listen_fd is -1.  Lookups go to chain through srv's worker threads.
 */
struct userdb_server *userdb_server_new(struct event_base *base, int listen_fd,
    struct auth_server *srv, struct backend_chain *chain);
/* Serve an already connected socket (takes ownership); -1 when refused. */
int userdb_server_add_client(struct userdb_server *u, int fd);
/* Stop accepting new connections (graceful stop). */
void userdb_server_stop_listening(struct userdb_server *u);
/* Connections right now. */
unsigned userdb_server_client_count(const struct userdb_server *u);
/* Close everything; lookups still queued are forgotten.  Call before
 * auth_server_free() (which then completes their jobs). */
void userdb_server_free(struct userdb_server *u);

#endif
