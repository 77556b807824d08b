/*
 * test-auth-cache.c - the verified-credential cache (src/auth-cache.c) on
 * its own: keys (deterministic, field boundaries, password-dependent),
 * hit, miss on a wrong password, payloads, expiry, LRU eviction, flush
 * (new key; a key made before it can neither hit nor be inserted); then
 * through the backend chain: passwd-file (a hit skips the hash, a wrong
 * password and a changed stored hash miss, access fields still apply, a
 * reload invalidates) and cached verdicts of the dovecot backend against
 * a fake upstream (hits never reach it, failures are never cached, the
 * client address and service are part of the key), which are used only
 * with auth.cache_verdicts (off: every login asks the upstream); and the
 * event loop's quick answers (backend_chain_verify_plain_fast): {PLAIN}
 * entries and cache hits only, never a hash, an unknown user, an access
 * field or a file due for its stat().
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "auth-cache.h"
#include "backend.h"
#include "log.h"
#include "util.h"
#include "fakeauth.h"
#include "tap.h"

static char dir[] = "/tmp/msagate-test-ac.XXXXXX";

static void
key3(struct auth_cache *c, const char *a, const char *b, const char *pw,
    struct auth_cache_key *k)
{
	struct auth_cache_field f[] = {
		{ a, strlen(a) }, { b, strlen(b) }, { pw, strlen(pw) },
	};

	if (auth_cache_key(c, f, 3, k) != 0)
		memset(k, 0xee, sizeof(*k));
}

static uint64_t
hits(struct auth_cache *c)
{
	struct auth_cache_stats st;

	auth_cache_get_stats(c, &st);
	return st.hits;
}

static uint64_t
misses(struct auth_cache *c)
{
	struct auth_cache_stats st;

	auth_cache_get_stats(c, &st);
	return st.misses;
}

static void
test_basics(void)
{
	struct auth_cache *c = auth_cache_new(100, 60000);
	struct auth_cache_key k1, k2, k3, k4;
	char payload[64];
	size_t len;

	key3(c, "tag", "alice", "secret", &k1);
	key3(c, "tag", "alice", "secret", &k2);
	ok(memcmp(k1.mac, k2.mac, sizeof(k1.mac)) == 0, "same fields, same key");
	key3(c, "tag", "alice", "secreT", &k3);
	ok(memcmp(k1.mac, k3.mac, sizeof(k1.mac)) != 0, "another password, another key");
	key3(c, "taga", "lice", "secret", &k4);
	ok(memcmp(k1.mac, k4.mac, sizeof(k1.mac)) != 0,
	    "field boundaries count (tag|alice != taga|lice)");

	ok(!auth_cache_lookup(c, &k1, NULL, NULL), "empty cache: miss");
	auth_cache_insert(c, &k1, NULL, 0);
	ok(auth_cache_lookup(c, &k2, NULL, NULL), "inserted: hit");
	ok(!auth_cache_lookup(c, &k3, NULL, NULL), "wrong password: miss");
	is_int(hits(c), 1, "1 hit counted");
	is_int(misses(c), 2, "2 misses counted");

	auth_cache_insert(c, &k3, "carl\0quota=1", 12);
	len = sizeof(payload);
	ok(auth_cache_lookup(c, &k3, payload, &len), "entry with a payload: hit");
	ok(len == 12 && memcmp(payload, "carl\0quota=1", 12) == 0, "payload returned");
	len = 2;
	ok(auth_cache_lookup(c, &k3, payload, &len) && len == 12,
	    "short buffer: the stored length is told (caller sees truncation)");
	auth_cache_insert(c, &k4, payload, AUTH_CACHE_MAX_PAYLOAD + 1);
	ok(!auth_cache_lookup(c, &k4, NULL, NULL), "over-long payload: not inserted");

	/* peek: a first look whose miss is not counted (the real check follows) */
	{
		uint64_t h0 = hits(c), m0 = misses(c);

		ok(!auth_cache_peek(c, &k4, NULL, NULL), "peek: miss");
		is_int(misses(c) - m0, 0, "peek: a miss is not counted");
		ok(auth_cache_peek(c, &k1, NULL, NULL), "peek: hit");
		is_int(hits(c) - h0, 1, "peek: a hit is counted");
	}
	auth_cache_free(c);
}

