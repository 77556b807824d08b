/*
 * tls.c - the server-side TLS context of the SMTP role: certificate chain
 * and key from cfg->tls, min_protocol, no compression, no renegotiation,
 * session tickets and a session cache, small idle buffers.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "log.h"
#include "tls.h"

void
tls_log_errors(const char *what)
{
	unsigned long e;
	char buf[256];

	while ((e = ERR_get_error()) != 0) {
		ERR_error_string_n(e, buf, sizeof(buf));
		log_warnx("%s: %s", what, buf);
	}
}

SSL_CTX *
tls_server_ctx(const struct msagate_config *cfg)
{
	static const unsigned char sid_ctx[] = "msagate-smtp";
	SSL_CTX *ctx;
	int minp = cfg->tls.min_protocol ? cfg->tls.min_protocol : TLS1_2_VERSION;

	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		tls_log_errors("SSL_CTX_new");
		return NULL;
	}
	if (!SSL_CTX_set_min_proto_version(ctx, minp)) {
		tls_log_errors("tls.min_protocol");
		goto fail;
	}
	/*
	 * No compression (CRIME), no renegotiation at all (client-initiated
	 * renegotiation is a DoS vector; SSL_OP_NO_RENEGOTIATION also refuses
	 * it for TLS 1.2), the server's cipher preference.  Session tickets
	 * stay on (SSL_OP_NO_TICKET not set).
	 */
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_SINGLE_ECDH_USE);
	SSL_CTX_clear_options(ctx, SSL_OP_ALLOW_CLIENT_RENEGOTIATION);
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
	/*
	 * A client that closes its side without close_notify (OpenSSL 3 calls
	 * that an error) still gets the replies it is owed, as with a
	 * close_notify; SMTP frames its data itself (CRLF.CRLF), so a
	 * truncated stream cannot pass for a whole message.  Postfix does
	 * the same.
	 */
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
	/* Idle sessions give their read/write buffers back (small memory). */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_ENABLE_PARTIAL_WRITE);
	/* ECDHE group choice is automatic in OpenSSL >= 1.1 (no-op here). */
	SSL_CTX_set_ecdh_auto(ctx, 1);
	SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
	/*
	 * One TLS 1.3 ticket per handshake, not OpenSSL's two: an SMTP client
	 * resumes one connection at a time, and each ticket costs an encoded
	 * and encrypted session and a record on the wire.
	 */
	SSL_CTX_set_num_tickets(ctx, 1);
	SSL_CTX_set_timeout(ctx, 3600);
	if (cfg->tls.ciphers && *cfg->tls.ciphers &&
	    !SSL_CTX_set_cipher_list(ctx, cfg->tls.ciphers)) {
		tls_log_errors("tls.ciphers");
		goto fail;
	}
	if (cfg->tls.cert == NULL || cfg->tls.key == NULL) {
		log_warnx("tls: cert and key must be configured");
		goto fail;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls.cert) != 1) {
		tls_log_errors(cfg->tls.cert);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, cfg->tls.key, SSL_FILETYPE_PEM) != 1) {
		tls_log_errors(cfg->tls.key);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		tls_log_errors("tls: key does not match the certificate");
		goto fail;
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

void
tls_describe(const SSL *ssl, char *buf, size_t len)
{
	const SSL_CIPHER *c = SSL_get_current_cipher(ssl);

	snprintf(buf, len, "%s %s", SSL_get_version(ssl),
	         c ? SSL_CIPHER_get_name(c) : "NONE");
}
