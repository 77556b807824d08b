#!/usr/bin/env python3
# 60-ctl.t - msagatectl: auth test, pw (hashes that msagate and Dovecot both
# verify), reload; SIGHUP and a changed passwd file take effect without
# dropping established sessions; exit codes as the interface says.
import os, shutil, signal, subprocess, sys, time
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

# auth service unreachable: 454 at SMTP, 75 from msagatectl
d.stop()
r = d.ctl("auth", "test", alice, apw)
is_(r.returncode, 75, "auth test with the daemon down exits 75")
r = d.ctl("reload")
is_(r.returncode, 75, "reload with the daemon down exits 75")
done()
