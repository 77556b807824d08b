#!/usr/bin/env python3
# 54-authcache.t - the verified-credential cache (auth.cache_ttl) over the
# real auth socket and SMTP: it is on by default (60 s) for passwd-file; a
# cached user still logs in (and the second login is a cache hit), a wrong
# password still fails after the failure delay and feeds the penalties,
# which a cached success still waits for; a cached success still honours
# min_time; changing the user's password in the passwd file makes the old
# one fail as soon as the file is re-read (no SIGHUP), SIGHUP flushes;
# nothing secret is logged; with cache_ttl = 0 everything is as before;
# `msagated -n` checks the keys.  Verdicts of an upstream Dovecot (through
# the chain, and in proxy mode) are never cached by default: with a real
# private Dovecot, a password changed there makes the old one fail at
# once; with auth.cache_verdicts = true OK answers are replayed until
# SIGHUP.
import os, re, signal, socket, subprocess, sys, time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from msagatetest import *
from dovecotauth import start_upstream

ALICE, APW = "alice@example.test", "alice-secret-1"
NEWPW = "alice-new-secret-2"


class Auth(LineClient):
    """A Dovecot auth protocol client on the daemon's socket."""

    def __init__(self, d):
        LineClient.__init__(self, d.auth_socket, 30)
        self.next_id = 1
        self.s.sendall(b"VERSION\t1\t2\nCPID\t4343\n")
        while self.line() != "DONE":
            pass

    def plain(self, user, pw, rip="127.0.0.1", service="smtp"):
        """One AUTH PLAIN; (reply line with the id removed, seconds)."""
        i = self.next_id
        self.next_id += 1
        t0 = time.time()
        self.s.sendall(("AUTH\t%d\tPLAIN\tservice=%s\trip=%s\tresp=%s\n" %
                        (i, service, rip, plain_b64(user, pw))).encode())
        l = self.line()
        dt = time.time() - t0
        return re.sub(r"^(\w+)\t%d" % i, r"\1", l), dt


def count(d, pattern):
    return len(re.findall(pattern, d.read_log()))


def hits(d):
    return count(d, r"auth cache hit: user=")


def misses(d):
    return count(d, r"auth cache miss: user=")


def write_passwd(d, users):
    """Replace the passwd file (a new inode, as editors and doveadm do)."""
    tmp = d.passwd + ".new"
    with open(tmp, "w") as f:
        for u, p in users.items():
            f.write("%s:%s::::::\n" % (u, sha512_crypt(p)))
    if os.geteuid() == 0:
        import pwd
        os.chown(tmp, 0, pwd.getpwnam(d.user).pw_gid)
        os.chmod(tmp, 0o640)
    os.rename(tmp, d.passwd)


