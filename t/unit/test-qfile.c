/*
 * test-qfile.c - unit tests for src/qfile.c: queue ids, the envelope
 * header written and read back, and the reader's refusals (bad magic,
 * overlong lines, missing keys, no blank line, CR/LF in values), and
 * qfile_names_itself (a file written for its id vs a recycled one).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qfile.h"
#include "tap.h"
#include "util.h"

static int
cmp_id(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* Parse the given bytes as a queue file. */
static int
parse(const char *text, size_t len, struct qenvelope *env)
{
	FILE *fp = tmpfile();
	int rc;

	fwrite(text, 1, len, fp);
	rewind(fp);
	rc = qfile_read_header(fp, env);
	fclose(fp);
	return rc;
}

static void
test_ids(void)
{
	enum { N = 20000 };
	static char ids[N][QID_LEN + 1];
	int dup = 0, bad = 0;

	for (int i = 0; i < N; i++) {
		qid_new(ids[i]);
		if (!qid_valid(ids[i]))
			bad++;
		/* made in order: ids sort by time */
		if (i > 0 && strncmp(ids[i - 1], ids[i], 13) >= 0)
			bad++;
	}
	ok(bad == 0, "%d fresh ids are valid and time-ordered", N);
	qsort(ids, N, sizeof(ids[0]), cmp_id);
	for (int i = 1; i < N; i++)
		if (strcmp(ids[i - 1], ids[i]) == 0)
			dup++;
	is_int(dup, 0, "no duplicate among %d ids", N);
	is_int(strlen(ids[0]), QID_LEN, "id length");

	ok(qid_valid("0123456789ABCDEF"), "valid id");
	ok(!qid_valid("0123456789abcdef"), "lower case refused");
	ok(!qid_valid("0123456789ABCDE"), "short refused");
	ok(!qid_valid("0123456789ABCDEF0"), "long refused");
	ok(!qid_valid("0123456789ABCDEG"), "non-hex refused");
	ok(!qid_valid("../../etc/passwd"), "path refused");
	ok(!qid_valid(""), "empty refused");
	ok(!qid_valid(NULL), "NULL refused");
}

static void
test_roundtrip(void)
{
	char *rcpts[] = { "bob@example.test", "carol@example.test", "" };
	struct qenvelope env, got;
	char *hdr = NULL, *file;
	long n;
	const char *body = "Subject: hi\r\n\r\nbody\r\n";

	memset(&env, 0, sizeof(env));
	qid_new(env.id);
	env.arrival = 1700000000;
	env.sender = "alice@example.test";
	env.rcpts = rcpts;
	env.n_rcpts = 2;
	env.auth_user = "alice";
	env.client = "192.0.2.7";
	env.client_port = 54321;
	env.helo = "client.example.test";
	env.tls = "TLSv1.3 TLS_AES_256_GCM_SHA384";
	env.listener = "submission";
	env.smtputf8 = true;
	env.eightbit = true;
	n = qfile_format_header(&env, &hdr);
	ok(n > 0 && hdr != NULL, "header formatted");
	ok(strncmp(hdr, QFILE_MAGIC "\n", strlen(QFILE_MAGIC) + 1) == 0,
	    "starts with the magic line");
	ok(n >= 2 && hdr[n - 1] == '\n' && hdr[n - 2] == '\n', "ends with a blank line");

	file = xasprintf("%s%s", hdr, body);
	is_int(parse(file, strlen(file), &got), 0, "header read back");
	is_str(got.id, env.id, "id");
	is_int(got.arrival, 1700000000, "arrival");
	is_str(got.sender, "alice@example.test", "sender");
	is_int(got.n_rcpts, 2, "two recipients");
	is_str(got.n_rcpts > 1 ? got.rcpts[1] : NULL, "carol@example.test",
	    "recipient order kept");
	is_str(got.auth_user, "alice", "auth_user");
	is_str(got.client, "192.0.2.7", "client");
	is_int(got.client_port, 54321, "client_port");
	is_str(got.helo, "client.example.test", "helo");
	is_str(got.tls, "TLSv1.3 TLS_AES_256_GCM_SHA384", "tls");
	is_str(got.listener, "submission", "listener");
	ok(got.smtputf8 && got.eightbit, "SMTPUTF8 and BODY=8BITMIME kept");
	is_int(got.body_offset, n, "body_offset is the header length");
	is_str(file + got.body_offset, body, "message follows the header");
	qenvelope_free(&got);
	ok(got.sender == NULL && got.n_rcpts == 0, "qenvelope_free clears");
	free(file);
	free(hdr);

	/* null sender, no auth user, no TLS */
	env.sender = "";
	env.auth_user = NULL;
	env.tls = NULL;
	env.smtputf8 = env.eightbit = false;
	n = qfile_format_header(&env, &hdr);
	ok(n > 0, "null sender formatted");
	ok(strstr(hdr, "smtputf8=") == NULL && strstr(hdr, "body=") == NULL,
	    "no smtputf8= or body= line for a plain message (older readers see none)");
	is_int(parse(hdr, (size_t)n, &got), 0, "null sender read back");
	is_str(got.sender, "", "null sender is empty");
	ok(got.auth_user == NULL && got.tls == NULL, "absent keys stay NULL");
	ok(!got.smtputf8 && !got.eightbit, "absent flags stay false");
	qenvelope_free(&got);
	free(hdr);
	env.sender = "alice@example.test";

	/* refusals */
	env.helo = "evil\r\nrcpt=victim@example.test";
	is_int(qfile_format_header(&env, &hdr), -1, "CR LF in a value refused");
	ok(hdr == NULL, "nothing returned on refusal");
	env.helo = "x";
	rcpts[1] = "a\nb";
	is_int(qfile_format_header(&env, &hdr), -1, "LF in a recipient refused");
	rcpts[1] = "carol@example.test";
	env.n_rcpts = 0;
	is_int(qfile_format_header(&env, &hdr), -1, "no recipients refused");
	env.n_rcpts = 2;
	strcpy(env.id, "nothex");
	is_int(qfile_format_header(&env, &hdr), -1, "bad id refused");
}

