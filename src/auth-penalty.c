/*
 * auth-penalty.c - per-address failure counting for the auth role (see
 * auth-penalty.h): escalating pre-auth delays and temporary blocks.
 *
 * Policy, with n = failures from the address within `window` seconds:
 *   n <= 1          no delay
 *   n >= 2          delay min(2^(n-2) s, max_delay) before the attempt runs
 *   n >= block_after the address is blocked for block_time seconds: every
 *                   attempt is refused at once (and the SMTP role answers
 *                   421 4.7.0 at connect while the block lasts)
 * A success from the address clears its count (not an active block).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth-penalty.h"
#include "log.h"
#include "util.h"

#define PENALTY_MAX_ENTRIES 65536
#define PENALTY_BUCKETS 16384

struct pentry {
	uint8_t key[16];           /* v4-mapped address or v6 /48 prefix */
	int failures;
	time_t first_failure;      /* start of the current window */
	time_t last_failure;
	time_t blocked_until;
	struct pentry *next;       /* bucket chain */
};

struct penalty {
	bool enabled;
	int max_delay_ms, block_after, window, block_time;
	const struct cidr *exempt;
	size_t n_exempt;
	struct pentry *buckets[PENALTY_BUCKETS];
	size_t n;
	uint64_t hash_key;         /* random, so clients cannot aim at one bucket */
};

struct penalty *
penalty_new(const struct msagate_config *cfg)
{
	struct penalty *p = xcalloc(1, sizeof(*p));

	p->enabled = cfg->auth.penalty.enabled;
	p->max_delay_ms = cfg->auth.penalty.max_delay_ms;
	p->block_after = cfg->auth.penalty.block_after;
	p->window = cfg->auth.penalty.window;
	p->block_time = cfg->auth.penalty.block_time;
	p->exempt = cfg->auth.penalty.exempt;
	p->n_exempt = cfg->auth.penalty.n_exempt;
	random_bytes(&p->hash_key, sizeof(p->hash_key));
	return p;
}

void
penalty_free(struct penalty *p)
{
	size_t i;

	if (p == NULL)
		return;
	for (i = 0; i < PENALTY_BUCKETS; i++) {
		struct pentry *e = p->buckets[i], *next;
		for (; e; e = next) {
			next = e->next;
			free(e);
		}
	}
	free(p);
}

/* make_key - the table key of rip; false for an empty or unparsable one. */
static bool
make_key(const struct penalty *p, const char *rip, uint8_t key[16], bool *exempt)
{
	struct sockaddr_in6 s6;
	struct sockaddr_in s4;
	size_t i;

	memset(key, 0, 16);
	memset(&s6, 0, sizeof(s6));
	memset(&s4, 0, sizeof(s4));
	*exempt = false;
	if (inet_pton(AF_INET, rip, &s4.sin_addr) == 1) {
		s4.sin_family = AF_INET;
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &s4.sin_addr, 4);
		for (i = 0; i < p->n_exempt; i++)
			if (cidr_match(&p->exempt[i], (struct sockaddr *)&s4))
				*exempt = true;
		return true;
	}
	if (inet_pton(AF_INET6, rip, &s6.sin6_addr) == 1) {
		s6.sin6_family = AF_INET6;
		memcpy(key, &s6.sin6_addr, 16);
		/* v4-mapped stays exact; native v6 counts per /48, as
		 * Dovecot's anvil does: a site is usually given a /48, and
		 * a /64 each would give a guesser 65,536 fresh addresses */
		if (!(key[10] == 0xff && key[11] == 0xff &&
		    memcmp(key, "\0\0\0\0\0\0\0\0\0\0", 10) == 0))
			memset(key + 6, 0, 10);
		for (i = 0; i < p->n_exempt; i++)
			if (cidr_match(&p->exempt[i], (struct sockaddr *)&s6))
				*exempt = true;
		return true;
	}
	return false;
}