def wait_count(d, fn, want, timeout=5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if fn(d) >= want:
            return True
        time.sleep(0.05)
    return False


def miss_then_hit(dx, a, label):
    """alice logs in twice: the first login runs the hash (a miss), the
    second is answered from the cache (a hit)."""
    h0, m0 = hits(dx), misses(dx)
    r, dt = a.plain(ALICE, APW)
    like(r, r"^OK\tuser=alice@example\.test", "%sfirst login OK" % label)
    ok(wait_count(dx, misses, m0 + 1), "%sfirst login a cache miss (the hash ran)" % label)
    r, dt = a.plain(ALICE, APW)
    like(r, r"^OK\tuser=alice@example\.test", "%ssecond login OK" % label)
    ok(wait_count(dx, hits, h0 + 1), "%ssecond login a cache hit" % label, dx.read_log()[-1500:])


# ---------------------------------------------------------------- default
dd = Daemon(users={ALICE: APW})
ok(dd.wait_log(r"credential cache on: 10000 entries of at most 60 s \(passwd-file hashes; "
               r"PAM and upstream Dovecot always asked\)"),
   "by default the cache is on: 10000 entries, 60 s, passwd-file only",
   dd.read_log()[-1500:])
a = Auth(dd)
miss_then_hit(dd, a, "default: ")
r, dt = a.plain(ALICE, "wrong")
is_(r, "FAIL\tuser=alice@example.test", "default: a wrong password still fails")
# a changed passwd file is seen at once (its generation is in every key)
write_passwd(dd, {ALICE: NEWPW})
time.sleep(1.2)
r, dt = a.plain(ALICE, APW)
is_(r, "FAIL\tuser=alice@example.test", "default: password changed in the file: the old one fails")
r, dt = a.plain(ALICE, NEWPW)
like(r, r"^OK\t", "default: the new one works")
a.close()
dd.stop()

# ---------------------------------------------------------------- cache on
d = Daemon(users={ALICE: APW, "bob": "b0b pass:word"}, failure_delay=0.5, penalty=True,
           auth_extra="cache_ttl = 60;\n  cache_size = 100;\n"
                      "  penalty = { block_after = 50; window = 60; max_delay = 2; };")
ok(d.wait_log(r"credential cache on: 100 entries of at most 60 s"),
   "the auth role says the cache is on", d.read_log()[-1500:])
a = Auth(d)
miss_then_hit(d, a, "")
like(d.read_log(), r"auth cache hit: user=alice@example\.test \(passwd-file; hits=\d+",
     "debug line names user and backend")

# a cached user still logs in over SMTP
h1 = hits(d)
s = d.smtp()
like(s.login(ALICE, APW), r"^235 ", "SMTP AUTH PLAIN of the cached user: 235")
s.close()
ok(wait_count(d, hits, h1 + 1), "the SMTP login was a cache hit")

# many cached logins are cheap: 200 in well under what 200 hashes cost here
t0 = time.time()
for i in range(200):
    r, _ = a.plain(ALICE, APW)
    if not r.startswith("OK"):
        break
like(r, r"^OK", "200 cached logins in a row: OK")
diag("200 cached logins took %.3f s" % (time.time() - t0))

# a wrong password fails, after the failure delay, and counts for the penalty
m1 = misses(d)
times = []
for i in range(3):
    r, dt = a.plain(ALICE, "wrong-%d" % i, rip="127.0.0.30")
    times.append(dt)
    is_(r, "FAIL\tuser=alice@example.test", "wrong password %d: FAIL" % (i + 1))
ok(all(t >= 0.45 for t in times), "every failure waited the failure delay", times)
ok(times[2] >= times[0] + 0.8, "the third failure waited the penalty delay too", times)
ok(wait_count(d, misses, m1 + 3), "each wrong password missed the cache (real check)")
ok(d.wait_log(r"auth failed: rip=127\.0\.0\.30 user=alice@example\.test mech=PLAIN"),
   "failures logged for fail2ban as before")
# the right password from that address: cached, but the penalty still applies
h2 = hits(d)
r, dt = a.plain(ALICE, APW, rip="127.0.0.30")
like(r, r"^OK\t", "right password after the failures: OK")
ok(dt >= 1.9, "a cached success still waits the address's penalty delay (%.2f s)" % dt)
ok(wait_count(d, hits, h2 + 1), "... and was a cache hit")
r, dt = a.plain(ALICE, APW, rip="127.0.0.30")
ok(r.startswith("OK") and dt < 0.5, "the success cleared the penalty (%.2f s)" % dt)

# the password changes in the passwd file: re-read on change, no SIGHUP
write_passwd(d, {ALICE: NEWPW, "bob": "b0b pass:word"})
time.sleep(1.2)     # the file is looked at at most once a second
r, dt = a.plain(ALICE, APW)
is_(r, "FAIL\tuser=alice@example.test", "changed password file: the old (cached) password fails")
r, dt = a.plain(ALICE, NEWPW)
like(r, r"^OK\t", "the new password works")
h3 = hits(d)
r, dt = a.plain(ALICE, NEWPW)
like(r, r"^OK\t", "the new password again")
ok(wait_count(d, hits, h3 + 1), "... now from the cache")

# SIGHUP flushes
m3 = misses(d)
os.kill(d.proc.pid, signal.SIGHUP)
ok(d.wait_log(r"SIGHUP: re-reading the passwd files, credential cache flushed"),
   "SIGHUP: the auth role flushes the cache")
time.sleep(0.5)
h4 = hits(d)
r, dt = a.plain(ALICE, NEWPW)
like(r, r"^OK\t", "after SIGHUP: OK")
ok(wait_count(d, misses, m3 + 1) and hits(d) == h4, "after SIGHUP: a miss, not a hit")
a.close()

log = d.read_log()
ok(APW not in log and NEWPW not in log and "wrong-0" not in log and
   plain_b64(ALICE, APW) not in log, "no password (or AUTH payload) in the log")

# msagated -n checks the keys, with FILE:LINE
conf = open(d.conf).read()
for bad, msg in (("cache_ttl = 7200;", r'"cache_ttl" = 7200 is out of range \(0\.\.3600 seconds\)'),
                 ("cache_ttl = \"long\";", r'"cache_ttl" must be a number of seconds'),
                 ("cache_size = 0;", r'"cache_size" = 0 is out of range \(1\.\.1000000\)'),
                 ("cache_verdicts = 1;", r'"cache_verdicts" must be true or false'),
                 ("cache_ttl = 0;\n  cache_verdicts = true;",
                  r'auth\.cache_verdicts = true needs the cache: auth\.cache_ttl is 0 \(off\)')):
    key = bad.split()[0]
    text = re.sub(r"%s = [^;]*;" % key, bad, conf)
    if bad not in text:
        text = conf.replace("cache_size = 100;", "cache_size = 100;\n  " + bad)
    path = os.path.join(d.dir, "bad.conf")
    with open(path, "w") as f:
        f.write(text)
    last = bad.splitlines()[-1].strip()
    line = [i + 1 for i, l in enumerate(text.splitlines()) if last in l][0]
    r = subprocess.run([MSAGATED, "-n", "-c", path], capture_output=True, text=True)
    ok(r.returncode == 1, "msagated -n with %s exits 1" % bad, r.stdout + r.stderr)
    like(r.stdout + r.stderr, re.escape("%s:%d: " % (path, line)) + msg,
         "msagated -n names FILE:LINE for %s" % bad)
d.stop()

# ---------------------------------------------------------------- min_time
dm = Daemon(users={ALICE: APW}, auth_extra="cache_ttl = 60;", start=False)
with open(dm.conf) as f:
    text = f.read()
with open(dm.conf, "w") as f:
    f.write(text.replace("min_time = 0;", "min_time = 0.4;"))
dm.start()
a = Auth(dm)
r, dt = a.plain(ALICE, APW)
like(r, r"^OK\t", "min_time 0.4: first login OK")
h = hits(dm)
r, dt = a.plain(ALICE, APW)
like(r, r"^OK\t", "min_time 0.4: cached login OK")
ok(wait_count(dm, hits, h + 1), "min_time 0.4: it was a cache hit")
ok(dt >= 0.38, "a cached success still waits min_time (%.2f s)" % dt)
a.close()
dm.stop()

# ---------------------------------------------------------------- cache off
d0 = Daemon(users={ALICE: APW}, failure_delay=0.5, auth_extra="cache_ttl = 0;")
a = Auth(d0)
for i in range(3):
    r, dt = a.plain(ALICE, APW)
    like(r, r"^OK\tuser=alice@example\.test", "cache off: login %d OK" % (i + 1))
r, dt = a.plain(ALICE, "wrong")
is_(r, "FAIL\tuser=alice@example.test", "cache off: wrong password FAIL")
ok(dt >= 0.45, "cache off: after the failure delay (%.2f s)" % dt)
write_passwd(d0, {ALICE: NEWPW})
time.sleep(1.2)
r, dt = a.plain(ALICE, APW)
is_(r, "FAIL\tuser=alice@example.test", "cache off: changed file, the old password fails")
r, dt = a.plain(ALICE, NEWPW)
like(r, r"^OK\t", "cache off: the new one works")
a.close()
ok(count(d0, r"auth cache") == 0 and not re.search(r"credential cache on", d0.read_log()),
   "cache_ttl = 0: the cache is never used")
d0.stop()


# ---------------------------------------------------------------- proxy mode
up, why = start_upstream({"dave": "dave-pw-1"}, mechanisms="plain login")


def upstream_password(pw):
    """Change dave's password in the private Dovecot's passwd file."""
    old = os.stat(up.users)
    with open(up.users, "w") as f:
        f.write("dave:%s::::::\n" % sha512_crypt(pw))
    # Dovecot notices a change by mtime (whole seconds) and size; the size
    # stays the same, so make sure the mtime moves on
    t = max(time.time(), old.st_mtime + 2)
    os.utime(up.users, (t, t))
    time.sleep(1.1)


def upstream_change(a, label, old, new):
    """dave logs in twice with old, his password changes in Dovecot to
    new: the old one fails at once, the new one works at once."""
    for i in range(2):
        r, dt = a.plain("dave", old)
        like(r, r"^OK\tuser=dave", "%s: upstream OK (%d)" % (label, i + 1))
    upstream_password(new)
    r, dt = a.plain("dave", old)
    is_(r, "FAIL\tuser=dave", "%s: password changed upstream, the old one fails at once" % label)
    r, dt = a.plain("dave", new)
    like(r, r"^OK\tuser=dave", "%s: the new one works at once" % label)


def sighup_flush(dx, a, label, old, new):
    """SIGHUP flushes the cached verdicts: dave's old password, changed
    upstream, fails from then on and the new one works."""
    os.kill(dx.proc.pid, signal.SIGHUP)
    ok(dx.wait_log(r"credential cache flushed"), "%s: SIGHUP flushes" % label)
    time.sleep(0.5)
    r, dt = a.plain("dave", old)
    is_(r, "FAIL\tuser=dave", "%s: after SIGHUP the old password fails" % label)
    r, dt = a.plain("dave", new)
    like(r, r"^OK\tuser=dave", "%s: the new password works" % label)


def dovecot_backends(with_passwd_file):
    dv = '{ driver = "dovecot"; socket = "%s"; timeout = 10; workers = 2; }' % up.socket
    return ('{ driver = "passwd-file"; path = "%(passwd)s"; }, ' + dv) if with_passwd_file else dv


if up is None:
    diag("no private Dovecot available (%s): upstream verdicts not tested" % why)
else:
    # ------------------------------------------- proxy mode, verdicts off (default)
    dp = Daemon(backends=dovecot_backends(False))
    a = Auth(dp)
    upstream_change(a, "proxy mode, default", "dave-pw-1", "dave-pw-2")
    a.close()
    log = dp.read_log()
    ok(count(dp, r"\(upstream, cached\)") == 0 and count(dp, r"auth cache") == 0,
       "proxy mode, default: no login answered from the cache, the cache never asked")
    ok(not re.search(r"credential cache on", log),
       "proxy mode, default: no cache at all (nothing may use it)")
    ok(count(dp, r"auth ok: rip=127\.0\.0\.1 user=dave mech=PLAIN service=smtp \(upstream\)") == 3,
       "proxy mode, default: every OK came from the upstream")
    dp.stop()

    # ------------------------- passwd-file + dovecot chain, verdicts off (default)
    dc = Daemon(users={ALICE: APW}, backends=dovecot_backends(True))
    ok(dc.wait_log(r"credential cache on: 10000 entries of at most 60 s \(passwd-file hashes; "
                   r"PAM and upstream Dovecot always asked\)"),
       "chain, default: the cache is on for the passwd file only")
    a = Auth(dc)
    upstream_change(a, "chain, default", "dave-pw-2", "dave-pw-3")
    ok(count(dc, r"auth cache (hit|miss): user=dave") == 0,
       "chain, default: the Dovecot user's logins never touch the cache")
    h = hits(dc)
    for i in range(2):
        r, dt = a.plain(ALICE, APW)
        like(r, r"^OK\tuser=alice", "chain, default: the passwd-file user logs in (%d)" % (i + 1))
    ok(wait_count(dc, hits, h + 1), "chain, default: ... her second login a cache hit")
    a.close()
    dc.stop()

    # ------------------------------ passwd-file + dovecot chain, cache_verdicts
    dv = Daemon(users={ALICE: APW}, backends=dovecot_backends(True),
                auth_extra="cache_verdicts = true;")
    ok(dv.wait_log(r"credential cache on: 10000 entries of at most 60 s \(passwd-file hashes, "
                   r"PAM and upstream Dovecot verdicts\)"),
       "chain, cache_verdicts: the log says upstream verdicts are cached")
    a = Auth(dv)
    r, dt = a.plain("dave", "dave-pw-3")
    like(r, r"^OK\tuser=dave", "chain, cache_verdicts: upstream OK")
    ok(wait_count(dv, lambda x: count(x, r"auth cache miss: user=dave \(dovecot"), 1),
       "chain, cache_verdicts: first login a miss")
    r, dt = a.plain("dave", "dave-pw-3")
    like(r, r"^OK\tuser=dave", "chain, cache_verdicts: OK again")
    ok(wait_count(dv, lambda x: count(x, r"auth cache hit: user=dave \(dovecot"), 1),
       "chain, cache_verdicts: second login a hit", dv.read_log()[-1500:])
    upstream_password("dave-pw-4")
    r, dt = a.plain("dave", "dave-pw-3")
    like(r, r"^OK\tuser=dave",
         "chain, cache_verdicts: password changed upstream, the cached old one still works (ttl)")
    sighup_flush(dv, a, "chain, cache_verdicts", "dave-pw-3", "dave-pw-4")
    a.close()
    dv.stop()

    # ------------------------------------------- proxy mode, cache_verdicts
    dp = Daemon(backends=dovecot_backends(False), auth_extra="cache_verdicts = true;")
    a = Auth(dp)
    r, dt = a.plain("dave", "dave-pw-4")
    like(r, r"^OK\tuser=dave", "proxy mode, cache_verdicts: upstream OK")
    r, dt = a.plain("dave", "dave-pw-4")
    like(r, r"^OK\tuser=dave", "proxy mode, cache_verdicts: OK again")
    ok(dp.wait_log(r"auth ok: rip=127\.0\.0\.1 user=dave mech=PLAIN service=smtp \(upstream, cached\)"),
       "proxy mode, cache_verdicts: the second OK came from the cache", dp.read_log()[-1500:])
    r, dt = a.plain("dave", "wrong")
    is_(r, "FAIL\tuser=dave", "proxy mode, cache_verdicts: wrong password FAIL (asked upstream)")
    ok(dp.wait_log(r"auth failed: rip=127\.0\.0\.1 user=dave mech=PLAIN \(upstream\)"),
       "proxy mode, cache_verdicts: the failure came from the upstream")
    r, dt = a.plain("dave", "dave-pw-4", rip="127.0.0.44")
    like(r, r"^OK\tuser=dave", "proxy mode, cache_verdicts: another client address: OK")
    n_cached = count(dp, r"\(upstream, cached\)")
    # the password changes upstream: the old verdict lasts until SIGHUP
    upstream_password("dave-pw-5")
    r, dt = a.plain("dave", "dave-pw-4")
    like(r, r"^OK\tuser=dave",
         "proxy mode, cache_verdicts: password changed upstream, the cached old one still works (ttl)")
    ok(count(dp, r"\(upstream, cached\)") == n_cached + 1, "... from the cache")
    sighup_flush(dp, a, "proxy mode, cache_verdicts", "dave-pw-4", "dave-pw-5")
    a.close()
    ok("dave-pw-4" not in dp.read_log(), "proxy mode: no password in the log")
    dp.stop()
    up.cleanup()
done()
