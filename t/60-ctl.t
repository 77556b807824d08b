#!/usr/bin/env python3
# 60-ctl.t - msagatectl: auth test, pw (hashes that msagate and Dovecot both
# verify), reload; SIGHUP and a changed passwd file take effect without
# dropping established sessions; exit codes as the interface says.
import os, re, shutil, signal, socket, subprocess, sys, time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from msagatetest import *

d = Daemon()
alice, apw = "alice@example.test", d.users["alice@example.test"]

r = d.ctl("auth", "test", alice, apw)
is_(r.returncode, 0, "auth test with the right password exits 0")
like(r.stdout, r"auth succeeded", "auth test says it succeeded")
r = d.ctl("auth", "test", alice, "Wr0ngPass-x")
is_(r.returncode, 1, "auth test with a wrong password exits 1")
like(r.stdout + r.stderr, r"auth failed", "auth test says it failed")
r = d.ctl("auth", "test", alice, input=apw + "\n")
is_(r.returncode, 0, "auth test reads the password from stdin when omitted")
r = subprocess.run([MSAGATECTL, "-c", d.conf, "frobnicate"], capture_output=True, text=True)
is_(r.returncode, 2, "unknown command exits 2")
r = subprocess.run([MSAGATECTL, "-c", "/nonexistent.conf", "queue", "list"], capture_output=True, text=True)
is_(r.returncode, 2, "unreadable configuration exits 2")


def pw(scheme=None, password="n3w-Secret"):
    args = [MSAGATECTL, "pw"] + (["-s", scheme] if scheme else [])
    return subprocess.run(args, input=password + "\n", capture_output=True, text=True)


r = pw()
is_(r.returncode, 0, "pw with the default scheme exits 0")
like(r.stdout.strip(), r"^\{(ARGON2ID|SHA512-CRYPT)\}\S+$", "pw prints {SCHEME}hash")
ok("n3w-Secret" not in r.stdout + r.stderr, "pw never echoes the password")
r = pw("NO-SUCH-SCHEME")
is_(r.returncode, 2, "pw with an unknown scheme exits 2")

# a new user whose hash comes from msagatectl pw logs in after the passwd
# file changes (re-read on change) and after SIGHUP
schemes = ["SHA512-CRYPT", "SHA256-CRYPT", "BLF-CRYPT", "PLAIN"]
hashes = {}
for sc in schemes:
    r = pw(sc, "pw-%s" % sc.lower())
    ok(r.returncode == 0 and r.stdout.startswith("{%s}" % sc), "pw -s %s" % sc, r.stdout + r.stderr)
    hashes[sc] = r.stdout.strip()

s_old = d.smtp()
like(s_old.login(alice, apw), r"^235", "a session authenticated before the reload")
with open(d.passwd, "a") as f:
    for sc in schemes:
        f.write("u-%s@example.test:%s::::::\n" % (sc.lower(), hashes[sc]))
time.sleep(1.1)
for sc in schemes:
    r = d.ctl("auth", "test", "u-%s@example.test" % sc.lower(), "pw-%s" % sc.lower())
    is_(r.returncode, 0, "user with a %s hash from msagatectl pw authenticates" % sc)

# Dovecot interoperability, both ways, where doveadm is installed
if have("doveadm"):
    for sc in ("SHA512-CRYPT", "SHA256-CRYPT", "BLF-CRYPT"):
        r = subprocess.run(["doveadm", "pw", "-t", hashes[sc], "-p", "pw-%s" % sc.lower()],
                           capture_output=True, text=True)
        like(r.stdout + r.stderr, r"verified", "doveadm pw -t verifies our %s hash" % sc)
    r = subprocess.run(["doveadm", "pw", "-s", "SHA512-CRYPT", "-p", "from-dovecot"],
                       capture_output=True, text=True)
    with open(d.passwd, "a") as f:
        f.write("dove@example.test:%s::::::\n" % r.stdout.strip())
    os.kill(d.proc.pid, signal.SIGHUP)
    time.sleep(1)
    r = d.ctl("auth", "test", "dove@example.test", "from-dovecot")
    is_(r.returncode, 0, "a hash made by doveadm pw verifies in msagate")
