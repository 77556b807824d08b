/*
 * pwhash.c - password schemes in Dovecot's "{SCHEME}data" form (see
 * pwhash.h): verify a stored credential against a password and make new
 * hashes for `msagatectl pw`.
 *
 * The crypt(3) family goes through libxcrypt's crypt_rn() with a private
 * struct crypt_data per call, so verification is thread-safe (the auth
 * role verifies in worker threads).  ARGON2ID uses libargon2's encoded
 * "$argon2id$v=19$m=..,t=..,p=..$salt$hash" strings, which is also what
 * Dovecot (libsodium) reads and writes.  Every final comparison is done
 * in constant time.
 */
#include <crypt.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#ifdef HAVE_ARGON2
#include <argon2.h>
#endif

#include "pwhash.h"
#include "util.h"

/* Longest stored value we look at; anything longer is malformed. */
#define PWHASH_MAX_STORED	1024

/* Costs for new hashes.  All of them verify in Dovecot's `doveadm pw -t`. */
#define SHA_CRYPT_ROUNDS	0       /* 0 = libxcrypt default 5000, like Dovecot */
#define BLF_CRYPT_COST		10      /* Dovecot writes 05; 10 is today's norm */
#define ARGON2_T_COST		3       /* Dovecot's defaults: t=3, m=64 MiB, p=1 */
#define ARGON2_M_COST		65536
#define ARGON2_PARALLELISM	1
#define ARGON2_SALT_LEN		16
#define ARGON2_HASH_LEN		32

enum scheme_kind { K_CRYPT, K_PLAIN, K_ARGON2ID };

struct scheme {
	const char *name;
	enum scheme_kind kind;
	const char *prefix;      /* crypt prefix for new hashes, NULL: verify only */
	unsigned long cost;
};

static const struct scheme schemes[] = {
	{ "SHA512-CRYPT", K_CRYPT, "$6$", SHA_CRYPT_ROUNDS },
	{ "SHA256-CRYPT", K_CRYPT, "$5$", SHA_CRYPT_ROUNDS },
	{ "BLF-CRYPT", K_CRYPT, "$2y$", BLF_CRYPT_COST },
	{ "MD5-CRYPT", K_CRYPT, NULL, 0 },     /* legacy: verify only */
	{ "CRYPT", K_CRYPT, NULL, 0 },         /* any crypt(3) string: verify only */
	{ "PLAIN", K_PLAIN, NULL, 0 },
	{ "CLEAR", K_PLAIN, NULL, 0 },
#ifdef HAVE_ARGON2
	{ "ARGON2ID", K_ARGON2ID, NULL, 0 },
#endif
};

static const struct scheme *
scheme_find(const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
		if (strlen(schemes[i].name) == len &&
		    strncasecmp(schemes[i].name, name, len) == 0)
			return &schemes[i];
	return NULL;
}

bool
pwhash_scheme_known(const char *scheme)
{
	return scheme != NULL && scheme_find(scheme, strlen(scheme)) != NULL;
}

const char *
pwhash_default_scheme(void)
{
#ifdef HAVE_ARGON2
	return "ARGON2ID";
#else
	return "SHA512-CRYPT";
#endif
}

/*
 * split_stored - "{SCHEME}data" -> scheme + data.  A value without braces
 * is a crypt(3) string when it starts with '$'; NULL otherwise.
 */
static const struct scheme *
split_stored(const char *stored, const char **data)
{
	const char *end;

	if (stored[0] == '{') {
		end = strchr(stored, '}');
		if (end == NULL)
			return NULL;
		*data = end + 1;
		return scheme_find(stored + 1, (size_t)(end - stored - 1));
	}
	if (stored[0] == '$') {
		*data = stored;
		return scheme_find("CRYPT", 5);
	}
	return NULL;
}

const char *
pwhash_plaintext(const char *stored)
{
	const char *data;
	const struct scheme *s;

	if (stored == NULL)
		return NULL;
	s = split_stored(stored, &data);
	if (s == NULL || s->kind != K_PLAIN)
		return NULL;
	return data;
}

/* verify_crypt - hash with the stored setting and compare the whole string. */
static enum pwhash_result
verify_crypt(const char *data, const char *password)
{
	struct crypt_data *cd;
	const char *out;
	enum pwhash_result r;

	if (data[0] == '\0')
		return PWHASH_ERROR;
	cd = xcalloc(1, sizeof(*cd));
	out = crypt_rn(password, data, cd, (int)sizeof(*cd));
	if (out == NULL || out[0] == '*' || strlen(out) != strlen(data))
		r = PWHASH_ERROR;       /* unsupported, malformed or truncated */
	else
		r = ct_equal(out, strlen(out), data, strlen(data)) ?
		    PWHASH_OK : PWHASH_MISMATCH;
	secure_zero(cd, sizeof(*cd));
	free(cd);
	return r;
}