static void
test_expiry(void)
{
	struct auth_cache *c = auth_cache_new(10, 150);
	struct auth_cache_key k;
	struct auth_cache_stats st;

	key3(c, "tag", "alice", "secret", &k);
	auth_cache_insert(c, &k, NULL, 0);
	usleep(60 * 1000);
	ok(auth_cache_lookup(c, &k, NULL, NULL), "hit before the lifetime ends");
	usleep(120 * 1000);
	ok(!auth_cache_lookup(c, &k, NULL, NULL),
	    "miss once the lifetime (counted from the insert, not the last hit) is over");
	auth_cache_get_stats(c, &st);
	is_int(st.expired, 1, "counted as expired");
	is_int(st.entries, 0, "expired entry dropped");
	auth_cache_free(c);
}

static void
test_eviction(void)
{
	struct auth_cache *c = auth_cache_new(3, 60000);
	struct auth_cache_key k[5];
	struct auth_cache_stats st;
	char pw[8];
	int i;

	for (i = 0; i < 5; i++) {
		snprintf(pw, sizeof(pw), "pw%d", i);
		key3(c, "tag", "u", pw, &k[i]);
	}
	for (i = 0; i < 3; i++)
		auth_cache_insert(c, &k[i], NULL, 0);
	ok(auth_cache_lookup(c, &k[0], NULL, NULL), "k0 used again (now the most recent)");
	auth_cache_insert(c, &k[3], NULL, 0);
	ok(!auth_cache_lookup(c, &k[1], NULL, NULL), "full: the least recently used (k1) evicted");
	ok(auth_cache_lookup(c, &k[0], NULL, NULL), "k0 kept");
	ok(auth_cache_lookup(c, &k[2], NULL, NULL), "k2 kept");
	ok(auth_cache_lookup(c, &k[3], NULL, NULL), "k3 inserted");
	auth_cache_insert(c, &k[4], NULL, 0);
	auth_cache_get_stats(c, &st);
	is_int(st.entries, 3, "never more than cache_size entries");
	is_int(st.evictions, 2, "2 evictions");
	ok(!auth_cache_lookup(c, &k[0], NULL, NULL), "k0 now the least recent: evicted");
	auth_cache_free(c);
}

static void
test_flush(void)
{
	struct auth_cache *c = auth_cache_new(10, 60000);
	struct auth_cache_key k, early, after;
	struct auth_cache_stats st;

	key3(c, "tag", "alice", "secret", &k);
	key3(c, "tag", "bob", "secret", &early);
	auth_cache_insert(c, &k, NULL, 0);
	ok(auth_cache_lookup(c, &k, NULL, NULL), "hit before the flush");
	auth_cache_flush(c);
	auth_cache_get_stats(c, &st);
	is_int(st.entries, 0, "flush empties the cache");
	ok(!auth_cache_lookup(c, &k, NULL, NULL), "old key: miss after the flush");
	key3(c, "tag", "alice", "secret", &after);
	ok(memcmp(k.mac, after.mac, sizeof(k.mac)) != 0, "flush draws a new key");
	ok(!auth_cache_lookup(c, &after, NULL, NULL), "same credentials: miss after the flush");
	/* a check that started before the flush finishes after it */
	auth_cache_insert(c, &early, NULL, 0);
	auth_cache_get_stats(c, &st);
	is_int(st.entries, 0, "a key made before the flush is not inserted");
	auth_cache_insert(c, &after, NULL, 0);
	ok(auth_cache_lookup(c, &after, NULL, NULL), "new entries work after the flush");
	auth_cache_free(c);
}

/* ---- through the chain: passwd-file ------------------------------------ */

static char *
write_file(const char *name, const char *content)
{
	char *path, *tmp;
	FILE *fp;

	if (asprintf(&path, "%s/%s", dir, name) < 0 ||
	    asprintf(&tmp, "%s/%s.tmp", dir, name) < 0)
		abort();
	fp = fopen(tmp, "w");
	if (fp == NULL)
		abort();
	fputs(content, fp);
	fclose(fp);
	if (rename(tmp, path) != 0)     /* a new inode: the change is seen */
		abort();
	free(tmp);
	return path;
}

