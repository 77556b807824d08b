#!/usr/bin/env python3
# 55-mechs.t - challenge-response mechanisms through Cyrus SASL: CRAM-MD5
# (python smtplib, msmtp) and SCRAM-SHA-1/-256 (msmtp with GNU SASL) for
# users whose passwd-file entry holds a {PLAIN} password; users with only a
# hash cannot use them; MECH flags on the auth socket are Dovecot's.
# SCRAM-SHA-256/-1 (msmtp) for users whose entry is a stored {SCRAM-SHA-*}
# secret from `msagatectl pw` and `doveadm pw`; such a user cannot use the
# other SCRAM hash nor CRAM-MD5, and nologin still refuses.
import os, smtplib, socket, subprocess, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from msagatetest import *

mechs = ("PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256")
d = Daemon(mechanisms=mechs, plain_users={"carol@example.test": "carol-Pw-77"})
carol, cpw = "carol@example.test", "carol-Pw-77"
alice, apw = "alice@example.test", d.users["alice@example.test"]

s = d.smtp()
s.cmd("EHLO c.example")
s.starttls()
r = s.cmd("EHLO c.example")
for m in mechs:
    like(r, r"250[- ]AUTH .*\b%s\b" % re.escape(m), "EHLO advertises %s" % m)
s.close()

# MECH lines carry Dovecot's flags
a = socket.socket(socket.AF_UNIX)
a.settimeout(5)
a.connect(d.auth_socket)
a.sendall(b"VERSION\t1\t2\nCPID\t9\n")
buf = b""
while b"DONE\n" not in buf:
    buf += a.recv(4096)
lines = buf.decode().splitlines()
ok("MECH\tCRAM-MD5\tdictionary\tactive" in lines, "MECH CRAM-MD5 dictionary active", lines)
ok("MECH\tSCRAM-SHA-256\tmutual-auth" in lines, "MECH SCRAM-SHA-256 mutual-auth", lines)
a.close()

# python smtplib: CRAM-MD5
c = smtplib.SMTP("127.0.0.1", d.ports["submission"], timeout=10)
c.starttls(context=client_ctx())
c.ehlo("c.example")
c.user, c.password = carol, cpw
code, _ = c.auth("CRAM-MD5", c.auth_cram_md5)
is_(code, 235, "smtplib CRAM-MD5 for a {PLAIN} user: 235")
before = set(d.queue_files())
c.sendmail(carol, ["x@example.org"], b"Subject: cram\r\n\r\nvia CRAM-MD5\r\n")
c.quit()
is_(len(set(d.queue_files()) - before), 1, "message queued after CRAM-MD5")
for user, pw, name in ((carol, "wrong-pw", "wrong password"),
                       (alice, apw, "user with only a SHA512-CRYPT hash")):
    c = smtplib.SMTP("127.0.0.1", d.ports["submission"], timeout=10)
    c.starttls(context=client_ctx())
    c.ehlo("c.example")
    c.user, c.password = user, pw
    try:
        c.auth("CRAM-MD5", c.auth_cram_md5)
        ok(False, "CRAM-MD5 %s refused" % name)
    except smtplib.SMTPAuthenticationError as e:
        is_(e.smtp_code, 535, "CRAM-MD5 %s: 535" % name)
    c.close()

# msmtp: cram-md5, scram-sha-1, scram-sha-256 over 587 and 465
if have("msmtp"):
    for auth, port_name, starttls in (("cram-md5", "submission", "on"),
                                      ("scram-sha-1", "submission", "on"),
                                      ("scram-sha-256", "smtps", "off"),
                                      ("scram-sha-256", "submission", "on")):
        rc = os.path.join(d.dir, "msmtprc-%s-%s" % (auth, port_name))
        with open(rc, "w") as f:
            f.write("defaults\ntls on\ntls_starttls %s\ntls_certcheck off\naccount t\n"
                    "host 127.0.0.1\nport %d\nauth %s\nuser %s\npassword %s\nfrom %s\n"
                    "timeout 20\naccount default : t\n"
                    % (starttls, d.ports[port_name], auth, carol, cpw, carol))
        os.chmod(rc, 0o600)
        before = set(d.queue_files())
        r = subprocess.run(["msmtp", "-C", rc, "x@example.org"],
                           input="Subject: msmtp %s\n\nhello\n" % auth,
                           capture_output=True, text=True, timeout=60)
        is_(r.returncode, 0, "msmtp auth %s on %s" % (auth, port_name), r.stderr)
        is_(len(set(d.queue_files()) - before), 1, "msmtp %s message queued" % auth)
    with open(rc, "w") as f:
        f.write("defaults\ntls on\ntls_starttls on\ntls_certcheck off\naccount t\n"
                "host 127.0.0.1\nport %d\nauth scram-sha-256\nuser %s\npassword nope\n"
                "from %s\ntimeout 20\naccount default : t\n" % (d.ports["submission"], carol, carol))
    r = subprocess.run(["msmtp", "-C", rc, "x@example.org"], input="Subject: x\n\nx\n",
                       capture_output=True, text=True, timeout=60)
    ok(r.returncode != 0 and "535" in r.stderr, "msmtp scram-sha-256 with a wrong password: 535", r.stderr)
