/*
 * mx.c - MX and address lookups for the onward relay (see mx.h), with
 * res_nquery on a private struct __res_state per call (thread-safe; runs
 * in the delivery worker threads) and a small bounded walker over the
 * answer section (dn_skipname/dn_expand are in libc; no -lresolv).  Bounded: at most MX_MAX_HOSTS hosts and MX_MAX_ADDRS
 * addresses; a couple of seconds per query and two tries.
 */
#include <sys/socket.h>

#include <netinet/in.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <resolv.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mx.h"

#define ANSWER_MAX 65536

/* One resource record of the answer section. */
struct rr {
	int type;
	const unsigned char *rdata;
	int rdlen;
};

/*
 * The answer records of a reply (at most max); returns how many, 0 for a
 * malformed reply.
 */
static size_t
answers(const unsigned char *buf, int len, struct rr *out, size_t max)
{
	const unsigned char *p = buf + 12, *end = buf + len;
	int qd, an, n;
	size_t k = 0;

	if (len < 12)
		return 0;
	qd = (buf[4] << 8) | buf[5];
	an = (buf[6] << 8) | buf[7];
	for (int i = 0; i < qd; i++) {
		if ((n = dn_skipname(p, end)) < 0 || end - p < n + 4)
			return 0;
		p += n + 4;
	}
	for (int i = 0; i < an && k < max; i++) {
		int rdlen;

		if ((n = dn_skipname(p, end)) < 0 || end - p < n + 10)
			return k;
		p += n;
		rdlen = (p[8] << 8) | p[9];
		if (end - p < 10 + rdlen)
			return k;
		out[k].type = (p[0] << 8) | p[1];
		out[k].rdata = p + 10;
		out[k].rdlen = rdlen;
		k++;
		p += 10 + rdlen;
	}
	return k;
}

int
mx_server_valid(const char *s)
{
	char ip[64];
	const char *colon = strchr(s, ':');
	struct in_addr a;
	size_t len = colon ? (size_t)(colon - s) : strlen(s);

	if (len == 0 || len >= sizeof(ip))
		return 0;
	memcpy(ip, s, len);
	ip[len] = '\0';
	if (inet_pton(AF_INET, ip, &a) != 1)
		return 0;
	if (colon != NULL) {
		const char *p = colon + 1;

		if (p[0] == '\0' || strlen(p) > 5 || strspn(p, "0123456789") != strlen(p) ||
		    atoi(p) < 1 || atoi(p) > 65535)
			return 0;
	}
	return 1;
}

/* A resolver state asking srv (or the system's servers). */
static int
res_setup(res_state st, const struct mx_servers *srv)
{
	memset(st, 0, sizeof(*st));
	if (res_ninit(st) != 0)
		return -1;
	st->retrans = 2;
	st->retry = 2;
	st->options &= ~(unsigned long)(RES_DNSRCH | RES_DEFNAMES);
	if (srv != NULL && srv->n > 0) {
		size_t k = 0;

		for (size_t i = 0; i < srv->n && k < MAXNS; i++) {
			char ip[64];
			const char *s = srv->list[i], *colon = strchr(s, ':');
			size_t len = colon ? (size_t)(colon - s) : strlen(s);
			struct sockaddr_in *sin = &st->nsaddr_list[k];

			if (!mx_server_valid(s))
				continue;
			memcpy(ip, s, len);
			ip[len] = '\0';
			memset(sin, 0, sizeof(*sin));
			sin->sin_family = AF_INET;
			sin->sin_port = htons(colon ? (uint16_t)atoi(colon + 1) : 53);
			(void)inet_pton(AF_INET, ip, &sin->sin_addr);
			k++;
		}
		st->nscount = (int)k;
		/* no IPv6 servers from resolv.conf */
		for (int i = 0; i < MAXNS; i++)
			st->_u._ext.nsaddrs[i] = NULL;
		st->_u._ext.nscount = 0;
	}
	return 0;
}

/*
 * One query; the answer in buf (its length returned), or -1 with the
 * result to report in *res.
 */
static int
query(res_state st, const char *name, int type, unsigned char *buf,
    enum mx_result *res, char *why, size_t wlen)
{
	int len;

	st->res_h_errno = 0;
	len = res_nquery(st, name, ns_c_in, type, buf, ANSWER_MAX);
	if (len >= 0)
		return len;
	switch (st->res_h_errno) {
	case HOST_NOT_FOUND:
		*res = MX_NXDOMAIN;
		snprintf(why, wlen, "Host or domain name not found: %s", name);
		break;
	case NO_DATA:
		return 0;            /* no records of this type */
	default:
		*res = MX_TEMPFAIL;
		snprintf(why, wlen, "DNS lookup of %s (%s) failed: %s", name,
		    type == ns_t_mx ? "MX" : type == ns_t_a ? "A" : "AAAA",
		    st->res_h_errno == TRY_AGAIN ? "temporary failure (SERVFAIL or "
		    "timeout)" : "no answer");
		break;
	}
	return -1;
}

enum mx_result
mx_lookup(const char *domain, const struct mx_servers *srv,
    struct mx_host *hosts, size_t *n, char *why, size_t wlen)
{
	struct __res_state st;
	unsigned char *buf;
	enum mx_result res = MX_OK;
	int len;