/* crypt_of - "{SHA512-CRYPT}..." of pw with a fixed salt (openssl passwd). */
static char *
crypt_of(const char *pw, const char *salt)
{
	char cmd[256], out[256];
	FILE *p;

	snprintf(cmd, sizeof(cmd), "openssl passwd -6 -salt %s '%s'", salt, pw);
	if ((p = popen(cmd, "r")) == NULL || fgets(out, sizeof(out), p) == NULL)
		abort();
	pclose(p);
	out[strcspn(out, "\n")] = '\0';
	return xasprintf("{SHA512-CRYPT}%s", out);
}

static void
test_passwd_file(void)
{
	struct backend_cfg b = { .driver = "passwd-file" };
	struct auth_cache *cache = auth_cache_new(100, 60000);
	struct backend_request lo = { "127.0.0.1", "smtp" };
	struct backend_request far = { "192.0.2.9", "smtp" };
	struct backend_chain *c;
	struct backend_reply r;
	char *e = NULL, *h1 = crypt_of("right-pw", "saltsaltA"),
	    *h2 = crypt_of("right-pw", "saltsaltB"), *h3 = crypt_of("new-pw", "saltsaltC"),
	    *content;
	uint64_t h, m, t0, t_miss, t_hit;

	if (asprintf(&content, "alice:%s::::::quota=1G\n"
	    "nets:%s::::::allow_nets=127.0.0.0/8\n", h1, h1) < 0)
		abort();
	b.path = write_file("users", content);
	free(content);
	c = backend_chain_new(&b, 1, &e);
	ok(c != NULL, "chain: %s", e ? e : "ok");
	if (c == NULL)
		return;
	is_int(backend_chain_set_cache(c, cache, false), 1,
	    "passwd-file uses the cache without cache_verdicts");

	h = hits(cache);
	m = misses(cache);
	t0 = now_ms();
	is_int(backend_chain_verify_plain(c, "alice", "right-pw", &r), BACKEND_OK,
	    "first login ok");
	t_miss = now_ms() - t0;
	is_int(hits(cache) - h, 0, "first login: no hit");
	is_int(misses(cache) - m, 1, "first login: a miss");
	t0 = now_ms();
	is_int(backend_chain_verify_plain(c, "alice", "right-pw", &r), BACKEND_OK,
	    "second login ok");
	t_hit = now_ms() - t0;
	is_int(hits(cache) - h, 1, "second login: a hit");
	is_str(r.user, "alice", "canonical name filled on a hit");
	is_str(r.extra, "quota=1G", "extra fields filled on a hit");
	printf("# miss %llu ms, hit %llu ms\n", (unsigned long long)t_miss,
	    (unsigned long long)t_hit);

	m = misses(cache);
	is_int(backend_chain_verify_plain(c, "alice", "wrong-pw", &r), BACKEND_MISMATCH,
	    "wrong password: mismatch");
	is_int(misses(cache) - m, 1, "wrong password: a miss, checked for real");
	is_int(backend_chain_verify_plain(c, "alice", "wrong-pw", &r), BACKEND_MISMATCH,
	    "wrong password again: still a mismatch (failures are never cached)");
	is_int(backend_chain_verify_plain(c, "alice", "right-pw", &r), BACKEND_OK,
	    "right password after wrong ones: ok");

	/* access fields still apply on every login */
	is_int(backend_chain_verify_plain_req(c, "nets", "right-pw", &lo, &r), BACKEND_OK,
	    "allow_nets user from 127.0.0.1: ok (cached now)");
	h = hits(cache);
	is_int(backend_chain_verify_plain_req(c, "nets", "right-pw", &far, &r),
	    BACKEND_MISMATCH, "same user and password from 192.0.2.9: refused despite the cache");
	is_str(r.reason, "allow_nets", "refusal reason");
	is_int(hits(cache) - h, 0, "a refused login does not use the cache (full hash timing)");

	/* the same password under a new stored hash (new salt) must miss */
	if (asprintf(&content, "alice:%s::::::quota=1G\nnets:%s::::::nologin\n", h2, h1) < 0)
		abort();
	free(write_file("users", content));
	free(content);
	sleep(1);
	usleep(100 * 1000);
	h = hits(cache);
	m = misses(cache);
	is_int(backend_chain_verify_plain(c, "alice", "right-pw", &r), BACKEND_OK,
	    "changed file, same password, new hash: ok");
	is_int(hits(cache) - h, 0, "changed stored hash: no hit");
	is_int(misses(cache) - m, 1, "changed stored hash: a miss (hash run)");
	is_int(backend_chain_verify_plain_req(c, "nets", "right-pw", &lo, &r), BACKEND_MISMATCH,
	    "nologin added to the file: refused although the password was cached");

	/* a new password: the old one fails at once */
	if (asprintf(&content, "alice:%s::::::\n", h3) < 0)
		abort();
	free(write_file("users", content));
	free(content);
	sleep(1);
	usleep(100 * 1000);
	is_int(backend_chain_verify_plain(c, "alice", "right-pw", &r), BACKEND_MISMATCH,
	    "password changed in the file: the cached old password fails");
	is_int(backend_chain_verify_plain(c, "alice", "new-pw", &r), BACKEND_OK,
	    "the new password works");
	h = hits(cache);
	is_int(backend_chain_verify_plain(c, "alice", "new-pw", &r), BACKEND_OK,
	    "the new password again");
	is_int(hits(cache) - h, 1, "... from the cache");

	/* any reload (SIGHUP) starts the file's entries afresh */
	is_int(backend_chain_reload(c), 0, "reload");
	h = hits(cache);
	is_int(backend_chain_verify_plain(c, "alice", "new-pw", &r), BACKEND_OK,
	    "after a reload: ok");
	is_int(hits(cache) - h, 0, "after a reload: no hit (new generation)");

	/* without a cache: as before */
	is_int(backend_chain_set_cache(c, NULL, false), 0, "no cache: no user");
	h = hits(cache);
	m = misses(cache);
	is_int(backend_chain_verify_plain(c, "alice", "new-pw", &r), BACKEND_OK,
	    "cache off: ok");
	is_int(backend_chain_verify_plain(c, "alice", "right-pw", &r), BACKEND_MISMATCH,
	    "cache off: wrong password fails");
	ok(hits(cache) == h && misses(cache) == m, "cache off: the cache is not asked");

	backend_chain_free(c);
	auth_cache_free(cache);
	free(b.path);
	free(h1);
	free(h2);
	free(h3);
}