else:
    diag("doveadm not installed: skipping Dovecot hash interop")

# msagatectl reload = SIGHUP; the established session keeps working
r = d.ctl("reload")
is_(r.returncode, 0, "msagatectl reload exits 0")
ok(d.wait_log(r"SIGHUP|reload", 5), "the daemon logged the reload")
time.sleep(0.5)
like(s_old.cmd("MAIL FROM:<%s>" % alice), r"^250", "session from before the reload still works")
s_old.cmd("RCPT TO:<after-reload@example.org>")
s_old.cmd("DATA")
like(s_old.cmd("Subject: across reload\r\n\r\nx\r\n."), r"^250 2\.0\.0", "and queues a message")
s_old.close()
s = d.smtp()
like(s.login(alice, apw), r"^235", "new sessions after the reload work")
s.close()
ok("settings changed" not in d.read_log(), "a reload of an unchanged file warns about nothing")

# changed auth settings: a new auth role applies them; sessions stay up
s_old = d.smtp()
like(s_old.login(alice, apw), r"^235", "a session authenticated before the auth settings change")
t0 = time.time()
s = d.smtp()
like(s.login(alice, "Wr0ngPass-x"), r"^535", "a wrong password before the change")
t_before = time.time() - t0
s.close()
with open(d.conf) as f:
    conf = f.read()
with open(d.conf, "w") as f:
    f.write(conf.replace("failure_delay = 0;", "failure_delay = 1;").replace(
        "relay = {", "relay = {\n  retry_min = 120;", 1))
r = d.ctl("reload")
ok(d.wait_log(r"reload: the auth settings changed: a new auth role applies them"),
   "a changed auth setting: a new auth role", d.read_log()[-1500:])
ok(d.wait_log(r"queue: reloaded: .*retries 120\.\."),
   "a changed relay setting: the queue role applies it (t/61 for more)")
time.sleep(2)     # the old auth role hands its idle clients over at once
t0 = time.time()
s = d.smtp()
like(s.login(alice, "Wr0ngPass-x"), r"^535", "a wrong password after the change")
t_after = time.time() - t0
ok(t_before < 0.8 and t_after >= 0.9,
   "the new failure_delay applies (%.2fs before, %.2fs after)" % (t_before, t_after))
s.close()
s = d.smtp()
like(s.login(alice, apw), r"^235", "the right password still logs in")
s.close()
like(s_old.cmd("MAIL FROM:<%s>" % alice), r"^250", "the session from before the change still works")
s_old.cmd("RCPT TO:<after-auth-swap@example.org>")
s_old.cmd("DATA")
like(s_old.cmd("Subject: across the auth swap\r\n\r\nx\r\n."), r"^250 2\.0\.0", "and queues a message")
s_old.close()
ok(d.ctl("auth", "test", alice, apw).returncode == 0, "the auth socket answers (new auth role)")
ok(len([l for l in d.read_log().splitlines() if "auth role ready" in l]) >= 2,
   "a second auth role started")
with open(d.conf, "w") as f:
    f.write(conf)


def auth_role_pids():
    ids = set(int(x) for x in re.findall(r"msagated/auth\[(\d+)\]", d.read_log()))
    return [p for p in d.pids() if p in ids and os.path.exists("/proc/%d" % p)
            and not open("/proc/%d/stat" % p).read().split(") ")[-1].startswith("Z")]


# a reload while the auth role waits for its restart (it died several times
# in a row: back-off) must not leave two auth roles
for i in range(4):
    before = auth_role_pids()
    for p in before:
        os.kill(p, signal.SIGKILL)
    if i < 3:
        wait_for(lambda: [p for p in auth_role_pids() if p not in before], 5)
time.sleep(0.3)
with open(d.conf, "w") as f:
    f.write(conf.replace("failure_delay = 0;", "failure_delay = 0.5;"))
d.ctl("reload")
ok(wait_for(lambda: len(auth_role_pids()) == 1, 10) and
   (time.sleep(2) or len(auth_role_pids()) == 1),
   "an auth role in its restart back-off at a reload: one auth role afterwards", auth_role_pids())
ok(d.ctl("auth", "test", alice, apw).returncode == 0, "and it answers")
with open(d.conf, "w") as f:
    f.write(conf)
