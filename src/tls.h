/*
 * tls.h - the server-side TLS context of the SMTP role (OpenSSL 3):
 * certificate chain and key from the configuration, minimum protocol,
 * hardened options, and a helper to describe an established session.
 */
#ifndef MSAGATE_TLS_H
#define MSAGATE_TLS_H

#include <stddef.h>
#include <openssl/ssl.h>

#include "config.h"

/*
 * Build the server context from cfg->tls (must run while the key is still
 * readable, i.e. before privsep_drop).  Returns NULL after logging every
 * OpenSSL error.
 */
SSL_CTX *tls_server_ctx(const struct msagate_config *cfg);

/* "TLSv1.3 TLS_AES_256_GCM_SHA384" into buf. */
void tls_describe(const SSL *ssl, char *buf, size_t len);

/* Log (log_info) and clear the OpenSSL error queue, prefixed by what. */
void tls_log_errors(const char *what);

#endif