static size_t
bucket_of(const struct penalty *p, const uint8_t key[16])
{
	uint64_t h = p->hash_key ^ 0xcbf29ce484222325ULL;
	int i;

	for (i = 0; i < 16; i++) {
		h ^= key[i];
		h *= 0x100000001b3ULL;
		h ^= h >> 29;
	}
	return (size_t)(h % PENALTY_BUCKETS);
}

static struct pentry *
lookup(struct penalty *p, const uint8_t key[16])
{
	struct pentry *e;

	for (e = p->buckets[bucket_of(p, key)]; e; e = e->next)
		if (memcmp(e->key, key, 16) == 0)
			return e;
	return NULL;
}

/* expired - nothing left to remember about e at `now`. */
static bool
expired(const struct penalty *p, const struct pentry *e, time_t now)
{
	return e->blocked_until <= now && now - e->last_failure > p->window;
}

/* evict - make room: drop expired entries; if none, the oldest ones. */
static void
evict(struct penalty *p, time_t now)
{
	time_t oldest = now;
	size_t i;

	for (i = 0; i < PENALTY_BUCKETS; i++) {
		struct pentry **pe = &p->buckets[i];
		while (*pe) {
			if (expired(p, *pe, now)) {
				struct pentry *dead = *pe;
				*pe = dead->next;
				free(dead);
				p->n--;
			} else {
				if ((*pe)->last_failure < oldest && (*pe)->blocked_until <= now)
					oldest = (*pe)->last_failure;
				pe = &(*pe)->next;
			}
		}
	}
	if (p->n < PENALTY_MAX_ENTRIES)
		return;
	log_warnx("auth penalty table full (%d addresses): forgetting the oldest",
	    PENALTY_MAX_ENTRIES);
	for (i = 0; i < PENALTY_BUCKETS && p->n >= PENALTY_MAX_ENTRIES; i++) {
		struct pentry **pe = &p->buckets[i];
		while (*pe) {
			if ((*pe)->last_failure <= oldest && (*pe)->blocked_until <= now) {
				struct pentry *dead = *pe;
				*pe = dead->next;
				free(dead);
				p->n--;
			} else
				pe = &(*pe)->next;
		}
	}
}

int
penalty_check(struct penalty *p, const char *rip, time_t now, int *delay_ms)
{
	uint8_t key[16];
	struct pentry *e;
	bool exempt;
	long d;

	*delay_ms = 0;
	if (!p->enabled || rip == NULL || !make_key(p, rip, key, &exempt) || exempt)
		return 0;
	if ((e = lookup(p, key)) == NULL)
		return 0;
	if (e->blocked_until > now)
		return (int)(e->blocked_until - now);
	if (now - e->last_failure > p->window || e->failures < 2)
		return 0;
	d = 1000L << (e->failures - 2 > 20 ? 20 : e->failures - 2);
	*delay_ms = d > p->max_delay_ms ? p->max_delay_ms : (int)d;
	return 0;
}

void
penalty_record(struct penalty *p, const char *rip, bool success, time_t now)
{
	uint8_t key[16];
	struct pentry *e;
	bool exempt;
	size_t b;

	if (!p->enabled || rip == NULL || !make_key(p, rip, key, &exempt) || exempt)
		return;
	e = lookup(p, key);
	if (success) {
		if (e != NULL)
			e->failures = 0;
		return;
	}
	if (e == NULL) {
		if (p->n >= PENALTY_MAX_ENTRIES)
			evict(p, now);
		e = xcalloc(1, sizeof(*e));
		memcpy(e->key, key, 16);
		b = bucket_of(p, key);
		e->next = p->buckets[b];
		p->buckets[b] = e;
		p->n++;
	}
	if (e->blocked_until > now)
		return;   /* refused attempts do not extend the block */
	if (now - e->last_failure > p->window)
		e->failures = 0;
	if (e->failures == 0)
		e->first_failure = now;
	e->failures++;
	e->last_failure = now;
	if (e->failures >= p->block_after) {
		e->blocked_until = now + p->block_time;
		e->failures = 0;
		log_warnx("auth blocked: rip=%s failures=%d block=%ds", rip,
		    p->block_after, p->block_time);
	}
}
