/*
 * config.h - the parsed msagate.conf (libconfig syntax) as one immutable
 * struct, plus the loader/validator used by msagated, msagatectl and `-n`.
 *
 * Every key the daemon knows is a field here, with its default set by
 * config_load().  Problems are collected as "FILE:LINE: message" strings so
 * that `msagated -n` can print all of them at once.
 */
#ifndef MSAGATE_CONFIG_H
#define MSAGATE_CONFIG_H

#include <stddef.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

enum listen_role { LISTEN_SUBMISSION, LISTEN_RELAY };
enum listen_tls { LISTEN_TLS_NONE, LISTEN_TLS_STARTTLS, LISTEN_TLS_IMPLICIT };

struct listen_cfg {
	char *address;               /* "0.0.0.0", "::1", "127.0.0.1" */
	int port;
	enum listen_role role;
	enum listen_tls tls;
	int line;                    /* for error messages */
};

/* One entry of auth.backends; which fields matter depends on driver. */
struct backend_cfg {
	char *driver;                /* "passwd-file", "pam", "dovecot" */
	char *path;                  /* passwd-file */
	char *service;               /* pam */
	char *socket;                /* dovecot */
	char *default_domain;        /* passwd-file: appended to bare names (optional) */
	int workers;                 /* pam: worker processes (default 4) */
	int timeout_ms;              /* pam, dovecot: per-request timeout (default 10 s) */
	int line;
};

/* An extra auth client socket (auth.listeners), e.g. inside Postfix's spool. */
struct auth_listener_cfg {
	char *path;
	int mode;
	char *user;                  /* owner, optional */
	char *group;                 /* group, optional */
	int line;
};

/* An IPv4 or IPv6 network in CIDR form (IPv4 stored as v4-mapped). */
struct cidr {
	uint8_t addr[16];
	int prefix;                  /* 0..128, in the v6 space */
};

struct msagate_config {
	char *file;                  /* path it was read from */
	/* canonical text of the auth section as read: a reload compares it
	 * to know whether a new auth role is needed (msagated.c) */
	char *auth_text;

	char *hostname;
	char *user;                  /* unprivileged account for the roles */
	char *state_dir;
	bool queue_sync_fs;           /* queue_sync: syncfs() per batch (else fdatasync per file) */
	char *run_dir;

	struct {
		char *cert;
		char *key;
		int min_protocol;        /* TLS1_2_VERSION etc. */
		char *ciphers;           /* optional TLS 1.2 cipher list */
		int cert_line, key_line; /* for error messages */
	} tls;

	struct listen_cfg *listen;
	size_t n_listen;

	struct {
		char *socket;            /* auth socket path */
		int socket_mode;
		char *socket_user;       /* optional owner */
		char *socket_group;      /* optional group */
		struct auth_listener_cfg *listeners;  /* more client sockets */
		size_t n_listeners;
		char *userdb_socket;     /* internal user lookups (run_dir/auth-userdb) */
		char **mechanisms;       /* upper case */
		size_t n_mechanisms;
		struct backend_cfg *backends;
		size_t n_backends;
		int failure_delay_ms;    /* auth.failure_delay (seconds, may be 0) */
		int min_time_ms;         /* floor for every attempt */
		int workers;             /* hashing threads in the auth role */
		bool allow_authzid;      /* authzid != authcid permitted */
		int cache_ttl_ms;        /* verified-credential cache lifetime; 0 off */
		int cache_size;          /* ... and its most entries */
		bool cache_verdicts;     /* also cache OKs of PAM / upstream Dovecot */
		struct {                 /* auth.penalty: brute-force defence */
			bool enabled;
			int max_delay_ms;    /* cap of the growing pre-auth delay */
			int block_after;     /* failures within window -> blocked */
			int window;          /* seconds failures are remembered */
			int block_time;      /* seconds an address stays blocked */
			struct cidr *exempt; /* never delayed or blocked */
			size_t n_exempt;
		} penalty;
	} auth;

