/*
 * config-check.c - the part of `msagated -n` that looks outside the
 * configuration file: the unprivileged user, the TLS certificate and key
 * (readable, parseable, matching), and each auth backend's own check
 * (driver compiled in, passwd file readable and valid).
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "config.h"
#include "aliases.h"
#include "backend.h"
#include "sender-logins.h"
#include "util.h"

/* ssl_error - the most useful line of OpenSSL's error queue. */
static const char *
ssl_error(char *buf, size_t len)
{
	unsigned long e = ERR_get_error(), last = e;

	while (e != 0) {
		last = e;
		e = ERR_get_error();
	}
	if (last == 0)
		return "unknown error";
	ERR_error_string_n(last, buf, len);
	return buf;
}

static void
check_tls(const struct msagate_config *cfg, struct config_errors *errs)
{
	SSL_CTX *ctx;
	char eb[256];

	if (cfg->tls.cert == NULL || cfg->tls.key == NULL)
		return;   /* already reported by config_load */
	if (access(cfg->tls.cert, R_OK) != 0) {
		config_errors_add(errs, cfg->file, cfg->tls.cert_line, "tls.cert %s: %s", cfg->tls.cert,
		    strerror(errno));
		return;
	}
	if (access(cfg->tls.key, R_OK) != 0) {
		config_errors_add(errs, cfg->file, cfg->tls.key_line, "tls.key %s: %s", cfg->tls.key,
		    strerror(errno));
		return;
	}
	ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL) {
		config_errors_add(errs, cfg->file, 0, "OpenSSL: %s", ssl_error(eb, sizeof(eb)));
		return;
	}
	ERR_clear_error();
	if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls.cert) != 1)
		config_errors_add(errs, cfg->file, cfg->tls.cert_line, "tls.cert %s: not a usable PEM certificate (%s)",
		    cfg->tls.cert, ssl_error(eb, sizeof(eb)));
	else if (SSL_CTX_use_PrivateKey_file(ctx, cfg->tls.key, SSL_FILETYPE_PEM) != 1)
		config_errors_add(errs, cfg->file, cfg->tls.key_line,
		    "tls.key %s: not a usable PEM key or it does not match tls.cert (%s)",
		    cfg->tls.key, ssl_error(eb, sizeof(eb)));
	else if (SSL_CTX_check_private_key(ctx) != 1)
		config_errors_add(errs, cfg->file, cfg->tls.key_line, "tls.key %s does not match tls.cert %s",
		    cfg->tls.key, cfg->tls.cert);
	/* what tls.c applies: a list OpenSSL refuses stops every listener */
	ERR_clear_error();
	if (cfg->tls.ciphers != NULL && cfg->tls.ciphers[0] != '\0' &&
	    SSL_CTX_set_cipher_list(ctx, cfg->tls.ciphers) != 1)
		config_errors_add(errs, cfg->file, config_line(cfg, "tls.ciphers"),
		    "tls.ciphers \"%s\": OpenSSL accepts no cipher of it (%s)",
		    cfg->tls.ciphers, ssl_error(eb, sizeof(eb)));
	SSL_CTX_free(ctx);
}