#ifdef HAVE_ARGON2
static enum pwhash_result
verify_argon2id(const char *data, const char *password)
{
	int rc;

	if (strncmp(data, "$argon2id$", 10) != 0)
		return PWHASH_ERROR;
	/* argon2id_verify compares in constant time internally. */
	rc = argon2id_verify(data, password, strlen(password));
	if (rc == ARGON2_OK)
		return PWHASH_OK;
	if (rc == ARGON2_VERIFY_MISMATCH)
		return PWHASH_MISMATCH;
	return PWHASH_ERROR;
}
#endif

enum pwhash_result
pwhash_verify(const char *stored, const char *password)
{
	const struct scheme *s;
	const char *data;

	if (stored == NULL || password == NULL ||
	    strnlen(stored, PWHASH_MAX_STORED + 1) > PWHASH_MAX_STORED)
		return PWHASH_ERROR;
	s = split_stored(stored, &data);
	if (s == NULL)
		return PWHASH_ERROR;
	switch (s->kind) {
	case K_PLAIN:
		return ct_equal(password, strlen(password), data, strlen(data)) ?
		    PWHASH_OK : PWHASH_MISMATCH;
	case K_CRYPT:
		return verify_crypt(data, password);
	case K_ARGON2ID:
#ifdef HAVE_ARGON2
		return verify_argon2id(data, password);
#else
		break;
#endif
	}
	return PWHASH_ERROR;
}

/* make_crypt - new salt from crypt_gensalt_rn (it reads /dev/urandom-grade
 * randomness itself when given NULL), then crypt_rn. */
static char *
make_crypt(const struct scheme *s, const char *password)
{
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];
	unsigned char rnd[32];
	struct crypt_data *cd;
	const char *out;
	char *res = NULL;

	random_bytes(rnd, sizeof(rnd));
	if (crypt_gensalt_rn(s->prefix, s->cost, (const char *)rnd, (int)sizeof(rnd),
	    setting, (int)sizeof(setting)) == NULL)
		return NULL;
	secure_zero(rnd, sizeof(rnd));
	cd = xcalloc(1, sizeof(*cd));
	out = crypt_rn(password, setting, cd, (int)sizeof(*cd));
	if (out != NULL && out[0] != '*')
		res = xasprintf("{%s}%s", s->name, out);
	secure_zero(cd, sizeof(*cd));
	free(cd);
	return res;
}

#ifdef HAVE_ARGON2
static char *
make_argon2id(const char *password)
{
	unsigned char salt[ARGON2_SALT_LEN];
	size_t enclen;
	char *enc, *res = NULL;

	random_bytes(salt, sizeof(salt));
	enclen = argon2_encodedlen(ARGON2_T_COST, ARGON2_M_COST, ARGON2_PARALLELISM,
	    sizeof(salt), ARGON2_HASH_LEN, Argon2_id);
	enc = xmalloc(enclen + 1);
	if (argon2id_hash_encoded(ARGON2_T_COST, ARGON2_M_COST, ARGON2_PARALLELISM,
	    password, strlen(password), salt, sizeof(salt), ARGON2_HASH_LEN,
	    enc, enclen) == ARGON2_OK)
		res = xasprintf("{ARGON2ID}%s", enc);
	free(enc);
	return res;
}
#endif

char *
pwhash_make(const char *scheme, const char *password)
{
	const struct scheme *s;

	if (scheme == NULL || password == NULL)
		return NULL;
	s = scheme_find(scheme, strlen(scheme));
	if (s == NULL)
		return NULL;
	switch (s->kind) {
	case K_PLAIN:
		/* passwd-file lines cannot carry a newline or a ':' in a field. */
		if (strpbrk(password, "\n\r:") != NULL)
			return NULL;
		return xasprintf("{%s}%s", s->name, password);
	case K_CRYPT:
		if (s->prefix == NULL)
			return NULL;
		return make_crypt(s, password);
	case K_ARGON2ID:
#ifdef HAVE_ARGON2
		return make_argon2id(password);
#else
		break;
#endif
	}
	return NULL;
}