/* ---- the event loop's quick answers (passwd-file) ------------------------ */

/* fast - backend_chain_verify_plain_fast: -1 no quick answer, else the result. */
static int
fast(struct backend_chain *c, const char *user, const char *pw,
    const struct backend_request *req, struct backend_reply *r)
{
	enum backend_result res;

	memset(r, 0, sizeof(*r));
	return backend_chain_verify_plain_fast(c, user, pw, req, r, &res) ? (int)res : -1;
}

static void
test_fast(void)
{
	struct backend_cfg b = { .driver = "passwd-file" };
	struct auth_cache *cache = auth_cache_new(100, 60000);
	struct backend_request lo = { "127.0.0.1", "smtp" };
	struct backend_chain *c;
	struct backend_reply r;
	char *e = NULL, *h1 = crypt_of("right-pw", "saltsaltD"),
	    *h3 = crypt_of("new-pw", "saltsaltE"), *content;
	uint64_t h, m;

	if (asprintf(&content, "plain:{PLAIN}plain-pw::::::quota=2G\n"
	    "alice:%s::::::quota=1G\n"
	    "nets:{PLAIN}nets-pw::::::allow_nets=127.0.0.0/8\n"
	    "nl:{PLAIN}nl-pw::::::nologin\n", h1) < 0)
		abort();
	b.path = write_file("fast-users", content);
	free(content);
	c = backend_chain_new(&b, 1, &e);
	ok(c != NULL, "chain: %s", e ? e : "ok");
	if (c == NULL)
		return;
	backend_chain_set_cache(c, cache, false);

	is_int(fast(c, "plain", "plain-pw", &lo, &r), BACKEND_OK,
	    "{PLAIN} entry, right password: a quick OK");
	is_str(r.user, "plain", "... with the canonical name");
	is_str(r.extra, "quota=2G", "... and the extra fields");
	is_int(fast(c, "plain", "wrong", &lo, &r), -1,
	    "{PLAIN} entry, wrong password: no quick answer (a worker says "
	    "MISMATCH, as it says it for an unknown user)");

	m = misses(cache);
	is_int(fast(c, "alice", "right-pw", &lo, &r), -1,
	    "hashed entry, not cached yet: no quick answer (the hash must run)");
	is_int(misses(cache) - m, 0, "... and the quick look is not counted as a miss");
	is_int(backend_chain_verify_plain_req(c, "alice", "right-pw", &lo, &r), BACKEND_OK,
	    "the real check: OK (now cached)");
	h = hits(cache);
	is_int(fast(c, "alice", "right-pw", &lo, &r), BACKEND_OK,
	    "hashed entry, cached: a quick OK");
	is_int(hits(cache) - h, 1, "... counted as a hit");
	is_str(r.extra, "quota=1G", "... with the extra fields");
	is_int(fast(c, "alice", "wrong-pw", &lo, &r), -1,
	    "hashed entry, wrong password: no quick answer (only the hash can say)");
	is_int(fast(c, "nobody", "x", &lo, &r), -1,
	    "unknown user: no quick answer (the dummy hash must run)");
	is_int(fast(c, "nets", "nets-pw", &lo, &r), -1,
	    "allow_nets entry: no quick answer (refusals pay the full hash)");
	is_int(fast(c, "nl", "nl-pw", &lo, &r), -1, "nologin entry: no quick answer");

	backend_chain_set_cache(c, NULL, false);
	is_int(fast(c, "alice", "right-pw", &lo, &r), -1,
	    "without the cache: a hashed entry never has a quick answer");
	is_int(fast(c, "plain", "plain-pw", &lo, &r), BACKEND_OK,
	    "without the cache: {PLAIN} still does");
	backend_chain_set_cache(c, cache, false);

	/* the file changes: no quick answer until a worker has looked */
	if (asprintf(&content, "plain:{PLAIN}plain-pw2::::::\nalice:%s::::::\n", h3) < 0)
		abort();
	free(write_file("fast-users", content));
	free(content);
	usleep(1100 * 1000);
	is_int(fast(c, "plain", "plain-pw", &lo, &r), -1,
	    "stat() due: no quick answer (a worker looks at the file)");
	is_int(backend_chain_verify_plain_req(c, "plain", "plain-pw", &lo, &r),
	    BACKEND_MISMATCH, "the real check re-reads the file: the old {PLAIN} fails");
	is_int(fast(c, "plain", "plain-pw2", &lo, &r), BACKEND_OK,
	    "then quick answers again, from the new file");
	is_int(fast(c, "alice", "right-pw", &lo, &r), -1,
	    "changed file: the old cached password has no quick answer");
	is_int(backend_chain_verify_plain_req(c, "alice", "right-pw", &lo, &r),
	    BACKEND_MISMATCH, "... and the real check refuses it");

	backend_chain_set_cache(c, NULL, false);
	backend_chain_free(c);
	auth_cache_free(cache);
	free(b.path);
	free(h1);
	free(h3);
}