/* readable_as - can uid/gid (as a role runs, after dropping root) read path? */
static bool
readable_as(const char *path, uid_t uid, gid_t gid)
{
	pid_t pid = fork();
	int status;

	if (pid < 0)
		return true;   /* cannot tell; the role will say */
	if (pid == 0) {
		if (setgroups(1, &gid) != 0 || setresgid(gid, gid, gid) != 0 ||
		    setresuid(uid, uid, uid) != 0)
			_exit(2);
		_exit(access(path, R_OK) == 0 ? 0 : 1);
	}
	while (waitpid(pid, &status, 0) < 0)
		;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

void
config_check_deep(const struct msagate_config *cfg, struct config_errors *errs)
{
	struct passwd *pw = NULL;
	size_t i;

	if (geteuid() == 0) {
		pw = getpwnam(cfg->user);
		if (pw == NULL)
			config_errors_add(errs, cfg->file, cfg->user_line,
			    "user \"%s\" does not exist (create it: useradd --system %s)",
			    cfg->user, cfg->user);
		else if (pw->pw_uid == 0)
			config_errors_add(errs, cfg->file, cfg->user_line,
			    "user \"%s\" is root; the network-facing roles must not run as root",
			    cfg->user);
	}
	check_tls(cfg, errs);
	/* what the daemon itself would refuse at start-up or at first use */
	if (cfg->auth.socket_user && getpwnam(cfg->auth.socket_user) == NULL)
		config_errors_add(errs, cfg->file, config_line(cfg, "auth.socket_user"),
		    "auth.socket_user \"%s\" does not exist",
		    cfg->auth.socket_user);
	if (cfg->auth.socket_group && getgrnam(cfg->auth.socket_group) == NULL)
		config_errors_add(errs, cfg->file, config_line(cfg, "auth.socket_group"),
		    "auth.socket_group \"%s\" does not exist",
		    cfg->auth.socket_group);
	/* relay maps: report their own FILE:LINE problems */
	if (cfg->relay.aliases) {
		char *err = NULL;
		struct aliases *a = aliases_load(cfg->relay.aliases, &err);
		if (a == NULL)
			config_errors_add(errs, cfg->file, config_line(cfg, "relay.aliases"),
			    "relay.aliases: %s",
			    err ? err : "cannot load");
		aliases_free(a);
		free(err);
	}
	if (cfg->relay.sender_logins) {
		char *err = NULL;
		struct sender_logins *m = sender_logins_load(cfg->relay.sender_logins, &err);
		if (m == NULL)
			config_errors_add(errs, cfg->file, config_line(cfg, "relay.sender_logins"),
			    "relay.sender_logins: %s",
			    err ? err : "cannot load");
		sender_logins_free(m);
		free(err);
	}
	for (i = 0; i < cfg->auth.n_backends; i++) {
		char *err = NULL;
		if (backend_check(&cfg->auth.backends[i], &err) != 0) {
			/* backend_check's message may already carry FILE:LINE */
			config_errors_add(errs, cfg->file, cfg->auth.backends[i].line,
			    "%s", err ? err : "backend check failed");
		}
		free(err);
		/* the auth role re-reads the file after dropping root */
		if (pw != NULL && pw->pw_uid != 0 && cfg->auth.backends[i].path &&
		    strcmp(cfg->auth.backends[i].driver, "passwd-file") == 0 &&
		    access(cfg->auth.backends[i].path, R_OK) == 0 &&
		    !readable_as(cfg->auth.backends[i].path, pw->pw_uid, pw->pw_gid))
			config_errors_add(errs, cfg->file, cfg->auth.backends[i].line,
			    "passwd file %s is not readable by user \"%s\" "
			    "(e.g. chgrp %s %s; chmod 640 %s)", cfg->auth.backends[i].path,
			    cfg->user, cfg->user, cfg->auth.backends[i].path,
			    cfg->auth.backends[i].path);
	}
	/* commands and files of aliases run as relay.alias_user: never root
	 * (last: getpwnam() reuses the storage pw points to) */
	if (geteuid() == 0 && cfg->relay.alias_user != NULL &&
	    (cfg->relay.allow_alias_commands || cfg->relay.allow_alias_files)) {
		struct passwd *ap = getpwnam(cfg->relay.alias_user);

		if (ap == NULL)
			config_errors_add(errs, cfg->file, cfg->relay.alias_user_line,
			    "relay.alias_user \"%s\" does not exist", cfg->relay.alias_user);
		else if (ap->pw_uid == 0 || ap->pw_gid == 0)
			config_errors_add(errs, cfg->file, cfg->relay.alias_user_line,
			    "relay.alias_user \"%s\" has uid or gid 0; commands and files "
			    "of aliases never run as root", cfg->relay.alias_user);
	}
}

void
config_check_later(const struct msagate_config *cfg, struct config_errors *errs)
{
	if (cfg->relay.tls_ca_file && cfg->relay.tls_ca_file[0] &&
	    access(cfg->relay.tls_ca_file, R_OK) != 0)
		config_errors_add(errs, cfg->file, config_line(cfg, "relay.tls_ca_file"),
		    "relay.tls_ca_file %s: %s",
		    cfg->relay.tls_ca_file, strerror(errno));
	if (cfg->relay.relayhost_credentials && cfg->relay.relayhost_credentials[0]) {
		struct stat st;

		if (stat(cfg->relay.relayhost_credentials, &st) != 0)
			config_errors_add(errs, cfg->file,
			    config_line(cfg, "relay.relayhost_credentials"),
			    "relay.relayhost_credentials %s: %s",
			    cfg->relay.relayhost_credentials, strerror(errno));
		else if (st.st_mode & 077)
			config_errors_add(errs, cfg->file,
			    config_line(cfg, "relay.relayhost_credentials"),
			    "relay.relayhost_credentials %s: "
			    "group or others may read it, so it is refused (chmod 600 %s)",
			    cfg->relay.relayhost_credentials, cfg->relay.relayhost_credentials);
	}
}
