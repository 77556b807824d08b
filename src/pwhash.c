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
 *
 * SCRAM-SHA-1 and SCRAM-SHA-256 are Dovecot's stored SCRAM secrets
 * (src/auth/password-scheme-scram.c): "iter,salt,StoredKey,ServerKey",
 * the last three base64.  A password is checked by computing
 * StoredKey = H(HMAC(PBKDF2-HMAC(password, salt, iter), "Client Key"))
 * and comparing it (constant time).
 */
#include <crypt.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#ifdef HAVE_ARGON2
#include <argon2.h>
#endif

#include <openssl/evp.h>
#include <openssl/hmac.h>

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

#define SCRAM_ITERATIONS	4096    /* Dovecot's SCRAM_DEFAULT_ITERATE_COUNT */
#define SCRAM_MAX_ITERATIONS	1000000 /* bound the work a stored value may ask */
#define SCRAM_SALT_LEN		16

enum scheme_kind { K_CRYPT, K_PLAIN, K_ARGON2ID, K_SCRAM_SHA1, K_SCRAM_SHA256 };

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
	{ "SCRAM-SHA-1", K_SCRAM_SHA1, NULL, 0 },
	{ "SCRAM-SHA-256", K_SCRAM_SHA256, NULL, 0 },
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

/* scram_md - the digest of a SCRAM scheme kind. */
static const EVP_MD *
scram_md(enum scheme_kind k)
{
	return k == K_SCRAM_SHA1 ? EVP_sha1() : EVP_sha256();
}

/*
 * scram_keys - StoredKey and ServerKey (each EVP_MD_size bytes) of
 * password for salt and iter.  false on a crypto library failure.
 */
static bool
scram_keys(const EVP_MD *md, const char *password, const unsigned char *salt,
    size_t saltlen, unsigned long iter, unsigned char *stored_key,
    unsigned char *server_key)
{
	unsigned char salted[EVP_MAX_MD_SIZE], client_key[EVP_MAX_MD_SIZE];
	unsigned int len, sz = (unsigned int)EVP_MD_size(md);
	bool ok;

	ok = PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, (int)saltlen,
	    (int)iter, md, (int)sz, salted) == 1 &&
	    HMAC(md, salted, (int)sz, (const unsigned char *)"Client Key", 10,
	    client_key, &len) != NULL &&
	    EVP_Digest(client_key, sz, stored_key, &len, md, NULL) == 1 &&
	    HMAC(md, salted, (int)sz, (const unsigned char *)"Server Key", 10,
	    server_key, &len) != NULL;
	secure_zero(salted, sizeof(salted));
	secure_zero(client_key, sizeof(client_key));
	return ok;
}

/* b64_field - decode one base64 field of length n into out (max bytes). */
static ssize_t
b64_field(const char *s, size_t n, unsigned char *out, size_t max)
{
	if (n == 0 || b64_decoded_max(n) > max || !b64_valid(s, n))
		return -1;
	return b64_decode(s, n, out);
}

/* A parsed Dovecot stored SCRAM secret. */
struct scram_stored {
	unsigned long long iter;
	unsigned char salt[256];
	size_t saltlen;
	unsigned char stored_key[EVP_MAX_MD_SIZE + 4];
	unsigned char server_key[EVP_MAX_MD_SIZE + 4];
	size_t keylen;           /* the digest size: both keys are this long */
};

/*
 * scram_parse - Dovecot's "iter,salt,StoredKey,ServerKey" for scheme kind
 * k into *out; false when malformed (bad count, base64 or key lengths).
 */
static bool
scram_parse(enum scheme_kind k, const char *data, struct scram_stored *out)
{
	const EVP_MD *md = scram_md(k);
	size_t sz = (size_t)EVP_MD_size(md);
	const char *f[4], *p = data;
	size_t flen[4], i;
	char num[16];
	ssize_t saltlen;

	for (i = 0; i < 4; i++) {
		const char *comma = strchr(p, ',');
		f[i] = p;
		flen[i] = comma ? (size_t)(comma - p) : strlen(p);
		if ((comma == NULL) != (i == 3))
			return false;
		p = comma ? comma + 1 : p;
	}
	if (flen[0] == 0 || flen[0] >= sizeof(num))
		return false;
	memcpy(num, f[0], flen[0]);
	num[flen[0]] = '\0';
	if (!parse_uint(num, SCRAM_MAX_ITERATIONS, &out->iter) || out->iter == 0)
		return false;
	if ((saltlen = b64_field(f[1], flen[1], out->salt, sizeof(out->salt))) <= 0 ||
	    b64_field(f[2], flen[2], out->stored_key, sizeof(out->stored_key)) !=
	    (ssize_t)sz ||
	    b64_field(f[3], flen[3], out->server_key, sizeof(out->server_key)) !=
	    (ssize_t)sz)
		return false;
	out->saltlen = (size_t)saltlen;
	out->keylen = sz;
	return true;
}

