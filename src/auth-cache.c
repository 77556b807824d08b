/*
 * auth-cache.c - the verified-credential cache of the auth role (see
 * auth-cache.h): keyed MACs of successful checks in a hash table with an
 * LRU list, bounded in size and lifetime.
 *
 * The HMAC key lives in an OpenSSL HMAC context set up once per key
 * (tmpl); each key computation duplicates it under the lock and feeds the
 * fields outside it, so concurrent logins only contend for a copy and a
 * table lookup.  Lookups compare whole MACs in constant time; the bucket
 * comes from the MAC's first bytes, which are uniform and, without the
 * key, unpredictable.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "auth-cache.h"
#include "log.h"
#include "util.h"

#define AC_KEY_LEN	32

struct ac_entry {
	unsigned char mac[AUTH_CACHE_MAC_LEN];
	uint64_t expires_ms;
	struct ac_entry *hnext;              /* hash chain */
	struct ac_entry *prev, *next;        /* LRU list, head = most recent */
	size_t len;
	unsigned char *payload;              /* NULL when len is 0 */
};

struct auth_cache {
	pthread_mutex_t lock;                /* everything below */
	EVP_MAC *mac;                        /* HMAC, fetched once */
	EVP_MAC_CTX *tmpl;                   /* HMAC-SHA256 keyed with the key */
	uint64_t epoch;                      /* bumped by every flush */
	uint64_t ttl_ms;
	size_t max, n, nbucket;
	struct ac_entry **bucket;
	struct ac_entry *head, *tail;
	struct auth_cache_stats st;
};

/*
 * ac_rekey - draw a new key and set up the HMAC template with it; called
 * locked (or before the cache is shared).  -1 if OpenSSL fails (tmpl NULL:
 * every key computation fails, i.e. the cache is bypassed).
 */
static int
ac_rekey(struct auth_cache *c)
{
	unsigned char key[AC_KEY_LEN];
	char digest[] = "SHA256";
	OSSL_PARAM params[2];
	EVP_MAC_CTX *ctx;

	c->epoch++;
	EVP_MAC_CTX_free(c->tmpl);
	c->tmpl = NULL;
	if (c->mac == NULL || (ctx = EVP_MAC_CTX_new(c->mac)) == NULL)
		return -1;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0);
	params[1] = OSSL_PARAM_construct_end();
	random_bytes(key, sizeof(key));
	if (EVP_MAC_init(ctx, key, sizeof(key), params) != 1) {
		secure_zero(key, sizeof(key));
		EVP_MAC_CTX_free(ctx);
		return -1;
	}
	secure_zero(key, sizeof(key));
	c->tmpl = ctx;
	return 0;
}

struct auth_cache *
auth_cache_new(size_t max_entries, uint64_t ttl_ms)
{
	struct auth_cache *c = xcalloc(1, sizeof(*c));

	c->max = max_entries ? max_entries : 1;
	c->ttl_ms = ttl_ms ? ttl_ms : 1;
	/* about one entry per bucket when full */
	c->nbucket = 64;
	while (c->nbucket < c->max && c->nbucket < ((size_t)1 << 22))
		c->nbucket *= 2;
	c->bucket = xcalloc(c->nbucket, sizeof(*c->bucket));
	pthread_mutex_init(&c->lock, NULL);
	c->mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	if (ac_rekey(c) != 0)
		log_warnx("auth cache: OpenSSL has no HMAC-SHA256; the credential "
		    "cache is not used");
	return c;
}

/* ac_entry_free - free an entry that is no longer linked anywhere. */
static void
ac_entry_free(struct ac_entry *e)
{
	free(e->payload);
	secure_zero(e, sizeof(*e));
	free(e);
}

/* ac_clear - drop every entry; called locked. */
static void
ac_clear(struct auth_cache *c)
{
	struct ac_entry *e, *next;

	for (e = c->head; e != NULL; e = next) {
		next = e->next;
		ac_entry_free(e);
	}
	memset(c->bucket, 0, c->nbucket * sizeof(*c->bucket));
	c->head = c->tail = NULL;
	c->n = 0;
}

