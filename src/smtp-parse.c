/*
 * smtp-parse.c - pure parsers for SMTP command lines: verbs, MAIL/RCPT
 * paths (RFC 5321 4.1.2, with RFC 6531 UTF-8) and their parameters, the
 * EHLO/HELO argument.  No I/O and no allocation.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "smtp-parse.h"

#define R_MAIL_SYNTAX   "501 5.5.4 Syntax: MAIL FROM:<address>"
#define R_RCPT_SYNTAX   "501 5.5.4 Syntax: RCPT TO:<address>"
#define R_BAD_SENDER    "501 5.1.7 Bad sender address syntax"
#define R_BAD_RCPT      "501 5.1.3 Bad recipient address syntax"
#define R_LONG_SENDER   "501 5.1.7 Sender address too long"
#define R_LONG_RCPT     "501 5.1.3 Recipient address too long"
#define R_UTF8          "553 5.6.7 Non-ASCII address requires SMTPUTF8"
#define R_BAD_PARAM     "501 5.5.4 Bad parameter syntax"
#define R_DUP_PARAM     "501 5.5.4 Duplicate parameter"
#define R_UNK_PARAM     "555 5.5.4 Unsupported parameter"
#define R_TOO_BIG       "552 5.3.4 Message size exceeds fixed limit"

bool
smtp_split_verb(const char *line, char *verb, size_t vlen, const char **args)
{
	size_t i;

	for (i = 0; line[i] != '\0' && line[i] != ' '; i++) {
		if (i + 1 >= vlen || !isalpha((unsigned char)line[i]))
			return false;
		verb[i] = (char)toupper((unsigned char)line[i]);
	}
	if (i == 0)
		return false;
	verb[i] = '\0';
	*args = line[i] == ' ' ? line + i + 1 : line + i;
	return true;
}

bool
smtp_is_http(const char *line)
{
	static const char *const methods[] = {
		"GET ", "POST ", "CONNECT ", "HEAD ", "PUT ", "OPTIONS ",
	};
	size_t i;

	for (i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
		if (strncasecmp(line, methods[i], strlen(methods[i])) == 0)
			return true;
	return false;
}

/* RFC 5322 atext. */
static bool
is_atext(unsigned char c)
{
	return isalnum(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c));
}

/*
 * Length of a well-formed UTF-8 sequence at s (non-ASCII lead byte), or 0
 * when malformed (overlong, surrogate, above U+10FFFF, truncated).
 */
