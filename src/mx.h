/*
 * mx.h - DNS lookups of the onward relay (src/mx.c): the MX hosts of a
 * domain in preference order (RFC 5321 5.1: the domain itself when it has
 * no MX; RFC 7505 null MX) and the A/AAAA addresses of a host, with
 * libresolv's thread-safe res_nquery (one resolver state per call), over
 * the system's name servers or a configured list.
 */
#ifndef MSAGATE_MX_H
#define MSAGATE_MX_H

#include <sys/socket.h>

#include <stddef.h>

#define MX_NAME_MAX   256
#define MX_MAX_HOSTS  16
#define MX_MAX_ADDRS  16

enum mx_result {
	MX_OK,
	MX_NXDOMAIN,                 /* the domain does not exist: bounce */
	MX_NULL,                     /* null MX "0 .": accepts no mail: bounce */
	MX_TEMPFAIL                  /* SERVFAIL, timeout, ...: defer */
};

struct mx_host {
	char name[MX_NAME_MAX];
	int pref;
};

struct mx_addr {
	struct sockaddr_storage ss;
	socklen_t len;
};

/* The name servers to ask ("192.0.2.53" or "127.0.0.1:5353"; IPv4). */
struct mx_servers {
	const char *const *list;
	size_t n;
};

/*
 * The MX hosts of domain, lowest preference first, into hosts (up to
 * MX_MAX_HOSTS); without MX records the domain itself (preference 0).
 * why gets a reason for anything but MX_OK.
 */
enum mx_result mx_lookup(const char *domain, const struct mx_servers *srv,
    struct mx_host *hosts, size_t *n, char *why, size_t wlen);

/*
 * The IPv4 and IPv6 addresses of host with port (A first, then AAAA).
 * MX_NXDOMAIN also when the name has no address at all.
 */
enum mx_result mx_addresses(const char *host, unsigned port,
    const struct mx_servers *srv, struct mx_addr *addrs, size_t *n,
    char *why, size_t wlen);

/* true if s is a usable dns_servers entry ("a.b.c.d" or "a.b.c.d:port"). */
int mx_server_valid(const char *s);

#endif