/* verify_scram - Dovecot's "iter,salt,StoredKey,ServerKey". */
static enum pwhash_result
verify_scram(enum scheme_kind k, const char *data, const char *password)
{
	const EVP_MD *md = scram_md(k);
	struct scram_stored st;
	unsigned char got[EVP_MAX_MD_SIZE], gotsrv[EVP_MAX_MD_SIZE];
	enum pwhash_result r;

	if (!scram_parse(k, data, &st))
		return PWHASH_ERROR;
	if (!scram_keys(md, password, st.salt, st.saltlen, (unsigned long)st.iter,
	    got, gotsrv)) {
		secure_zero(&st, sizeof(st));
		return PWHASH_ERROR;
	}
	r = ct_equal(got, st.keylen, st.stored_key, st.keylen) ?
	    PWHASH_OK : PWHASH_MISMATCH;
	secure_zero(got, sizeof(got));
	secure_zero(gotsrv, sizeof(gotsrv));
	secure_zero(&st, sizeof(st));
	return r;
}

char *
pwhash_scram_secret(const char *stored, const char *mech)
{
	const struct scheme *s;
	const char *data;
	struct scram_stored st;
	/* base64 of 256 salt bytes is 344 chars; of a 64-byte key 88 */
	char bsalt[352], bsk[96], bsvk[96];
	char *res;

	if (stored == NULL || mech == NULL ||
	    strnlen(stored, PWHASH_MAX_STORED + 1) > PWHASH_MAX_STORED)
		return NULL;
	s = split_stored(stored, &data);
	if (s == NULL || (s->kind != K_SCRAM_SHA1 && s->kind != K_SCRAM_SHA256) ||
	    strcasecmp(s->name, mech) != 0)
		return NULL;
	if (!scram_parse(s->kind, data, &st)) {
		secure_zero(&st, sizeof(st));
		return NULL;
	}
	b64_encode(st.salt, st.saltlen, bsalt);
	b64_encode(st.stored_key, st.keylen, bsk);
	b64_encode(st.server_key, st.keylen, bsvk);
	res = xasprintf("%s$%llu:%s$%s:%s", s->name, st.iter, bsalt, bsk, bsvk);
	secure_zero(&st, sizeof(st));
	secure_zero(bsk, sizeof(bsk));
	secure_zero(bsvk, sizeof(bsvk));
	return res;
}

/* make_scram - a new Dovecot-format stored SCRAM secret. */
static char *
make_scram(const struct scheme *s, const char *password)
{
	const EVP_MD *md = scram_md(s->kind);
	size_t sz = (size_t)EVP_MD_size(md);
	unsigned char salt[SCRAM_SALT_LEN], sk[EVP_MAX_MD_SIZE], svk[EVP_MAX_MD_SIZE];
	char bsalt[64], bsk[128], bsvk[128];
	char *res = NULL;

	random_bytes(salt, sizeof(salt));
	if (scram_keys(md, password, salt, sizeof(salt), SCRAM_ITERATIONS, sk, svk)) {
		b64_encode(salt, sizeof(salt), bsalt);
		b64_encode(sk, sz, bsk);
		b64_encode(svk, sz, bsvk);
		res = xasprintf("{%s}%d,%s,%s,%s", s->name, SCRAM_ITERATIONS,
		    bsalt, bsk, bsvk);
	}
	secure_zero(sk, sizeof(sk));
	secure_zero(svk, sizeof(svk));
	return res;
}

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
	case K_SCRAM_SHA1:
	case K_SCRAM_SHA256:
		return verify_scram(s->kind, data, password);
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
	case K_SCRAM_SHA1:
	case K_SCRAM_SHA256:
		return make_scram(s, password);
	case K_ARGON2ID:
#ifdef HAVE_ARGON2
		return make_argon2id(password);
#else
		break;
#endif
	}
	return NULL;
}