void
auth_cache_free(struct auth_cache *c)
{
	if (c == NULL)
		return;
	ac_clear(c);
	EVP_MAC_CTX_free(c->tmpl);
	EVP_MAC_free(c->mac);
	pthread_mutex_destroy(&c->lock);
	free(c->bucket);
	free(c);
}

int
auth_cache_key(struct auth_cache *c, const struct auth_cache_field *f,
    size_t n, struct auth_cache_key *k)
{
	EVP_MAC_CTX *ctx = NULL;
	size_t i, outl = 0;
	int rc = -1;

	memset(k, 0, sizeof(*k));
	if (n > AUTH_CACHE_MAX_FIELDS)
		return -1;
	pthread_mutex_lock(&c->lock);
	if (c->tmpl != NULL)
		ctx = EVP_MAC_CTX_dup(c->tmpl);
	k->epoch = c->epoch;
	pthread_mutex_unlock(&c->lock);
	if (ctx == NULL)
		return -1;
	for (i = 0; i < n; i++) {
		/* each field length-prefixed: no two field lists feed the same bytes */
		unsigned char len[8];
		uint64_t l = f[i].len;
		int b;

		for (b = 7; b >= 0; b--, l >>= 8)
			len[b] = (unsigned char)(l & 0xff);
		if (EVP_MAC_update(ctx, len, sizeof(len)) != 1 ||
		    (f[i].len > 0 && EVP_MAC_update(ctx, f[i].p, f[i].len) != 1))
			goto out;
	}
	if (EVP_MAC_final(ctx, k->mac, &outl, sizeof(k->mac)) == 1 &&
	    outl == sizeof(k->mac))
		rc = 0;
out:
	EVP_MAC_CTX_free(ctx);      /* OpenSSL cleanses the HMAC state */
	if (rc != 0)
		memset(k, 0, sizeof(*k));
	return rc;
}

/* ac_bucket - the hash chain of mac. */
static struct ac_entry **
ac_bucket(struct auth_cache *c, const unsigned char *mac)
{
	uint64_t h = 0;
	int i;

	for (i = 0; i < 8; i++)
		h = (h << 8) | mac[i];
	return &c->bucket[h & (c->nbucket - 1)];
}

/* ac_find - the entry with mac, or NULL; called locked.  Every candidate
 * of the chain is compared in constant time. */
static struct ac_entry *
ac_find(struct auth_cache *c, const unsigned char *mac)
{
	struct ac_entry *e, *found = NULL;

	for (e = *ac_bucket(c, mac); e != NULL; e = e->hnext)
		if (ct_equal(e->mac, sizeof(e->mac), mac, AUTH_CACHE_MAC_LEN) &&
		    found == NULL)
			found = e;
	return found;
}

static void
ac_lru_unlink(struct auth_cache *c, struct ac_entry *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		c->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		c->tail = e->prev;
	e->prev = e->next = NULL;
}

static void
ac_lru_push(struct auth_cache *c, struct ac_entry *e)
{
	e->prev = NULL;
	e->next = c->head;
	if (c->head)
		c->head->prev = e;
	c->head = e;
	if (c->tail == NULL)
		c->tail = e;
}

/* ac_remove - unlink e from its chain and the LRU list and free it;
 * called locked. */
static void
ac_remove(struct auth_cache *c, struct ac_entry *e)
{
	struct ac_entry **pp;

	for (pp = ac_bucket(c, e->mac); *pp != NULL; pp = &(*pp)->hnext)
		if (*pp == e) {
			*pp = e->hnext;
			break;
		}
	ac_lru_unlink(c, e);
	c->n--;
	ac_entry_free(e);
}

