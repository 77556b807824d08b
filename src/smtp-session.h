/*
 * smtp-session.h - one SMTP session of the SMTP role and the per-process
 * server state they share.  The session code is split by job:
 *   smtp-session.c   life cycle, I/O, line reading, command table + gates,
 *                    the simple commands (EHLO, MAIL, RCPT, STARTTLS...)
 *   smtp-cmd-auth.c  AUTH (RFC 4954) through the Dovecot auth client
 *   smtp-cmd-mail.c  MAIL and RCPT: policy checks, userdb lookups
 *   smtp-cmd-data.c  DATA: queue file, filter, fix-ups, commit
 *   smtp-policy.c    relay and sender decisions (pure)
 *   smtp-clients.c   sessions per client address
 *   role-smtp.c      listeners, limits, signals, the event loop
 */
#ifndef MSAGATE_SMTP_SESSION_H
#define MSAGATE_SMTP_SESSION_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>

#include <openssl/ssl.h>

#include "config.h"
#include "qfile.h"
#include "smtp-data.h"
#include "util.h"

struct event_base;
struct event;
struct bufferevent;
struct authc;
struct queuec;
struct queuec_req;
struct smtp_clients;
struct userdbc;
struct aliases;
struct sender_logins;
struct smtp_addr;
struct policy_client;

/* Process-wide state of the SMTP role. */
struct smtp_server {
	struct event_base *base;
	const struct msagate_config *cfg;
	SSL_CTX *ssl_ctx;
	struct authc *authc;
	struct queuec *queuec;
	TAILQ_HEAD(, smtp_session) sessions;
	int n_sessions;
	struct smtp_clients *clients;  /* sessions per client address */
	struct userdbc *userdbc;     /* does a local user exist? */
	struct aliases *aliases;     /* relay.aliases, NULL when none */
	bool aliases_broken;         /* configured but unreadable: 451 */
	struct sender_logins *logins;/* relay.sender_logins, NULL when none */
	bool logins_broken;
	time_t maps_checked;         /* last aliases/sender_logins refresh */
	bool stopping;               /* SIGTERM: finish DATA, then exit */
	bool retiring;               /* SIGUSR1: serve open sessions, then exit */
	struct event *stop_timer;
};

/* Session flags. */
enum {
	SF_HELO      = 0x0001,       /* HELO or EHLO done */
	SF_EHLO      = 0x0002,       /* ... and it was EHLO */
	SF_TLS       = 0x0004,       /* TLS active */
	SF_AUTH      = 0x0008,       /* authenticated */
	SF_WAIT      = 0x0010,       /* waiting for an async answer: no input */
	SF_CLOSING   = 0x0020,       /* flush the output, then free */
	SF_DISCARD   = 0x0040,       /* rest of an over-long line is dropped */
	SF_STARTTLS  = 0x0080,       /* 220 sent, switch when flushed */
	SF_BUSY      = 0x0100,       /* DATA in progress (SIGTERM waits) */
	SF_OUTFULL   = 0x0200,       /* client not reading replies: pause */
	SF_EOF       = 0x0400,       /* client closed its side: answer what it
	                                sent, then close */
	SF_LOGGED    = 0x0800,       /* the next reply's refusal is logged
	                                already (with more detail) */
};

enum smtp_state {
	ST_CMD,                      /* reading commands */
	ST_AUTH,                     /* reading an AUTH continuation line */
	ST_DATA,                     /* reading message data */
};

/* One mail transaction (MAIL to the end of DATA); NULL outside one. */
struct smtp_tx {
	char *sender;                /* "" = null sender */
	char **rcpts;
	size_t n_rcpts, cap_rcpts;
	long long declared_size;     /* SIZE=, -1 none */
	bool smtputf8;
	bool eightbit;

