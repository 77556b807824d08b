/*
 * smtp-clients.c - per-client-address session counts of the SMTP role: a
 * fixed-size chained hash table (FNV-1a with a random seed, so clients
 * cannot aim at one bucket), entries removed when their count drops to 0;
 * and a small fixed table of blocked addresses (linear search: at most
 * SMTP_BLOCKS_MAX entries, consulted once per connection).
 */
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp-clients.h"
#include "util.h"

#define N_BUCKETS 4096

struct client_entry {
	struct client_entry *next;
	uint8_t addr[16];
	int count;
};

struct block_entry {
	uint8_t addr[16];
	time_t until;                /* 0: free */
};

struct smtp_clients {
	uint32_t seed;
	struct client_entry *bucket[N_BUCKETS];
	struct block_entry blocks[SMTP_BLOCKS_MAX];
};

/* The 16-byte key of sa (IPv4 as ::ffff:a.b.c.d); false if not IP. */
static int
key_of(const struct sockaddr *sa, uint8_t key[16])
{
	if (sa->sa_family == AF_INET) {
		memset(key, 0, 10);
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		return 1;
	}
	if (sa->sa_family == AF_INET6) {
		memcpy(key, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
		return 1;
	}
	return 0;
}

static size_t
hash(const struct smtp_clients *c, const uint8_t key[16])
{
	uint32_t h = 2166136261u ^ c->seed;

	for (int i = 0; i < 16; i++) {
		h ^= key[i];
		h *= 16777619u;
	}
	return h % N_BUCKETS;
}

struct smtp_clients *
smtp_clients_new(void)
{
	struct smtp_clients *c = xcalloc(1, sizeof(*c));

	random_bytes(&c->seed, sizeof(c->seed));
	return c;
}

void
smtp_clients_free(struct smtp_clients *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < N_BUCKETS; i++) {
		struct client_entry *e, *next;

		for (e = c->bucket[i]; e; e = next) {
			next = e->next;
			free(e);
		}
	}
	free(c);
}

int
smtp_clients_count(const struct smtp_clients *c, const struct sockaddr *sa)
{
	uint8_t key[16];
	const struct client_entry *e;

	if (!key_of(sa, key))
		return 0;
	for (e = c->bucket[hash(c, key)]; e; e = e->next)
		if (memcmp(e->addr, key, 16) == 0)
			return e->count;
	return 0;
}

void
smtp_clients_add(struct smtp_clients *c, const struct sockaddr *sa, int delta)
{
	uint8_t key[16];
	struct client_entry **pp, *e;

	if (!key_of(sa, key))
		return;
	for (pp = &c->bucket[hash(c, key)]; (e = *pp) != NULL; pp = &e->next)
		if (memcmp(e->addr, key, 16) == 0)
			break;
	if (e == NULL) {
		if (delta <= 0)
			return;
		e = xcalloc(1, sizeof(*e));
		memcpy(e->addr, key, 16);
		e->next = NULL;
		*pp = e;
	}
	e->count += delta;
	if (e->count <= 0) {
		*pp = e->next;
		free(e);
	}
}

void
smtp_clients_block(struct smtp_clients *c, const struct sockaddr *sa,
                   time_t until)
{
	uint8_t key[16];
	struct block_entry *victim = NULL;
	size_t i;

	if (!key_of(sa, key))
		return;
	for (i = 0; i < SMTP_BLOCKS_MAX; i++) {
		struct block_entry *b = &c->blocks[i];

		if (b->until != 0 && memcmp(b->addr, key, 16) == 0) {
			victim = b;
			break;
		}
		if (victim == NULL || b->until < victim->until)
			victim = b;     /* free (0) or ending first */
	}
	memcpy(victim->addr, key, 16);
	victim->until = until;
}

time_t
smtp_clients_blocked(struct smtp_clients *c, const struct sockaddr *sa,
                     time_t now)
{
	uint8_t key[16];

	if (!key_of(sa, key))
		return 0;
	for (size_t i = 0; i < SMTP_BLOCKS_MAX; i++) {
		struct block_entry *b = &c->blocks[i];

		if (b->until != 0 && memcmp(b->addr, key, 16) == 0) {
			if (b->until > now)
				return b->until;
			b->until = 0;   /* over */
			return 0;
		}
	}
	return 0;
}