/* ac_lookup - auth_cache_lookup/peek; count_miss: count a miss. */
static bool
ac_lookup(struct auth_cache *c, const struct auth_cache_key *k,
    void *payload, size_t *len, bool count_miss)
{
	struct ac_entry *e;
	bool hit = false;

	pthread_mutex_lock(&c->lock);
	e = k->epoch == c->epoch ? ac_find(c, k->mac) : NULL;
	if (e != NULL && now_ms() >= e->expires_ms) {
		ac_remove(c, e);
		c->st.expired++;
		e = NULL;
	}
	if (e != NULL) {
		hit = true;
		ac_lru_unlink(c, e);
		ac_lru_push(c, e);
		if (payload != NULL && len != NULL) {
			size_t n = e->len < *len ? e->len : *len;
			if (n > 0)
				memcpy(payload, e->payload, n);
			*len = e->len;
		}
		c->st.hits++;
	} else {
		if (len != NULL)
			*len = 0;
		if (count_miss)
			c->st.misses++;
	}
	pthread_mutex_unlock(&c->lock);
	return hit;
}

bool
auth_cache_lookup(struct auth_cache *c, const struct auth_cache_key *k,
    void *payload, size_t *len)
{
	return ac_lookup(c, k, payload, len, true);
}

bool
auth_cache_peek(struct auth_cache *c, const struct auth_cache_key *k,
    void *payload, size_t *len)
{
	return ac_lookup(c, k, payload, len, false);
}

void
auth_cache_insert(struct auth_cache *c, const struct auth_cache_key *k,
    const void *payload, size_t len)
{
	struct ac_entry *e, **b;
	unsigned char *copy = NULL;
	uint64_t now = now_ms();

	if (len > AUTH_CACHE_MAX_PAYLOAD)
		return;
	if (len > 0) {
		copy = xmalloc(len);
		memcpy(copy, payload, len);
	}
	pthread_mutex_lock(&c->lock);
	if (k->epoch != c->epoch) {
		/* made before a flush: the check may have used old data */
		pthread_mutex_unlock(&c->lock);
		free(copy);
		return;
	}
	if ((e = ac_find(c, k->mac)) != NULL) {
		/* checked again (two logins raced): a fresh lifetime */
		free(e->payload);
		e->payload = copy;
		e->len = len;
		e->expires_ms = now + c->ttl_ms;
		ac_lru_unlink(c, e);
		ac_lru_push(c, e);
		pthread_mutex_unlock(&c->lock);
		return;
	}
	/* expired entries at the cold end go first, then the least recent */
	while (c->tail != NULL && now >= c->tail->expires_ms) {
		ac_remove(c, c->tail);
		c->st.expired++;
	}
	if (c->n >= c->max && c->tail != NULL) {
		ac_remove(c, c->tail);
		c->st.evictions++;
	}
	e = xcalloc(1, sizeof(*e));
	memcpy(e->mac, k->mac, sizeof(e->mac));
	e->expires_ms = now + c->ttl_ms;
	e->payload = copy;
	e->len = len;
	b = ac_bucket(c, e->mac);
	e->hnext = *b;
	*b = e;
	ac_lru_push(c, e);
	c->n++;
	c->st.inserts++;
	pthread_mutex_unlock(&c->lock);
}

void
auth_cache_flush(struct auth_cache *c)
{
	pthread_mutex_lock(&c->lock);
	ac_clear(c);
	if (ac_rekey(c) != 0)
		log_warnx("auth cache: cannot set up a new key; the credential "
		    "cache is not used");
	c->st.flushes++;
	pthread_mutex_unlock(&c->lock);
}

void
auth_cache_get_stats(struct auth_cache *c, struct auth_cache_stats *st)
{
	pthread_mutex_lock(&c->lock);
	*st = c->st;
	st->entries = c->n;
	pthread_mutex_unlock(&c->lock);
}

void
auth_cache_log_debug(struct auth_cache *c, bool hit, const char *what,
    const char *user)
{
	struct auth_cache_stats st;
	char su[160];

	if (!log_debug_enabled())
		return;
	auth_cache_get_stats(c, &st);
	log_debug("auth cache %s: user=%s (%s; hits=%llu misses=%llu entries=%zu)",
	    hit ? "hit" : "miss", log_safe(su, sizeof(su), user ? user : "", 128),
	    what, (unsigned long long)st.hits, (unsigned long long)st.misses,
	    st.entries);
}
