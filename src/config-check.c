/*
 * config-check.c - the part of `msagated -n` that looks outside the
 * configuration file: the unprivileged user, the TLS certificate and key
 * (readable, parseable, matching), and each auth backend's own check
 * (driver compiled in, passwd file readable and valid).
 */
#include <errno.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "config.h"
#include "backend.h"
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
		config_errors_add(errs, cfg->file, 0, "tls.cert %s: %s", cfg->tls.cert,
		    strerror(errno));
		return;
	}
	if (access(cfg->tls.key, R_OK) != 0) {
		config_errors_add(errs, cfg->file, 0, "tls.key %s: %s", cfg->tls.key,
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
		config_errors_add(errs, cfg->file, 0, "tls.cert %s: not a usable PEM certificate (%s)",
		    cfg->tls.cert, ssl_error(eb, sizeof(eb)));
	else if (SSL_CTX_use_PrivateKey_file(ctx, cfg->tls.key, SSL_FILETYPE_PEM) != 1)
		config_errors_add(errs, cfg->file, 0,
		    "tls.key %s: not a usable PEM key or it does not match tls.cert (%s)",
		    cfg->tls.key, ssl_error(eb, sizeof(eb)));
	else if (SSL_CTX_check_private_key(ctx) != 1)
		config_errors_add(errs, cfg->file, 0, "tls.key %s does not match tls.cert %s",
		    cfg->tls.key, cfg->tls.cert);
	SSL_CTX_free(ctx);
}

void
config_check_deep(const struct msagate_config *cfg, struct config_errors *errs)
{
	size_t i;

	if (geteuid() == 0) {
		struct passwd *pw = getpwnam(cfg->user);
		if (pw == NULL)
			config_errors_add(errs, cfg->file, 0,
			    "user \"%s\" does not exist (create it: useradd --system %s)",
			    cfg->user, cfg->user);
		else if (pw->pw_uid == 0)
			config_errors_add(errs, cfg->file, 0,
			    "user \"%s\" is root; the network-facing roles must not run as root",
			    cfg->user);
	}
	check_tls(cfg, errs);
	for (i = 0; i < cfg->auth.n_backends; i++) {
		char *err = NULL;
		if (backend_check(&cfg->auth.backends[i], &err) != 0) {
			/* backend_check's message may already carry FILE:LINE */
			config_errors_add(errs, cfg->file, cfg->auth.backends[i].line,
			    "%s", err ? err : "backend check failed");
		}
		free(err);
	}
}