	*n = 0;
	if (res_setup(&st, srv) < 0) {
		snprintf(why, wlen, "cannot initialise the resolver");
		return MX_TEMPFAIL;
	}
	buf = malloc(ANSWER_MAX);
	if (buf == NULL) {
		res_nclose(&st);
		snprintf(why, wlen, "out of memory");
		return MX_TEMPFAIL;
	}
	if ((len = query(&st, domain, ns_t_mx, buf, &res, why, wlen)) < 0)
		goto out;
	if (len > 0) {
		struct rr rrs[64];
		size_t count = answers(buf, len, rrs, 64);

		for (size_t i = 0; i < count && *n < MX_MAX_HOSTS; i++) {
			const unsigned char *rd = rrs[i].rdata;
			char name[MX_NAME_MAX];

			if (rrs[i].type != ns_t_mx || rrs[i].rdlen < 3)
				continue;
			if (dn_expand(buf, buf + len, rd + 2, name, sizeof(name)) < 0)
				continue;
			hosts[*n].pref = (rd[0] << 8) | rd[1];
			snprintf(hosts[*n].name, sizeof(hosts[*n].name), "%s", name);
			(*n)++;
		}
	}
	if (*n == 1 && hosts[0].name[0] == '\0') {
		/* RFC 7505: "MX 0 ." */
		res = MX_NULL;
		*n = 0;
		snprintf(why, wlen, "Domain %s does not accept mail (null MX)", domain);
		goto out;
	}
	/* drop "." among real hosts, then sort by preference (stable) */
	{
		size_t k = 0;

		for (size_t i = 0; i < *n; i++)
			if (hosts[i].name[0] != '\0')
				hosts[k++] = hosts[i];
		*n = k;
		for (size_t i = 1; i < *n; i++) {
			struct mx_host h = hosts[i];
			size_t j = i;

			for (; j > 0 && hosts[j - 1].pref > h.pref; j--)
				hosts[j] = hosts[j - 1];
			hosts[j] = h;
		}
	}
	if (*n == 0) {
		/* no MX: the domain itself is the host (A/AAAA) */
		snprintf(hosts[0].name, sizeof(hosts[0].name), "%s", domain);
		hosts[0].pref = 0;
		*n = 1;
	}
out:
	free(buf);
	res_nclose(&st);
	return res;
}

/* Add the A or AAAA records of one answer. */
static void
add_addrs(const unsigned char *buf, int len, int type, unsigned port,
    struct mx_addr *addrs, size_t *n)
{
	struct rr rrs[64];
	size_t count = len > 0 ? answers(buf, len, rrs, 64) : 0;

	for (size_t i = 0; i < count && *n < MX_MAX_ADDRS; i++) {
		if (rrs[i].type != type)
			continue;
		memset(&addrs[*n], 0, sizeof(addrs[*n]));
		if (type == ns_t_a && rrs[i].rdlen == 4) {
			struct sockaddr_in *sin = (struct sockaddr_in *)&addrs[*n].ss;

			sin->sin_family = AF_INET;
			sin->sin_port = htons((uint16_t)port);
			memcpy(&sin->sin_addr, rrs[i].rdata, 4);
			addrs[(*n)++].len = sizeof(*sin);
		} else if (type == ns_t_aaaa && rrs[i].rdlen == 16) {
			struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&addrs[*n].ss;

			sin6->sin6_family = AF_INET6;
			sin6->sin6_port = htons((uint16_t)port);
			memcpy(&sin6->sin6_addr, rrs[i].rdata, 16);
			addrs[(*n)++].len = sizeof(*sin6);
		}
	}
}

enum mx_result
mx_addresses(const char *host, unsigned port, const struct mx_servers *srv,
    struct mx_addr *addrs, size_t *n, char *why, size_t wlen)
{
	struct __res_state st;
	unsigned char *buf;
	enum mx_result res = MX_OK, r2 = MX_OK;
	char why2[256];
	int len;

	*n = 0;
	if (res_setup(&st, srv) < 0) {
		snprintf(why, wlen, "cannot initialise the resolver");
		return MX_TEMPFAIL;
	}
	if ((buf = malloc(ANSWER_MAX)) == NULL) {
		res_nclose(&st);
		snprintf(why, wlen, "out of memory");
		return MX_TEMPFAIL;
	}
	if ((len = query(&st, host, ns_t_a, buf, &res, why, wlen)) > 0)
		add_addrs(buf, len, ns_t_a, port, addrs, n);
	if (res != MX_NXDOMAIN) {
		if ((len = query(&st, host, ns_t_aaaa, buf, &r2, why2, sizeof(why2))) > 0)
			add_addrs(buf, len, ns_t_aaaa, port, addrs, n);
	}
	free(buf);
	res_nclose(&st);
	if (*n > 0)
		return MX_OK;
	if (res == MX_OK && r2 != MX_OK) {
		snprintf(why, wlen, "%s", why2);
		return r2;
	}
	if (res == MX_OK) {
		snprintf(why, wlen, "no address (A/AAAA) for %s", host);
		return MX_NXDOMAIN;
	}
	return res;
}
