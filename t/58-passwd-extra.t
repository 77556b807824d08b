#!/usr/bin/env python3
# 58-passwd-extra.t - passwd-file extra fields over real SMTP logins from
# different 127.x source addresses: nologin refuses (even with the right
# password, with the same reply as a wrong password), allow_nets admits
# only the listed networks; the log names the reason without the password.
# Also ARGON2ID hashes from `msagatectl pw` and `doveadm pw`, and stored
# {SCRAM-SHA-256}/{SCRAM-SHA-1} secrets from doveadm, verified for PLAIN
# and LOGIN logins.
import base64, os, subprocess, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from msagatetest import *


def msagatectl_pw(scheme, password):
    r = subprocess.run([MSAGATECTL, "pw", "-s", scheme], input=password + "\n",
                       capture_output=True, text=True, timeout=60)
    return r.stdout.strip() if r.returncode == 0 else None


def doveadm_pw(scheme, password):
    if not have("doveadm"):
        return None
    r = subprocess.run(["doveadm", "pw", "-s", scheme, "-p", password],
                       capture_output=True, text=True, timeout=60)
    return r.stdout.strip() if r.returncode == 0 and r.stdout.startswith("{") else None


lines = [
    "nl@example.test:{PLAIN}nl-Secret-1::::::nologin",
    "nets@example.test:{PLAIN}nets-Secret-2::::::allow_nets=127.0.0.5/32,2001:db8::/32",
    "net8@example.test:{PLAIN}net8-Secret-3::::::allow_nets=127.0.0.0/8",
    "free@example.test:{PLAIN}free-Secret-4::::::nodelay quota_rule=*:storage=1G",
]
a2 = msagatectl_pw("ARGON2ID", "argon-Pw-5")
if a2:
    lines.append("argon@example.test:%s::::::" % a2)
da2 = doveadm_pw("ARGON2ID", "dargon-Pw-6")
if da2:
    lines.append("dargon@example.test:%s::::::" % da2)
scram = {}
for sch, user, pw in (("SCRAM-SHA-256", "scram256@example.test", "scram-Pw-7"),
                      ("SCRAM-SHA-1", "scram1@example.test", "scram-Pw-8")):
    h = doveadm_pw(sch, pw) or msagatectl_pw(sch, pw)
    if h:
        scram[user] = pw
        lines.append("%s:%s::::::" % (user, h))

d = Daemon(passwd_lines=lines)


def login(user, pw, source="127.0.0.1", mech="PLAIN"):
    s = d.smtp(source=source)
    s.cmd("EHLO c.example")
    s.starttls()
    s.cmd("EHLO c.example")
    if mech == "PLAIN":
        r = s.auth_plain(user, pw)
    else:
        r = s.cmd("AUTH LOGIN")
        if r.startswith("334"):
            r = s.cmd(base64.b64encode(user.encode()).decode())
        if r.startswith("334"):
            r = s.cmd(base64.b64encode(pw.encode()).decode())
    s.close()
    return r


wrong = login("nl@example.test", "not-the-password")
like(wrong, r"^535 ", "nologin, wrong password: 535")
r = login("nl@example.test", "nl-Secret-1")
like(r, r"^535 ", "nologin, right password: 535")
is_(r, wrong, "nologin refusal looks like a wrong password")
like(login("nl@example.test", "nl-Secret-1", mech="LOGIN"), r"^535 ",
     "nologin refused for LOGIN too")

like(login("nets@example.test", "nets-Secret-2", "127.0.0.5"), r"^235 ",
     "allow_nets: login from 127.0.0.5 (listed) accepted")
r = login("nets@example.test", "nets-Secret-2", "127.0.0.6")
like(r, r"^535 ", "allow_nets: login from 127.0.0.6 refused")
is_(r, login("nets@example.test", "wrong", "127.0.0.5"),
    "allow_nets refusal looks like a wrong password")
like(login("nets@example.test", "nets-Secret-2", "127.0.0.1"), r"^535 ",
     "allow_nets: login from 127.0.0.1 refused")
like(login("net8@example.test", "net8-Secret-3", "127.0.0.9"), r"^235 ",
     "allow_nets 127.0.0.0/8: 127.0.0.9 accepted")
like(login("net8@example.test", "net8-Secret-3", "127.1.2.3", mech="LOGIN"), r"^235 ",
     "allow_nets 127.0.0.0/8: 127.1.2.3 accepted (LOGIN)")
like(login("free@example.test", "free-Secret-4", "127.0.0.7"), r"^235 ",
     "no access fields: accepted from anywhere")

ok(d.wait_log(r"auth failed: rip=127\.0\.0\.6 user=nets@example\.test mech=PLAIN \(allow_nets\)"),
   "log names rip, user, mech and (allow_nets)", d.read_log()[-2000:])
ok(d.wait_log(r"auth failed: rip=127\.0\.0\.1 user=nl@example\.test mech=PLAIN \(nologin\)"),
   "log names (nologin)")
log = d.read_log()
ok("nl-Secret-1" not in log and "nets-Secret-2" not in log, "no password in the log")

# the auth socket: OK carries no internal field, FAIL no reason
import socket
a = socket.socket(socket.AF_UNIX)
a.settimeout(5)
a.connect(d.auth_socket)
a.sendall(b"VERSION\t1\t2\nCPID\t77\n")
buf = b""
while b"DONE\n" not in buf:
    buf += a.recv(4096)
