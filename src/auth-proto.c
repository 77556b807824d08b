/*
 * auth-proto.c - pure line helpers for the Dovecot auth protocol: find a
 * line, split it at TABs, tab-(un)escape, read key=value parameters and
 * request ids.  Used by both the server (auth role) and the client (authc).
 */
#include <string.h>

#include "auth-proto.h"
#include "util.h"

int
auth_proto_line(const char *buf, size_t len, size_t max, size_t *linelen)
{
	size_t scan = len < max ? len : max;
	const char *nl = memchr(buf, '\n', scan);

	if (nl != NULL) {
		*linelen = (size_t)(nl - buf) + 1;
		return 1;
	}
	return len >= max ? -1 : 0;
}

size_t
auth_proto_split(char *line, char **argv, size_t max)
{
	size_t n = 0;
	char *p = line;

	if (max == 0)
		return 0;
	for (;;) {
		char *tab;

		if (n + 1 == max) {
			argv[n++] = p;
			break;
		}
		argv[n++] = p;
		tab = strchr(p, '\t');
		if (tab == NULL)
			break;
		*tab = '\0';
		p = tab + 1;
	}
	return n;
}

bool
auth_proto_unescape_len(char *s, size_t *outlen)
{
	return tab_unescape_len(s, outlen);
}

bool
auth_proto_unescape(char *s)
{
	return tab_unescape_len(s, NULL);
}

void
auth_proto_escape(struct sbuf *out, const char *s)
{
	tab_escape(out, s);
}

const char *
auth_proto_param(const char *field, const char *key)
{
	size_t kl = strlen(key);

	if (strncmp(field, key, kl) != 0)
		return NULL;
	if (field[kl] == '=')
		return field + kl + 1;
	if (field[kl] == '\0')
		return field + kl;
	return NULL;
}

const char *
auth_proto_service(const char *field)
{
	const char *v = auth_proto_param(field, "service");

	return v != NULL ? v : auth_proto_param(field, "protocol");
}

bool
auth_proto_version(char *const *argv, size_t argc, unsigned int major,
    unsigned int *minor)
{
	unsigned int ma, mi;

	if (argc < 3 || strcmp(argv[0], "VERSION") != 0 ||
	    !auth_proto_parse_uint(argv[1], &ma) ||
	    !auth_proto_parse_uint(argv[2], &mi) || ma != major)
		return false;
	*minor = mi;
	return true;
}

bool
auth_proto_parse_uint(const char *s, unsigned int *out)
{
	unsigned long long v;

	if (!parse_uint(s, 0xffffffffULL, &v))
		return false;
	*out = (unsigned int)v;
	return true;
}

bool
auth_proto_parse_id(const char *s, uint32_t *id)
{
	unsigned int v;

	if (!auth_proto_parse_uint(s, &v) || v == 0)
		return false;
	*id = v;
	return true;
}

bool
auth_proto_b64_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || (n == 1 && s[0] == '='))
		return true;
	return b64_valid(s, n);
}