static size_t
utf8_seq(const unsigned char *s)
{
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		return (s[1] & 0xc0) == 0x80 ? 2 : 0;
	if (s[0] >= 0xe0 && s[0] <= 0xef) {
		if ((s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
			return 0;
		if (s[0] == 0xe0 && s[1] < 0xa0)
			return 0;
		if (s[0] == 0xed && s[1] >= 0xa0)
			return 0;
		return 3;
	}
	if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		if ((s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 ||
		    (s[3] & 0xc0) != 0x80)
			return 0;
		if (s[0] == 0xf0 && s[1] < 0x90)
			return 0;
		if (s[0] == 0xf4 && s[1] >= 0x90)
			return 0;
		return 4;
	}
	return 0;
}

/* Parse a Dot-string or Quoted-string local part; returns its length or 0. */
static size_t
parse_local(const unsigned char *s, bool *utf8)
{
	size_t i = 0, n;

	if (s[0] == '"') {
		for (i = 1; s[i] != '"'; i++) {
			if (s[i] == '\\') {
				if (s[i + 1] < 32 || s[i + 1] > 126)
					return 0;
				i++;
			} else if (s[i] >= 0x80) {
				if ((n = utf8_seq(s + i)) == 0)
					return 0;
				*utf8 = true;
				i += n - 1;
			} else if (s[i] < 32 || s[i] == 127)
				return 0;       /* includes NUL: unterminated */
		}
		return i + 1;
	}
	for (;;) {
		size_t start = i;

		while (is_atext(s[i]) || s[i] >= 0x80) {
			if (s[i] >= 0x80) {
				if ((n = utf8_seq(s + i)) == 0)
					return 0;
				*utf8 = true;
				i += n;
			} else
				i++;
		}
		if (i == start)
			return 0;       /* empty atom: "..", leading or trailing dot */
		if (s[i] != '.')
			return i;
		i++;
	}
}

/* Parse a Domain (or an address literal); returns its length or 0. */
static size_t
parse_domain(const unsigned char *s, bool *utf8)
{
	size_t i = 0, n;

	if (s[0] == '[') {
		char lit[64];
		const char *end = strchr((const char *)s, ']');
		size_t len;
		unsigned char buf[16];

		if (end == NULL || (len = (size_t)(end - (const char *)s) - 1) == 0 ||
		    len >= sizeof(lit))
			return 0;
		memcpy(lit, s + 1, len);
		lit[len] = '\0';
		if (strncasecmp(lit, "IPv6:", 5) == 0) {
			if (inet_pton(AF_INET6, lit + 5, buf) != 1)
				return 0;
		} else if (inet_pton(AF_INET, lit, buf) != 1)
			return 0;
		return len + 2;
	}
	for (;;) {
		size_t start = i;

		while (isalnum(s[i]) || s[i] == '-' || s[i] >= 0x80) {
			if (s[i] >= 0x80) {
				if ((n = utf8_seq(s + i)) == 0)
					return 0;
				*utf8 = true;
				i += n;
			} else
				i++;
		}
		/* sub-domain = Let-dig [Ldh-str]: no leading/trailing '-' */
		if (i == start || s[start] == '-' || s[i - 1] == '-')
			return 0;
		if (s[i] != '.')
			return i;
		i++;
	}
}

int
smtp_parse_path(const char **pp, bool allow_null, bool utf8_ok,
                struct smtp_addr *out)
{
	const unsigned char *s = (const unsigned char *)*pp;
	const unsigned char *start;
	size_t ll, dl, len;
	bool utf8 = false;

	memset(out, 0, sizeof(*out));
	out->domain = out->addr;
	if (*s != '<')
		return -1;
	s++;
	if (*s == '>') {
		if (!allow_null)
			return -1;
		*pp = (const char *)s + 1;
		return 0;
	}
	/* A-d-l (source route): "@one,@two:" - obsolete, accepted and ignored. */
	if (*s == '@') {
		while (*s == '@') {
			s++;
			if ((dl = parse_domain(s, &utf8)) == 0)
				return -1;
			s += dl;
			if (*s == ',')
				s++;
			else if (*s == ':')
				break;
			else
				return -1;
		}
		if (*s != ':')
			return -1;
		s++;
	}
	start = s;
	if ((ll = parse_local(s, &utf8)) == 0)
		return -1;
	s += ll;
	dl = 0;
	if (*s == '@') {
		s++;
		if ((dl = parse_domain(s, &utf8)) == 0)
			return -1;
		s += dl;
	} else if (!(ll == 10 && strncasecmp((const char *)start, "postmaster", 10) == 0))
		return -1;      /* only <Postmaster> may lack a domain (4.5.1) */
	if (*s != '>')
		return -1;
	len = (size_t)(s - start);
	if (ll > SMTP_LOCAL_MAX || dl > SMTP_DOMAIN_MAX || len + 2 > SMTP_PATH_MAX)
		return -2;
	if (utf8 && !utf8_ok)
		return -3;
	memcpy(out->addr, start, len);
	out->addr[len] = '\0';
	out->local_len = ll;
	out->domain = dl ? out->addr + ll + 1 : out->addr + len;
	out->utf8 = utf8;
	*pp = (const char *)s + 1;
	return 0;
}

/* Match "KEYWORD:" case-insensitively, allowing one space after ':'. */
static const char *
skip_keyword(const char *args, const char *kw)
{
	size_t n = strlen(kw);

	if (strncasecmp(args, kw, n) != 0)
		return NULL;
	args += n;
	if (*args == ' ')
		args++;    /* "MAIL FROM: <a@b>" is common enough to accept */
	return args;
}

/*
 * Decimal without sign, at most 20 digits (RFC 1870's size-value); a value
 * past LLONG_MAX is LLONG_MAX (over any limit).  false otherwise.
 */
static bool
parse_decimal(const char *s, size_t n, long long *out)
{
	long long v = 0;
	size_t i;

	if (n == 0 || n > 20)
		return false;
	for (i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return false;
		if (v > (LLONG_MAX - (s[i] - '0')) / 10)
			v = LLONG_MAX;
		else
			v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return true;
}

/* RFC 3461 xtext (AUTH= value) or "<>". */
static bool
is_xtext(const char *s, size_t n)
{
	size_t i;

	if (n == 2 && memcmp(s, "<>", 2) == 0)
		return true;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '+') {
			if (i + 2 >= n)
				return false;
			if (!isxdigit((unsigned char)s[i + 1]) ||
			    !isxdigit((unsigned char)s[i + 2]))
				return false;
			i += 2;
		} else if (c < 33 || c > 126 || c == '=')
			return false;
	}
	return n > 0;
}

/*
 * Walk the " KEY[=VALUE]" parameters after a path; calls back per
 * parameter.  Returns NULL or the reply line.
 */
typedef const char *param_cb(void *ctx, const char *key, size_t klen,
                             const char *val, size_t vlen, unsigned *seen);

static const char *
parse_params(const char *p, param_cb *cb, void *ctx)
{
	unsigned seen = 0;
	const char *err;

	while (*p != '\0') {
		const char *key, *eq, *end;

		if (*p != ' ')
			return R_BAD_PARAM;
		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;      /* trailing spaces */
		key = p;
		end = strchr(p, ' ');
		if (end == NULL)
			end = p + strlen(p);
		eq = memchr(key, '=', (size_t)(end - key));
		if (eq == key)
			return R_BAD_PARAM;
		for (const char *q = key; q < (eq ? eq : end); q++)
			if (!isalnum((unsigned char)*q) && *q != '-')
				return R_BAD_PARAM;
		if (eq)
			err = cb(ctx, key, (size_t)(eq - key), eq + 1,
			         (size_t)(end - eq - 1), &seen);
		else
			err = cb(ctx, key, (size_t)(end - key), NULL, 0, &seen);
		if (err)
			return err;
		p = end;
	}
	return NULL;
}

struct mail_ctx {
	struct smtp_mail_args *m;
	long long max_size;
	const char *size_err;
};

#define KEYIS(k, kl, s) ((kl) == sizeof(s) - 1 && strncasecmp((k), (s), (kl)) == 0)

enum { P_SIZE = 1, P_BODY = 2, P_UTF8 = 4, P_AUTH = 8 };

/* One MAIL parameter (RFC 1870, 6152, 6531, 4954). */
static const char *
mail_param(void *vctx, const char *k, size_t kl, const char *v, size_t vl,
           unsigned *seen)
{
	struct mail_ctx *c = vctx;
	unsigned bit;

	if (KEYIS(k, kl, "SIZE")) {
		bit = P_SIZE;
		if (v == NULL || !parse_decimal(v, vl, &c->m->size))
			return R_BAD_PARAM;
		if (c->max_size > 0 && c->m->size > c->max_size)
			c->size_err = R_TOO_BIG;
	} else if (KEYIS(k, kl, "BODY")) {
		bit = P_BODY;
		if (v && KEYIS(v, vl, "7BIT"))
			c->m->body = SMTP_BODY_7BIT;
		else if (v && KEYIS(v, vl, "8BITMIME"))
			c->m->body = SMTP_BODY_8BITMIME;
		else
			return "501 5.5.4 Unsupported BODY type";
	} else if (KEYIS(k, kl, "SMTPUTF8")) {
		bit = P_UTF8;
		if (v != NULL)
			return R_BAD_PARAM;
		c->m->smtputf8 = true;
	} else if (KEYIS(k, kl, "AUTH")) {
		bit = P_AUTH;   /* RFC 4954 5: accepted, not trusted */
		if (v == NULL || !is_xtext(v, vl))
			return R_BAD_PARAM;
	} else
		return R_UNK_PARAM;
	if (*seen & bit)
		return R_DUP_PARAM;
	*seen |= bit;
	return NULL;
}

const char *
smtp_parse_mail(const char *args, long long max_size, struct smtp_mail_args *out)
{
	struct mail_ctx ctx = { out, max_size, NULL };
	const char *p, *err;
	int r;

	memset(out, 0, sizeof(*out));
	out->size = -1;
	if ((p = skip_keyword(args, "FROM:")) == NULL)
		return R_MAIL_SYNTAX;
	r = smtp_parse_path(&p, true, true, &out->from);
	if (r == -2)
		return R_LONG_SENDER;
	if (r != 0)
		return R_BAD_SENDER;
	if ((err = parse_params(p, mail_param, &ctx)) != NULL)
		return err;
	if (out->from.utf8 && !out->smtputf8)
		return R_UTF8;
	return ctx.size_err;
}

/* RCPT takes no parameters (no DSN advertised). */
static const char *
rcpt_param(void *ctx, const char *k, size_t kl, const char *v, size_t vl,
           unsigned *seen)
{
	return R_UNK_PARAM;
}

const char *
smtp_parse_rcpt(const char *args, bool utf8_ok, struct smtp_rcpt_args *out)
{
	const char *p;
	int r;

	memset(out, 0, sizeof(*out));
	if ((p = skip_keyword(args, "TO:")) == NULL)
		return R_RCPT_SYNTAX;
	r = smtp_parse_path(&p, false, utf8_ok, &out->to);
	if (r == -2)
		return R_LONG_RCPT;
	if (r == -3)
		return R_UTF8;
	if (r != 0)
		return R_BAD_RCPT;
	return parse_params(p, rcpt_param, NULL);
}

const char *
smtp_parse_helo(const char *args)
{
	size_t i;

	if (args[0] == '\0')
		return "501 5.5.4 Syntax: EHLO hostname";
	for (i = 0; args[i] != '\0'; i++) {
		unsigned char c = (unsigned char)args[i];

		if (c <= 32 || c >= 127 || c == '(' || c == ')' || c == '\\' ||
		    c == '"' || c == ';' || c == '<' || c == '>')
			return "501 5.5.4 Invalid domain name";
	}
	if (i > SMTP_HELO_MAX)
		return "501 5.5.4 Domain name too long";
	return NULL;
}

#define HDR_TEXT_MAX 2048    /* display name plus address, one mailbox */

/* Check one collected mailbox text "local@domain" into out; 0 or -1. */
static int
header_mailbox(const char *text, size_t len, struct smtp_addr *out)
{
	char path[SMTP_PATH_MAX + 3];
	const char *p = path;

	if (len == 0 || len > SMTP_PATH_MAX)
		return -1;
	path[0] = '<';
	memcpy(path + 1, text, len);
	path[len + 1] = '>';
	path[len + 2] = '\0';
	if (smtp_parse_path(&p, false, true, out) != 0 || *p != '\0')
		return -1;
	if (out->domain[0] == '\0')
		return -1;      /* a header address needs a domain */
	return 0;
}

int
smtp_parse_header_addrs(const char *v, struct smtp_addr *out, int max)
{
	char text[HDR_TEXT_MAX + 1], angle[SMTP_PATH_MAX + 1];
	size_t tl = 0, al = 0;
	int n = 0, depth;
	bool in_angle = false, have_angle = false, in_group = false;
	const char *p;

	for (p = v;; p++) {
		unsigned char c = (unsigned char)*p;

		if (c == '(' && !in_angle) {
			/* comment, nested, with quoted-pairs */
			for (depth = 1, p++; *p && depth > 0; p++) {
				if (*p == '\\' && p[1])
					p++;
				else if (*p == '(')
					depth++;
				else if (*p == ')')
					depth--;
			}
			if (depth > 0)
				return -1;
			p--;
			if (tl > 0 && tl < HDR_TEXT_MAX)
				text[tl++] = ' ';   /* a comment separates words */
			continue;
		}
		if (c == '"') {
			/* quoted string: part of a display name or local part */
			char *buf = in_angle ? angle : text;
			size_t *bl = in_angle ? &al : &tl;
			size_t cap = in_angle ? SMTP_PATH_MAX : HDR_TEXT_MAX;

			if (have_angle)
				return -1;
			do {
				if (*bl >= cap)
					return -1;
				buf[(*bl)++] = *p;
				if (*p == '\\' && p[1]) {
					p++;
					if (*bl >= cap)
						return -1;
					buf[(*bl)++] = *p;
				}
				p++;
			} while (*p && *p != '"');
			if (*p != '"' || *bl >= cap)
				return -1;
			buf[(*bl)++] = '"';
			continue;
		}
		if (in_angle) {
			if (c == '\0')
				return -1;
			if (c == '>') {
				in_angle = false;
				have_angle = true;
				continue;
			}
			if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
				continue;       /* CFWS inside angle brackets */
			if (c == '<' || al >= SMTP_PATH_MAX)
				return -1;
			angle[al++] = (char)c;
			continue;
		}
		if (c == '<') {
			if (have_angle)
				return -1;
			in_angle = true;
			al = 0;
			continue;
		}
		if (c == ':' && !have_angle) {
			/* "group-name:" - the text so far was its name */
			if (in_group)
				return -1;
			in_group = true;
			tl = 0;
			continue;
		}
		if (c == ',' || c == ';' || c == '\0') {
			size_t s = 0, e = tl;
			const char *mb;
			size_t ml;

			while (s < e && (text[s] == ' ' || text[s] == '\t'))
				s++;
			while (e > s && (text[e - 1] == ' ' || text[e - 1] == '\t' ||
			    text[e - 1] == '\r' || text[e - 1] == '\n'))
				e--;
			if (have_angle) {
				mb = angle;
				ml = al;
				/* drop an obsolete route "@a,@b:" */
				if (ml > 0 && angle[0] == '@') {
					const char *colon = memchr(angle, ':', al);

					if (colon == NULL)
						return -1;
					ml = al - (size_t)(colon + 1 - angle);
					mb = colon + 1;
				}
			} else {
				mb = text + s;
				ml = e - s;
				for (size_t i = 0; i < ml; i++)
					if (mb[i] == ' ' || mb[i] == '\t')
						return -1;  /* a name without <address> */
			}
			if (ml > 0) {
				if (n >= max || header_mailbox(mb, ml, &out[n]) != 0)
					return -1;
				n++;
			} else if (have_angle)
				return -1;          /* "<>" is no mailbox */
			tl = al = 0;
			have_angle = false;
			if (c == ';') {
				if (!in_group)
					return -1;
				in_group = false;
			}
			if (c == '\0')
				break;
			continue;
		}
		if (have_angle) {
			if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
				continue;
			return -1;          /* junk after <address> */
		}
		if (c < 32 && c != '\t' && c != '\r' && c != '\n')
			return -1;
		if (tl >= HDR_TEXT_MAX)
			return -1;
		text[tl++] = (char)((c == '\r' || c == '\n') ? ' ' : c);
	}
	if (in_group || in_angle)
		return -1;
	return n;
}
