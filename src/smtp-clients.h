/*
 * smtp-clients.h - how many sessions each client address has open in
 * this SMTP process (for smtp.max_connections_per_client): a small hash
 * table keyed by the address (IPv4 as v4-mapped IPv6), seeded randomly.
 */
#ifndef MSAGATE_SMTP_CLIENTS_H
#define MSAGATE_SMTP_CLIENTS_H

#include <sys/socket.h>

struct smtp_clients;

struct smtp_clients *smtp_clients_new(void);
void smtp_clients_free(struct smtp_clients *c);
/* Sessions open from sa's address (port ignored). */
int smtp_clients_count(const struct smtp_clients *c, const struct sockaddr *sa);
/* One more (delta 1) or one less (delta -1) session from sa's address. */
void smtp_clients_add(struct smtp_clients *c, const struct sockaddr *sa, int delta);

#endif
