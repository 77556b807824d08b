/*
 * auth-cache.h - the auth role's verified-credential cache (auth.cache_ttl,
 * auth.cache_size): remembers, for a short while, that a user's password
 * was found right, so that the next login with the same password skips
 * the expensive hash (SHA512-CRYPT, ARGON2ID) or the round trip to PAM or
 * an upstream Dovecot.
 *
 * An entry is only a MAC: HMAC-SHA256 under a random per-process key over
 * length-prefixed fields the caller chooses (a tag naming the kind of
 * entry, the backend, the user, what the verdict depends on, and the
 * password).  The password itself is never stored, and without the key
 * (kept in this process's memory only, re-drawn on every flush) an entry
 * says nothing about it.  A wrong password gives another MAC: it always
 * misses and goes to the real check.  Only successes are inserted.
 *
 * Entries expire ttl after they were inserted (hits do not extend that);
 * at most max_entries are kept, the least recently used goes first.
 * auth_cache_flush() drops everything and draws a new key; a key made
 * before a flush can neither hit nor be inserted afterwards, so a check
 * that was running during a flush cannot put a stale verdict back.
 *
 * Thread-safe (one mutex; the HMAC is computed outside it).  An entry may
 * carry a small payload (the canonical user name and extra fields of a
 * cached verdict), which is not secret.
 */
#ifndef MSAGATE_AUTH_CACHE_H
#define MSAGATE_AUTH_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AUTH_CACHE_MAC_LEN	32
/* Most fields one key may be made of. */
#define AUTH_CACHE_MAX_FIELDS	12
/* Largest payload an entry carries (bytes). */
#define AUTH_CACHE_MAX_PAYLOAD	1024

struct auth_cache;

/* One input of a key: len bytes at p (p may be NULL when len is 0). */
struct auth_cache_field {
	const void *p;
	size_t len;
};

/* A computed key: the MAC and the key generation it was made under. */
struct auth_cache_key {
	unsigned char mac[AUTH_CACHE_MAC_LEN];
	uint64_t epoch;
};

struct auth_cache_stats {
	uint64_t hits, misses, inserts, evictions, expired, flushes;
	size_t entries;
};

/* A cache of at most max_entries (>= 1) entries living ttl_ms (> 0). */
struct auth_cache *auth_cache_new(size_t max_entries, uint64_t ttl_ms);
void auth_cache_free(struct auth_cache *c);

/*
 * auth_cache_key - k = HMAC(key, len(f0) f0 len(f1) f1 ...).  The fields
 * are fed one at a time (nothing is copied into a buffer of ours); n at
 * most AUTH_CACHE_MAX_FIELDS.  0, or -1 when OpenSSL fails (then do not
 * use the cache for this request).
 */
int auth_cache_key(struct auth_cache *c, const struct auth_cache_field *f,
    size_t n, struct auth_cache_key *k);

/*
 * auth_cache_lookup - is k a live entry?  On a hit the payload is copied
 * to payload (size *len; truncated to fit) and *len set to its length;
 * payload/len may be NULL when the caller wants none.
 */
bool auth_cache_lookup(struct auth_cache *c, const struct auth_cache_key *k,
    void *payload, size_t *len);
/*
 * auth_cache_peek - as auth_cache_lookup, but a miss is not counted: for
 * a quick first look (on the event loop) that is followed, on a miss, by
 * the real check and its own auth_cache_lookup.
 */
bool auth_cache_peek(struct auth_cache *c, const struct auth_cache_key *k,
    void *payload, size_t *len);

/* auth_cache_insert - remember k (a success) with an optional payload
 * (len <= AUTH_CACHE_MAX_PAYLOAD, else nothing is inserted). */
void auth_cache_insert(struct auth_cache *c, const struct auth_cache_key *k,
    const void *payload, size_t len);

/* auth_cache_flush - forget every entry and draw a new key. */
void auth_cache_flush(struct auth_cache *c);

void auth_cache_get_stats(struct auth_cache *c, struct auth_cache_stats *st);

/* auth_cache_log_debug - one debug line about a lookup (never a secret):
 * "auth cache hit: user=U (WHAT; hits=.. misses=.. entries=..)". */
void auth_cache_log_debug(struct auth_cache *c, bool hit, const char *what,
    const char *user);

#endif
