/*
 * smtp-clients.h - how many sessions each client address has open in
 * this SMTP process (for smtp.max_connections_per_client): a small hash
 * table keyed by the address (IPv4 as v4-mapped IPv6), seeded randomly.
 * Also the addresses the auth role has blocked (brute force), so that new
 * connections from them get 421 at once: a bounded table of
 * SMTP_BLOCKS_MAX entries (the one ending first is replaced when full).
 */
#ifndef MSAGATE_SMTP_CLIENTS_H
#define MSAGATE_SMTP_CLIENTS_H

#include <sys/socket.h>
#include <time.h>

#define SMTP_BLOCKS_MAX 1024
#define SMTP_BLOCK_MAX_SECS (24 * 3600)   /* longest block we believe */

struct smtp_clients;

struct smtp_clients *smtp_clients_new(void);
void smtp_clients_free(struct smtp_clients *c);
/* Sessions open from sa's address (port ignored). */
int smtp_clients_count(const struct smtp_clients *c, const struct sockaddr *sa);
/* One more (delta 1) or one less (delta -1) session from sa's address. */
void smtp_clients_add(struct smtp_clients *c, const struct sockaddr *sa, int delta);
/* sa's address is blocked until the time until (updates an entry). */
void smtp_clients_block(struct smtp_clients *c, const struct sockaddr *sa,
                        time_t until);
/* When sa's address is blocked at now: the end of the block, else 0. */
time_t smtp_clients_blocked(struct smtp_clients *c, const struct sockaddr *sa,
                            time_t now);

#endif