/* ---- through the chain: cached verdicts (dovecot backend) ---------------- */

static struct {
	pthread_mutex_t lock;
	int lfd;
	int auths;
	char good[64];            /* the password the fake upstream accepts */
} fk = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* fake_serve - handshake, then OK for resp=\0USER\0<good>, FAIL else. */
static void
fake_serve(int fd)
{
	static const char hs[] = "VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nSPID\t1\n"
	    "CUID\t1\nCOOKIE\t0123456789abcdef0123456789abcdef\nDONE\n";
	char buf[8192];
	size_t len = 0;

	(void)send(fd, hs, sizeof(hs) - 1, MSG_NOSIGNAL);
	for (;;) {
		char line[8192], out[600], *resp;
		unsigned char raw[2048];
		ssize_t rl;
		unsigned id;
		bool good = false;

		if (fake_read_line(fd, buf, &len, sizeof(buf), line, sizeof(line)) < 0)
			return;
		if (strncmp(line, "AUTH\t", 5) != 0)
			continue;
		id = (unsigned)strtoul(line + 5, NULL, 10);
		pthread_mutex_lock(&fk.lock);
		fk.auths++;
		if ((resp = strstr(line, "resp=")) != NULL &&
		    (rl = b64_decode(resp + 5, strlen(resp + 5), raw)) > 0) {
			const unsigned char *u = memchr(raw + 1, '\0', (size_t)rl - 1);
			good = u != NULL && (size_t)(raw + rl - (u + 1)) == strlen(fk.good) &&
			    memcmp(u + 1, fk.good, strlen(fk.good)) == 0;
		}
		pthread_mutex_unlock(&fk.lock);
		if (good)
			snprintf(out, sizeof(out), "OK\t%u\tuser=Dave@up\tquota=5G\n", id);
		else
			snprintf(out, sizeof(out), "FAIL\t%u\tuser=dave\n", id);
		(void)send(fd, out, strlen(out), MSG_NOSIGNAL);
	}
}