d.ctl("reload")

# a user who may not use the auth socket: a usage error (2), not "try later"
if os.geteuid() == 0 and shutil.which("setpriv"):
    r = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                        MSAGATECTL, "-c", d.conf, "auth", "test", alice, apw],
                       capture_output=True, text=True)
    is_(r.returncode, 2, "auth test by a user without access to the socket exits 2", r.stderr)
    like(r.stderr, r"permission denied", "and says permission denied")

# auth service unreachable: 454 at SMTP, 75 from msagatectl
d.stop()
r = d.ctl("auth", "test", alice, apw)
is_(r.returncode, 75, "auth test with the daemon down exits 75")
r = d.ctl("reload")
is_(r.returncode, 75, "reload with the daemon down exits 75")

# a stale pid file naming another live program: reload does not signal it,
# and msagated starts anyway
other = subprocess.Popen(["sleep", "60"])
pid_file = os.path.join(d.run_dir, "msagated.pid")
with open(pid_file, "w") as f:
    f.write("%d\n" % other.pid)
r = d.ctl("reload")
is_(r.returncode, 75, "reload with a stale pid file (another program's pid) exits 75")
time.sleep(0.2)
ok(other.poll() is None, "and that program was not signalled")
d.start()
ok(d.proc.poll() is None, "msagated starts over a stale pid file naming another program")
other.kill()
other.wait()

# a second daemon told to use the first one's (live) auth socket refuses to start
d2 = Daemon(start=False)
with open(d2.conf) as f:
    conf2 = f.read()
conf2 = conf2.replace('"%s"' % d2.auth_socket, '"%s"' % d.auth_socket)
with open(d2.conf, "w") as f:
    f.write(conf2)
r = subprocess.run([MSAGATED, "-f", "-c", d2.conf], capture_output=True, text=True, timeout=30)
ok(r.returncode != 0, "a second msagated on a live auth socket exits with an error", r.stderr[-500:])
like(r.stderr, r"%s is in use by another running program" % re.escape(d.auth_socket), "and says why")
ok(d.ctl("auth", "test", alice, apw).returncode == 0, "the first daemon's auth socket still works")

# SIGTERM: new connections are refused at once while a session in DATA finishes
s = d.smtp()
s.login(alice, apw)
s.cmd("MAIL FROM:<%s>" % alice)
s.cmd("RCPT TO:<during-stop@example.org>")
like(s.cmd("DATA"), r"^354", "a session in DATA")
d.proc.send_signal(signal.SIGTERM)


def refused():
    try:
        socket.create_connection(("127.0.0.1", d.ports["submission"]), 1).close()
        return False
    except ConnectionRefusedError:
        return True
    except OSError:             # a timeout or reset while the listeners close
        return False


ok(wait_for(refused, 5), "after SIGTERM new connections are refused (not left waiting)")
like(s.cmd("Subject: stop\r\n\r\nx\r\n."), r"^250 2\.0\.0", "the session in DATA still finishes")
s.close()
ok(d.proc.wait(30) == 0, "and msagated exits 0")

# kill -9 of the parent: the roles stop too (they do not hold the ports)
d.start()
parent = d.proc.pid
roles = [p for p in d.pids() if p != parent]
ok(len(roles) >= 3, "the roles are running", roles)
os.kill(parent, signal.SIGKILL)
d.proc.wait()


def gone(pids):
    for p in pids:
        try:
            with open("/proc/%d/stat" % p) as f:
                if f.read().split(") ")[-1].startswith("Z"):
                    continue
            return False
        except FileNotFoundError:
            continue
    return True


ok(wait_for(lambda: gone(roles), 15), "after kill -9 of msagated every role has stopped")
d.start()
ok(d.proc.poll() is None and d.ctl("auth", "test", alice, apw).returncode == 0,
   "and msagated starts again on the same ports and sockets")
d.stop()

# a configuration path that is a directory: an error, not a crash
r = subprocess.run([MSAGATED, "-n", "-c", d.dir], capture_output=True, text=True)
is_(r.returncode, 1, "msagated -n on a directory exits 1")
like(r.stdout + r.stderr, r"not a regular file", "and says it is not a regular file")
done()
