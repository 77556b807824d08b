/*
 * test-smtp-clients.c - unit tests of the per-client session counts
 * (src/smtp-clients.c): IPv4 and IPv6 keys, ports ignored, removal at 0.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "smtp-clients.h"
#include "tap.h"

static struct sockaddr *
v4(const char *ip, int port, struct sockaddr_in *sin)
{
	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	sin->sin_port = htons(port);
	inet_pton(AF_INET, ip, &sin->sin_addr);
	return (struct sockaddr *)sin;
}

static struct sockaddr *
v6(const char *ip, struct sockaddr_in6 *sin6)
{
	memset(sin6, 0, sizeof(*sin6));
	sin6->sin6_family = AF_INET6;
	inet_pton(AF_INET6, ip, &sin6->sin6_addr);
	return (struct sockaddr *)sin6;
}

int
main(void)
{
	struct smtp_clients *c = smtp_clients_new();
	struct sockaddr_in a, b;
	struct sockaddr_in6 x;
	char ip[32];

	is_int(smtp_clients_count(c, v4("192.0.2.1", 1, &a)), 0, "unknown address: 0");
	smtp_clients_add(c, v4("192.0.2.1", 1000, &a), 1);
	smtp_clients_add(c, v4("192.0.2.1", 1001, &a), 1);
	smtp_clients_add(c, v4("192.0.2.2", 1000, &b), 1);
	is_int(smtp_clients_count(c, v4("192.0.2.1", 5, &a)), 2, "two sessions, port ignored");
	is_int(smtp_clients_count(c, v4("192.0.2.2", 5, &b)), 1, "other address counted apart");
	is_int(smtp_clients_count(c, v6("::ffff:192.0.2.1", &x)), 2, "v4-mapped is the same client");
	smtp_clients_add(c, v6("2001:db8::1", &x), 1);
	is_int(smtp_clients_count(c, v6("2001:db8::1", &x)), 1, "IPv6 address");
	is_int(smtp_clients_count(c, v6("2001:db8::2", &x)), 0, "other IPv6 address");
	smtp_clients_add(c, v4("192.0.2.1", 1, &a), -1);
	smtp_clients_add(c, v4("192.0.2.1", 1, &a), -1);
	is_int(smtp_clients_count(c, v4("192.0.2.1", 1, &a)), 0, "back to 0");
	smtp_clients_add(c, v4("192.0.2.9", 1, &a), -1);
	is_int(smtp_clients_count(c, v4("192.0.2.9", 1, &a)), 0, "decrement of unknown is ignored");
	for (int i = 0; i < 20000; i++) {
		snprintf(ip, sizeof(ip), "10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
		smtp_clients_add(c, v4(ip, 1, &a), 1);
	}
	is_int(smtp_clients_count(c, v4("10.0.78.31", 1, &a)), 1, "20000 addresses");
	for (int i = 0; i < 20000; i++) {
		snprintf(ip, sizeof(ip), "10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
		smtp_clients_add(c, v4(ip, 1, &a), -1);
	}
	is_int(smtp_clients_count(c, v4("10.0.78.31", 1, &a)), 0, "all removed");
	smtp_clients_free(c);
	return done_testing();
}