static void *
fake_main(void *arg)
{
	(void)arg;
	fake_accept_loop(fk.lfd, fake_serve);
	return NULL;
}

static int
upstream_auths(void)
{
	int n;

	pthread_mutex_lock(&fk.lock);
	n = fk.auths;
	pthread_mutex_unlock(&fk.lock);
	return n;
}

static void
set_good(const char *pw)
{
	pthread_mutex_lock(&fk.lock);
	snprintf(fk.good, sizeof(fk.good), "%s", pw);
	pthread_mutex_unlock(&fk.lock);
}

static void
test_verdicts(void)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct backend_cfg cfg = { .driver = "dovecot", .workers = 1, .timeout_ms = 3000 };
	struct auth_cache *cache = auth_cache_new(100, 60000);
	struct backend_request a = { "192.0.2.7", "smtp" };
	struct backend_request other_ip = { "192.0.2.8", "smtp" };
	struct backend_request other_svc = { "192.0.2.7", "imap" };
	struct backend_chain *c;
	struct backend_reply r, first;
	char path[256], *err = NULL;
	pthread_t th;
	int n;

	snprintf(path, sizeof(path), "%s/auth-client", dir);
	memcpy(sun.sun_path, path, strlen(path) + 1);
	fk.lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fk.lfd == -1 || bind(fk.lfd, (struct sockaddr *)&sun, sizeof(sun)) == -1 ||
	    listen(fk.lfd, 16) == -1) {
		ok(0, "fake upstream listens");
		return;
	}
	set_good("up-pw");
	pthread_create(&th, NULL, fake_main, NULL);
	pthread_detach(th);
	cfg.socket = path;
	c = backend_chain_new(&cfg, 1, &err);
	ok(c != NULL, "chain with a dovecot backend: %s", err ? err : "ok");
	if (c == NULL)
		return;
	/* auth.cache_verdicts = false (the default): never cached */
	is_int(backend_chain_set_cache(c, cache, false), 0,
	    "verdicts off: the dovecot backend does not use the cache");
	n = upstream_auths();
	is_int(backend_chain_verify_plain_req(c, "dave", "up-pw", &a, &r), BACKEND_OK,
	    "verdicts off: upstream OK");
	is_int(backend_chain_verify_plain_req(c, "dave", "up-pw", &a, &r), BACKEND_OK,
	    "verdicts off: OK again");
	is_int(upstream_auths() - n, 2, "verdicts off: both logins asked the upstream");
	{
		enum backend_result fres;

		ok(!backend_chain_verify_plain_fast(c, "dave", "up-pw", &a, &r, &fres),
		    "verdicts off: no quick answer on the loop (the upstream must be asked)");
	}
	set_good("up-pw-2");
	n = upstream_auths();
	is_int(backend_chain_verify_plain_req(c, "dave", "up-pw", &a, &r), BACKEND_MISMATCH,
	    "verdicts off: password changed upstream, the old one fails at once");
	is_int(backend_chain_verify_plain_req(c, "dave", "up-pw-2", &a, &r), BACKEND_OK,
	    "verdicts off: the new one works at once");
	is_int(upstream_auths() - n, 2, "verdicts off: both asked upstream");
	ok(hits(cache) == 0 && misses(cache) == 0, "verdicts off: the cache is never asked");
	set_good("up-pw");

	/* auth.cache_verdicts = true */
	is_int(backend_chain_set_cache(c, cache, true), 1,
	    "verdicts on: the dovecot backend uses the cache");
	n = upstream_auths();
	is_int(backend_chain_verify_plain_req(c, "dave", "up-pw", &a, &r), BACKEND_OK,
	    "upstream OK");
	is_int(upstream_auths() - n, 1, "asked the upstream");
	first = r;
	is_int(backend_chain_verify_plain_req(c, "dave", "up-pw", &a, &r), BACKEND_OK,
	    "again: OK");
	is_int(upstream_auths() - n, 1, "a hit does not reach the upstream");
	is_str(r.user, "Dave@up", "canonical name replayed from the cache");
	is_str(r.extra, first.extra, "extra fields replayed as the backend gave them");
	{
		enum backend_result fres = BACKEND_TEMPFAIL;
		uint64_t m0 = misses(cache);

		memset(&r, 0, sizeof(r));
		ok(backend_chain_verify_plain_fast(c, "dave", "up-pw", &a, &r, &fres) &&
		    fres == BACKEND_OK, "verdicts on: a cached OK is a quick answer");
		is_str(r.user, "Dave@up", "... with the canonical name");
		ok(!backend_chain_verify_plain_fast(c, "dave", "bad-pw", &a, &r, &fres),
		    "verdicts on: a miss is no quick answer (the upstream decides)");
		is_int(misses(cache) - m0, 0, "... and not counted as a miss");
		is_int(upstream_auths() - n, 1, "quick answers never reach the upstream");
	}

	n = upstream_auths();
	is_int(backend_chain_verify_plain_req(c, "dave", "bad-pw", &a, &r), BACKEND_MISMATCH,
	    "wrong password: FAIL");
	is_int(backend_chain_verify_plain_req(c, "dave", "bad-pw", &a, &r), BACKEND_MISMATCH,
	    "wrong password again: FAIL");
	is_int(upstream_auths() - n, 2, "failures are never cached: both asked upstream");

	n = upstream_auths();
	is_int(backend_chain_verify_plain_req(c, "dave", "up-pw", &other_ip, &r), BACKEND_OK,
	    "another client address: OK");
	is_int(backend_chain_verify_plain_req(c, "dave", "up-pw", &other_svc, &r), BACKEND_OK,
	    "another service: OK");
	is_int(upstream_auths() - n, 2, "client address and service are part of the key");

	/* the password changes upstream: the cache keeps the old verdict
	 * until it expires or is flushed (the documented trade-off) */
	set_good("up-pw-2");
	n = upstream_auths();
	is_int(backend_chain_verify_plain_req(c, "dave", "up-pw", &a, &r), BACKEND_OK,
	    "changed upstream: the old password is still served from the cache");
	is_int(upstream_auths() - n, 0, "... without asking");
	auth_cache_flush(cache);
	is_int(backend_chain_verify_plain_req(c, "dave", "up-pw", &a, &r), BACKEND_MISMATCH,
	    "after a flush: the old password fails");
	is_int(backend_chain_verify_plain_req(c, "dave", "up-pw-2", &a, &r), BACKEND_OK,
	    "after a flush: the new one works");
	is_int(upstream_auths() - n, 2, "both asked upstream");

	backend_chain_set_cache(c, NULL, false);
	backend_chain_free(c);
	auth_cache_free(cache);
	shutdown(fk.lfd, SHUT_RDWR);
	close(fk.lfd);
}

int
main(void)
{
	log_init("test-auth-cache", true, false, NULL);
	if (mkdtemp(dir) == NULL)
		return 1;
	test_basics();
	test_expiry();
	test_eviction();
	test_flush();
	test_passwd_file();
	test_fast();
	test_verdicts();
	{
		char cmd[128];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			printf("# could not remove %s\n", dir);
	}
	return done_testing();
}
