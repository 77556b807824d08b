/*
 * pwhash.h - password schemes in Dovecot's "{SCHEME}data" form: verify a
 * stored credential against a password (constant time), and make new
 * hashes for `msagatectl pw`.
 *
 * Schemes: SHA512-CRYPT, SHA256-CRYPT, BLF-CRYPT (libxcrypt), PLAIN (and
 * CLEAR as its alias), ARGON2ID (when built with libargon2), and Dovecot's
 * stored SCRAM secrets SCRAM-SHA-1 / SCRAM-SHA-256 ("iter,salt,StoredKey,
 * ServerKey", base64).  A stored value
 * without {SCHEME} is taken as a crypt(3) string when it starts with '$'.
 */
#ifndef MSAGATE_PWHASH_H
#define MSAGATE_PWHASH_H

#include <stdbool.h>

enum pwhash_result { PWHASH_OK = 0, PWHASH_MISMATCH = 1, PWHASH_ERROR = -1 };

/* Verify; PWHASH_ERROR for an unknown scheme or malformed stored value. */
enum pwhash_result pwhash_verify(const char *stored, const char *password);
/* malloc'd "{SCHEME}hash", or NULL (unknown scheme / failure). */
char *pwhash_make(const char *scheme, const char *password);
/* The strongest scheme compiled in ("ARGON2ID" or "SHA512-CRYPT"). */
const char *pwhash_default_scheme(void);
/* Scheme compiled in and known?  Case-insensitive. */
bool pwhash_scheme_known(const char *scheme);
/* If stored is "{PLAIN}x" or "{CLEAR}x", return pointer to x, else NULL. */
const char *pwhash_plaintext(const char *stored);
/*
 * If stored is a {SCRAM-SHA-1}/{SCRAM-SHA-256} entry of the hash of
 * SASL mechanism mech ("SCRAM-SHA-256"), the same secret in the form
 * Cyrus' SCRAM plugin reads from the authPassword property,
 * "MECH$iter:salt$StoredKey:ServerKey" (base64 fields), malloc'd; the
 * caller wipes and frees it.  NULL: another scheme or hash, or malformed.
 */
char *pwhash_scram_secret(const char *stored, const char *mech);

#endif