	struct {
		struct cidr *mynetworks;
		size_t n_mynetworks;
		char **local_domains;
		size_t n_local_domains;
		char **relay_domains;
		size_t n_relay_domains;
		char *relayhost;
		long long message_size_limit;
		char *aliases;
		char *delivery_method;   /* "maildir" or "lmtp" */
		char *delivery_path;
		char *delivery_socket;
		char *recipient_delimiter; /* "+" (user+tag); "" = none */
		char *sender_logins;     /* file: sender address -> logins allowed to use it */
		bool check_from_header;  /* also check From: against the login (553) */
		/* onward relay (src/deliver-smtp.c) */
		char *relayhost_tls;     /* "required", "opportunistic" or "none" */
		bool tls_verify;         /* verify the relay's chain and name */
		char *tls_ca_file;       /* CA bundle; NULL = system store */
		char *relayhost_credentials; /* file with one line user:password */
		int relayhost_max_conns; /* concurrent connections to one destination */
		bool mx_lookup;          /* no relayhost: deliver by MX (else defer) */
		char **dns_servers;      /* for MX lookups ("ip" / "ip:port"); none = system */
		size_t n_dns_servers;
		/* queue manager (src/qmgr.c); 0 in a zeroed struct = the QMGR_ default */
		int retry_min_ms;        /* first retry after; doubles up to retry_max */
		int retry_max_ms;        /* retries at most this far apart */
		int queue_lifetime_ms;   /* older messages bounce */
		int delay_warning_ms;    /* warn the sender after this; 0 = never */
		int delivery_workers;    /* deliveries in parallel */
		/* local delivery as other users (src/deliver-helper.c) */
		long long delivery_min_uid; /* relay.delivery.min_uid: lowest uid written as */
		bool allow_alias_include; /* ":include:/path" alias targets */
		bool allow_alias_commands; /* "|command" alias targets */
		bool allow_alias_files;  /* "/file" alias targets (mbox append) */
		char *alias_user;        /* commands and files run as this account */
		int alias_user_line;     /* for error messages */
		int alias_command_timeout_ms; /* a command's run time limit */
	} relay;

	struct {
		int max_recipients;      /* per message; 452 4.5.3 past it */
		int max_errors;          /* per session; 421 past it */
		int idle_timeout;        /* seconds; 421 */
		int data_timeout;        /* seconds without data inside DATA */
		int max_connections;     /* whole daemon, per smtp process */
		int max_connections_per_client;
		int max_line;            /* command line length, octets incl. CRLF */
		int max_auth_line;       /* AUTH initial response / continuation */
		bool received_show_user; /* put the authenticated user in Received: */
		int max_auth_failures;   /* failed AUTH per session; then 421 + close */
		int processes;           /* smtp role processes */
	} smtp;

	struct {
		char *facility;          /* syslog facility name, default "mail" */
		bool debug;
	} log;

	int user_line;               /* line of `user`, for error messages */
	/* the line of every string setting read ("relay.aliases"), so that
	 * later checks report FILE:LINE too (config_line) */
	struct config_key_line { char *path; int line; } *key_lines;
	size_t n_key_lines;

	char *pid_file;              /* run_dir/msagated.pid */
	char *queue_socket;          /* run_dir/queue */
};

/* A growing list of "FILE:LINE: message" problems. */
struct config_errors {
	char **msg;
	size_t n;
};

/*
 * config_load - read and validate FILE (syntax, types, known keys, values).
 * Returns the config (with any problems recorded in errs) or NULL when the
 * file cannot be read or parsed at all (also recorded in errs).
 */
struct msagate_config *config_load(const char *file, struct config_errors *errs);
/* config_line - the line of setting `path` ("auth.socket_group"), or 0. */
int config_line(const struct msagate_config *cfg, const char *path);
/* config_load_fp - the same from an open stream (closed), named FILE in
 * messages: the queue role reads a reload through a descriptor the
 * parent opened. */
struct msagate_config *config_load_fp(FILE *fp, const char *file,
    struct config_errors *errs);
/*
 * config_check_deep - the checks of `msagated -n` that look outside the
 * file: the user exists, certificate and key readable and matching, the
 * backends' files readable and valid.  (src/config-check.c, daemon only.)
 */
void config_check_deep(const struct msagate_config *cfg, struct config_errors *errs);
/*
 * config_check_later - files read only when they are needed (the onward
 * relay's CA file and credentials): problems for `msagated -n`, warnings
 * at start-up and reload (they may be fixed before the first use).
 */
void config_check_later(const struct msagate_config *cfg, struct config_errors *errs);
void config_free(struct msagate_config *cfg);
void config_errors_add(struct config_errors *errs, const char *file, int line,
                       const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void config_errors_free(struct config_errors *errs);

/* CIDR helpers, shared with the relay policy. */
int cidr_parse(const char *s, struct cidr *out);
bool cidr_match(const struct cidr *c, const struct sockaddr *sa);

#ifndef SYSCONFDIR
#define SYSCONFDIR "/etc"
#endif
#define MSAGATE_DEFAULT_CONFIG SYSCONFDIR "/msagate/msagate.conf"

#endif