a.sendall(("AUTH\t1\tPLAIN\tservice=smtp\trip=127.0.0.1\tresp=%s\n" %
           plain_b64("free@example.test", "free-Secret-4")).encode())
a.sendall(("AUTH\t2\tPLAIN\tservice=smtp\trip=127.0.0.1\tresp=%s\n" %
           plain_b64("nl@example.test", "nl-Secret-1")).encode())
got = b""
while got.count(b"\n") < 2:
    got += a.recv(4096)
a.close()
rl = sorted(got.decode().splitlines())
is_(rl, ["FAIL\t2\tuser=nl@example.test",
         "OK\t1\tuser=free@example.test\tquota_rule=*:storage=1G"],
    "auth socket: OK with extra fields but without nodelay, FAIL without a reason")

# msagatectl auth test prints the result and the extra fields
r = d.ctl("auth", "test", "free@example.test", "free-Secret-4")
like(r.stdout, r"auth succeeded", "msagatectl auth test: succeeded", r.stdout + r.stderr)
like(r.stdout, r"quota_rule=\*:storage=1G", "msagatectl auth test: extra field shown")
ok("nodelay" not in r.stdout and "Secret" not in r.stdout,
   "msagatectl auth test: no internal field, no password", r.stdout)
r = d.ctl("auth", "test", "nl@example.test", "nl-Secret-1")
like(r.stdout, r"auth failed", "msagatectl auth test: nologin user fails", r.stdout + r.stderr)

# ARGON2ID and stored SCRAM secrets
if a2:
    like(login("argon@example.test", "argon-Pw-5"), r"^235 ",
         "ARGON2ID from msagatectl pw: PLAIN login")
    like(login("argon@example.test", "nope"), r"^535 ", "ARGON2ID: wrong password 535")
else:
    ok(False, "msagatectl pw -s ARGON2ID produced a hash")
if da2:
    like(login("dargon@example.test", "dargon-Pw-6", mech="LOGIN"), r"^235 ",
         "ARGON2ID from doveadm pw: LOGIN login")
else:
    diag("doveadm pw -s ARGON2ID not available: skipped")
for user, pw in scram.items():
    like(login(user, pw), r"^235 ", "stored %s secret: PLAIN login" % user)
    like(login(user, pw, mech="LOGIN"), r"^235 ", "stored %s secret: LOGIN login" % user)
    like(login(user, pw + "x"), r"^535 ", "stored %s secret: wrong password 535" % user)
d.stop()


# DIGEST-MD5 (Cyrus' plugin) with msmtp, which uses GNU SASL: {PLAIN} users,
# with and without @domain; nologin still refused
def msmtp(dd, user, pw, mech):
    cfg = os.path.join(dd.dir, "msmtprc")
    with open(cfg, "w") as f:
        f.write("account default\nhost 127.0.0.1\nport %d\ntls on\ntls_starttls on\n"
                "tls_certcheck off\nauth %s\nuser %s\npassword %s\nfrom %s\n" %
                (dd.ports["submission"], mech, user, pw, user if "@" in user else
                 user + "@example.test"))
    os.chmod(cfg, 0o600)
    r = subprocess.run(["msmtp", "-C", cfg, "--debug", "x@example.org"],
                       input="Subject: t\n\nhi\n", capture_output=True, text=True,
                       timeout=60)
    return r.stdout + r.stderr


if not have("msmtp"):
    diag("msmtp not installed: DIGEST-MD5 skipped")
else:
    try:
        dd = Daemon(mechanisms=("PLAIN", "DIGEST-MD5"),
                    plain_users={"dig@example.test": "dig-Pw-9", "bare": "bare-Pw-10"},
                    passwd_lines=["dnl@example.test:{PLAIN}dnl-Pw-11::::::nologin"])
    except RuntimeError as e:
        dd = None
        if "DIGEST-MD5" in str(e) and "not supported" in str(e):
            diag("the configuration parser does not accept DIGEST-MD5 yet: skipped")
        else:
            ok(False, "daemon with DIGEST-MD5 starts", e)
    if dd is not None:
        out = msmtp(dd, "dig@example.test", "dig-Pw-9", "digest-md5")
        like(out, r"235 ", "DIGEST-MD5 user@domain: 235 (msmtp/GNU SASL)", out)
        like(msmtp(dd, "bare", "bare-Pw-10", "digest-md5"), r"235 ",
             "DIGEST-MD5 bare user: 235")
        like(msmtp(dd, "dig@example.test", "wrong", "digest-md5"), r"535 ",
             "DIGEST-MD5 wrong password: 535")
        like(msmtp(dd, "dnl@example.test", "dnl-Pw-11", "digest-md5"), r"535 ",
             "DIGEST-MD5 nologin user: 535")
        a = socket.socket(socket.AF_UNIX)
        a.settimeout(5)
        a.connect(dd.auth_socket)
        a.sendall(b"VERSION\t1\t2\nCPID\t9\n")
        buf = b""
        while b"DONE\n" not in buf:
            buf += a.recv(4096)
        a.close()
        ok("MECH\tDIGEST-MD5\tdictionary\tactive\tmutual-auth" in buf.decode().splitlines(),
           "MECH DIGEST-MD5 dictionary active mutual-auth", buf)
done()