static void
test_bad_input(void)
{
	struct qenvelope got;
	const char *good = QFILE_MAGIC "\nid=0123456789ABCDEF\narrival=5\n"
	    "sender=a@b\nrcpt=c@d\nfuture_key=whatever\n\nbody";
	char *big;

	is_int(parse(good, strlen(good), &got), 0, "unknown keys ignored");
	is_int(got.n_rcpts, 1, "one rcpt");
	qenvelope_free(&got);

#define BAD(text, name) is_int(parse(text, strlen(text), &got), -1, name)
	BAD("MSAGATE-QUEUE 2\nid=0123456789ABCDEF\narrival=5\nsender=\n\n", "wrong magic");
	BAD("", "empty file");
	BAD(QFILE_MAGIC "\nid=0123456789ABCDEF\narrival=5\nsender=a\n", "no blank line");
	BAD(QFILE_MAGIC "\narrival=5\nsender=a\n\n", "missing id");
	BAD(QFILE_MAGIC "\nid=0123456789ABCDEF\nsender=a\n\n", "missing arrival");
	BAD(QFILE_MAGIC "\nid=0123456789ABCDEF\narrival=5\n\n", "missing sender");
	BAD(QFILE_MAGIC "\nid=0123456789ABCDEF\narrival=x\nsender=a\n\n", "bad arrival");
	BAD(QFILE_MAGIC "\nid=0123456789ABCDEF\narrival=5\nsender=a\nsender=b\n\n",
	    "duplicate sender");
	BAD(QFILE_MAGIC "\nid=0123456789ABCDEF\narrival=5\nsender=a\nnoequals\n\n",
	    "line without =");
	BAD(QFILE_MAGIC "\r\nid=0123456789ABCDEF\narrival=5\nsender=a\n\n", "CR refused");
	BAD(QFILE_MAGIC "\nid=0123456789ABCDEF\narrival=5\nsender=a\nclient_port=70000\n\n",
	    "port out of range");
	{
		static const char nul[] = QFILE_MAGIC "\nid=0123456789ABCDEF\0\n"
		    "arrival=5\nsender=a\n\n";
		is_int(parse(nul, sizeof(nul) - 1, &got), -1, "NUL refused");
	}

	big = xmalloc(5000);
	memset(big, 'x', 4999);
	big[4999] = '\0';
	{
		char *t = xasprintf(QFILE_MAGIC "\nid=0123456789ABCDEF\narrival=5\n"
		    "sender=%s\n\n", big);
		BAD(t, "overlong line refused");
		free(t);
	}
	free(big);
#undef BAD
}

static void
test_path(void)
{
	char buf[64];

	is_str(qfile_path(buf, sizeof(buf), "/var/lib/msagate", "queue",
	    "0123456789ABCDEF"), "/var/lib/msagate/queue/0123456789ABCDEF", "path");
	ok(qfile_path(buf, 10, "/var/lib/msagate", "queue", "0123456789ABCDEF") == NULL,
	    "truncation reported");
}

/* a temporary file holding text, open for reading */
static int
temp_with(const char *text)
{
	char path[] = "/tmp/test-qfile.XXXXXX";
	int fd = mkstemp(path);

	if (fd < 0)
		return -1;
	unlink(path);
	if (write(fd, text, strlen(text)) != (ssize_t)strlen(text)) {
		close(fd);
		return -1;
	}
	return fd;
}

static void
test_names_itself(void)
{
	const char *id = "6B04EB8CEEAA8678";
	int fd;

	fd = temp_with("MSAGATE-QUEUE 1\nid=6B04EB8CEEAA8678\narrival=1\n");
	ok(fd >= 0 && qfile_names_itself(fd, id), "a header naming the id");
	close(fd);
	fd = temp_with("MSAGATE-QUEUE 1\nid=6B04EB8CEEAA8679\narrival=1\n");
	ok(fd >= 0 && !qfile_names_itself(fd, id), "a header naming another id (a recycled file)");
	close(fd);
	fd = temp_with("");
	ok(fd >= 0 && !qfile_names_itself(fd, id), "an empty file");
	close(fd);
	fd = temp_with("MSAGATE-QUEUE 1\nid=6B04EB8CEEAA86");
	ok(fd >= 0 && !qfile_names_itself(fd, id), "a header cut short");
	close(fd);
	fd = temp_with("MSAGATE-QUEUE 1\nid=6B04EB8CEEAA8678X\n");
	ok(fd >= 0 && !qfile_names_itself(fd, id), "an id with more after it");
	close(fd);
	ok(!qfile_names_itself(-1, id), "no file");
}

int
main(void)
{
	test_names_itself();
	test_ids();
	test_roundtrip();
	test_bad_input();
	test_path();
	return done_testing();
}