	/* DATA phase */
	struct queuec_req *req;      /* OPEN or COMMIT in flight */
	char qid[QID_LEN + 1];
	int fd;                      /* incoming queue file, -1 none */
	bool committing;             /* COMMIT sent: do not ABORT any more */
	time_t arrival;
	struct smtp_data filter;
	char *from_err;              /* From: header check failed: the reply */
	char *wbuf;                  /* 64 KiB write buffer, DATA only */
	size_t wlen;
	struct sbuf hdr;             /* header section, until fixed up */
	bool hdr_done;               /* headers written (fix-ups done) */
	int werr;                    /* first write error (errno), 0 none */
	long long written;           /* bytes written to the queue file */
};

struct smtp_session {
	TAILQ_ENTRY(smtp_session) entry;
	struct smtp_server *srv;
	const struct listen_cfg *lc;
	struct bufferevent *bev;
	int fd;
	char id[17];                 /* session id in logs */
	struct sockaddr_storage peer;
	char rip[64], lip[64];
	unsigned rport, lport;
	unsigned flags;
	bool freeing;                /* free scheduled */
	struct event *eof_timer;     /* SF_EOF while waiting: bounds the wait */
	enum smtp_state state;
	int n_errors;
	int auth_failures;           /* failed AUTH commands */
	const char *verb;            /* current command, for logs */
	char *helo;
	char *auth_user;
	char *tls_info;              /* "TLSv1.3 TLS_AES_..." once known */

	/* AUTH in progress */
	uint32_t auth_id;
	char auth_mech[32];
	char *auth_login;            /* authcid from PLAIN/LOGIN, for the log */
	bool auth_login_next;        /* LOGIN: next response is the user */

	struct smtp_tx *tx;

	/* RCPT waiting for userdb answers (smtp-cmd-mail.c) */
	struct smtp_addr *rcpt_to;   /* the recipient being decided */
	uint32_t udb_id;             /* lookup in flight, 0 none */
	struct {
		char *name;
		int res;             /* enum policy_user */
	} udb[4];                    /* answers for this recipient */
	int n_udb;
};

/* smtp-session.c */
struct smtp_session *smtp_session_new(struct smtp_server *srv,
                                      const struct listen_cfg *lc, int fd,
                                      const struct sockaddr *sa, int salen);
void smtp_session_reply(struct smtp_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void smtp_session_close(struct smtp_session *s);     /* after flushing */
void smtp_session_resume(struct smtp_session *s);    /* async answer done */
void smtp_session_shutdown_idle(struct smtp_session *s); /* SIGTERM */
void smtp_session_free(struct smtp_session *s);
void smtp_session_set_timeout(struct smtp_session *s, int seconds);
void smtp_tx_free(struct smtp_session *s);
const char *smtp_listener_name(const struct smtp_session *s);
/* Mechanisms we offer now (space-separated) into buf; "" when none. */
const char *smtp_auth_mechs(struct smtp_session *s, char *buf, size_t len);

/* smtp-cmd-auth.c */
void smtp_cmd_auth(struct smtp_session *s, const char *args);
void smtp_auth_line(struct smtp_session *s, const char *line);
void smtp_auth_cancel(struct smtp_session *s);

/* smtp-cmd-mail.c */
void smtp_cmd_mail(struct smtp_session *s, const char *args);
void smtp_cmd_rcpt(struct smtp_session *s, const char *args);
void smtp_rcpt_cancel(struct smtp_session *s);
/* The policy view of this session (smtp-policy.h). */
void smtp_policy_client(struct smtp_session *s, struct policy_client *pc);
/* Load relay.aliases and relay.sender_logins, or re-read them when changed. */
void smtp_maps_load(struct smtp_server *srv);
void smtp_maps_refresh(struct smtp_server *srv);
void smtp_maps_free(struct smtp_server *srv);

/* smtp-cmd-data.c */
void smtp_cmd_data(struct smtp_session *s, const char *args);
void smtp_data_input(struct smtp_session *s);
void smtp_data_cancel(struct smtp_session *s);

#endif