else:
    diag("msmtp not installed")
ok(cpw not in d.read_log(), "no password in the log")
d.stop()


# ---- stored SCRAM secrets --------------------------------------------------
def pw_hash(argv, password):
    try:
        r = subprocess.run(argv, input=password + "\n", capture_output=True,
                           text=True, timeout=60)
    except OSError:
        return None
    h = r.stdout.strip()
    return h if r.returncode == 0 and h.startswith("{SCRAM-") else None


stored = []   # (user, password, hash scheme, made by)
lines = []
for sch, user, pw, tool in (
        ("SCRAM-SHA-256", "s256@example.test", "s256-Pw-1", "msagatectl"),
        ("SCRAM-SHA-1", "s1@example.test", "s1-Pw-2", "msagatectl"),
        ("SCRAM-SHA-256", "d256@example.test", "d256-Pw-3", "doveadm"),
        ("SCRAM-SHA-1", "d1@example.test", "d1-Pw-4", "doveadm"),
        ("SCRAM-SHA-256", "nl256@example.test", "nl256-Pw-5", "msagatectl")):
    if tool == "doveadm" and not have("doveadm"):
        diag("doveadm not installed: no %s user" % user)
        continue
    argv = ([MSAGATECTL, "pw", "-s", sch] if tool == "msagatectl"
            else ["doveadm", "pw", "-s", sch, "-p", pw])
    h = pw_hash(argv, pw)
    ok(h is not None, "%s pw -s %s" % (tool, sch))
    if h is None:
        continue
    extra = "nologin" if user.startswith("nl") else ""
    lines.append("%s:%s::::::%s" % (user, h, extra))
    stored.append((user, pw, sch, tool))

d = Daemon(mechanisms=mechs, passwd_lines=lines)
s = d.smtp()
s.cmd("EHLO c.example")
s.starttls()
r = s.cmd("EHLO c.example")
like(r, r"250[- ]AUTH .*\bSCRAM-SHA-256\b", "stored secrets: EHLO advertises SCRAM-SHA-256")
s.close()


def msmtp(user, pw, auth, n):
    rc = os.path.join(d.dir, "msmtprc-stored-%d" % n)
    with open(rc, "w") as f:
        f.write("defaults\ntls on\ntls_starttls on\ntls_certcheck off\naccount t\n"
                "host 127.0.0.1\nport %d\nauth %s\nuser %s\npassword %s\nfrom %s\n"
                "timeout 20\naccount default : t\n"
                % (d.ports["submission"], auth, user, pw, user))
    os.chmod(rc, 0o600)
    return subprocess.run(["msmtp", "-C", rc, "x@example.org"],
                          input="Subject: msmtp %s\n\nhello\n" % auth,
                          capture_output=True, text=True, timeout=60)


if have("msmtp"):
    n = 0
    for user, pw, sch, tool in stored:
        other = "SCRAM-SHA-1" if sch == "SCRAM-SHA-256" else "SCRAM-SHA-256"
        n += 1
        if user.startswith("nl"):
            r = msmtp(user, pw, sch.lower(), n)
            ok(r.returncode != 0 and "535" in r.stderr,
               "nologin user with a stored %s secret, right password: 535" % sch, r.stderr)
            continue
        before = set(d.queue_files())
        r = msmtp(user, pw, sch.lower(), n)
        is_(r.returncode, 0, "msmtp auth %s, stored secret from %s" % (sch.lower(), tool),
            r.stderr)
        is_(len(set(d.queue_files()) - before), 1, "message queued (%s, %s)" % (sch, tool))
        n += 1
        r = msmtp(user, "wrong-" + pw, sch.lower(), n)
        ok(r.returncode != 0 and "535" in r.stderr,
           "msmtp %s, %s secret, wrong password: 535" % (sch.lower(), tool), r.stderr)
        n += 1
        r = msmtp(user, pw, other.lower(), n)
        ok(r.returncode != 0 and "535" in r.stderr,
           "stored %s secret, login with %s: 535" % (sch, other), r.stderr)
else:
    diag("msmtp not installed")
for user, pw, sch, tool in stored[:1]:
    c = smtplib.SMTP("127.0.0.1", d.ports["submission"], timeout=10)
    c.starttls(context=client_ctx())
    c.ehlo("c.example")
    c.user, c.password = user, pw
    try:
        c.auth("CRAM-MD5", c.auth_cram_md5)
        ok(False, "CRAM-MD5 for a stored-SCRAM user refused")
    except smtplib.SMTPAuthenticationError as e:
        is_(e.smtp_code, 535, "CRAM-MD5 for a user with a stored %s secret: 535" % sch)
    c.close()
log = d.read_log()
ok(all(pw not in log for _, pw, _, _ in stored), "no stored-SCRAM password in the log")
d.stop()
done()
