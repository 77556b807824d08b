#!/usr/bin/env python3
# 10-submit.t - a MUA submits mail over 587 (STARTTLS) and 465 (implicit TLS)
# with swaks, msmtp and Python's smtplib, as a passwd-file user; every
# accepted message is in the queue with its envelope and the fix-up headers.
import os, smtplib, subprocess, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from msagatetest import *

d = Daemon()
p587, p465 = d.ports["submission"], d.ports["smtps"]
alice, apw = "alice@example.test", d.users["alice@example.test"]

# --- Python smtplib, 587 + STARTTLS
s = smtplib.SMTP("127.0.0.1", p587, timeout=10)
s.ehlo("mua.example.test")
ok(s.has_extn("starttls"), "587 advertises STARTTLS before TLS")
ok(not s.has_extn("auth"), "587 does not advertise AUTH before TLS")
s.starttls(context=client_ctx())
s.ehlo("mua.example.test")
ok(not s.has_extn("starttls"), "no STARTTLS after TLS")
like(s.esmtp_features.get("auth", ""), r"PLAIN", "AUTH PLAIN advertised under TLS")
for kw in ("pipelining", "size", "8bitmime", "enhancedstatuscodes", "smtputf8"):
    ok(s.has_extn(kw), "EHLO advertises %s" % kw.upper())
is_(s.esmtp_features.get("size"), "1048576", "SIZE shows message_size_limit")
code, _ = s.login(alice, apw)
is_(code, 235, "smtplib AUTH PLAIN over STARTTLS: 235")
before = set(d.queue_files())
res = s.sendmail(alice, ["rcpt@example.org", "other@example.net"],
                 b"Subject: smtplib 587\r\n\r\nbody line\r\n")
is_(res, {}, "smtplib sendmail accepted both recipients")
s.quit()
new = sorted(set(d.queue_files()) - before)
is_(len(new), 1, "one new queue file after smtplib on 587")
if new:
    data = d.queue_file(new[0]).decode("utf-8", "replace")
    like(data, r"(?m)^sender=alice@example\.test$", "envelope sender recorded")
    like(data, r"(?m)^rcpt=rcpt@example\.org$", "first recipient recorded")
    like(data, r"(?m)^rcpt=other@example\.net$", "second recipient recorded")
    like(data, r"(?m)^auth_user=alice@example\.test$", "authenticated user recorded")
    like(data, r"(?m)^client=127\.0\.0\.1$", "client address recorded")
    like(data, r"(?m)^tls=TLSv1\.[23] ", "TLS details recorded")
    like(data, r"Received: from mua\.example\.test \(\[127\.0\.0\.1\]\)", "Received: names the client")
    like(data, r"with ESMTPSA id " + new[0], "Received: with ESMTPSA and the queue id")
    like(data, r"version=TLSv1\.[23] cipher=", "Received: TLS version and cipher")
    like(data, r"(?mi)^Message-ID: <[^>]+@mail\.example\.test>", "Message-ID added when missing")
    like(data, r"(?mi)^Date: \w{3}, \d+ \w{3} \d{4} ", "Date added when missing")
    like(data, r"body line\r\n$", "body stored with CRLF")

# --- smtplib over 465 implicit TLS, message already has Message-ID and Date
s = smtplib.SMTP_SSL("127.0.0.1", p465, timeout=10, context=client_ctx())
s.ehlo("mua.example.test")
ok(not s.has_extn("starttls"), "465 never advertises STARTTLS")
code, _ = s.login("bob", d.users["bob"])
is_(code, 235, "smtplib AUTH over 465 (password with space and colon)")
before = set(d.queue_files())
msg = message("smtps")
s.sendmail("bob@example.test", ["x@example.org"], msg.encode())
s.quit()
new = sorted(set(d.queue_files()) - before)
is_(len(new), 1, "one new queue file after 465")
if new:
    data = d.queue_file(new[0]).decode()
    is_(len(re.findall(r"(?mi)^Message-ID:", data)), 1, "existing Message-ID kept, none added")
    is_(len(re.findall(r"(?mi)^Date:", data)), 1, "existing Date kept, none added")

# --- wrong password: 535
s = smtplib.SMTP("127.0.0.1", p587, timeout=10)
s.starttls(context=client_ctx())
try:
    s.login(alice, "Wr0ngPass-x")
    ok(False, "wrong password refused")
except smtplib.SMTPAuthenticationError as e:
    is_(e.smtp_code, 535, "wrong password: 535")
    like(e.smtp_error.decode(), r"^5\.7\.8", "wrong password: 5.7.8")
s.close()
ok(d.wait_log(r"auth failed: rip=127\.0\.0\.1 user=alice@example\.test mech=PLAIN"),
   "failed AUTH logged in a fail2ban-matchable form")
ok("Wr0ngPass-x" not in d.read_log(), "the wrong password never reaches the log")
ok(apw not in d.read_log(), "the right password never reaches the log")

# --- swaks on 587 (STARTTLS) and 465 (implicit), AUTH LOGIN and PLAIN
if have("swaks"):
    for args, name in ((["--server", "127.0.0.1:%d" % p587, "--tls"], "587 --tls"),
                       (["--server", "127.0.0.1:%d" % p465, "--tlsc"], "465 --tlsc")):
        for mech in ("PLAIN", "LOGIN"):
            before = set(d.queue_files())
            r = subprocess.run(["swaks", "-4", "--from", alice, "--to", "someone@example.org",
                                "--auth", mech, "--auth-user", alice, "--auth-password", apw,
                                "--h-Subject", "swaks %s" % name, "--timeout", "20"] + args,
                               capture_output=True, text=True, timeout=60)
            ok(r.returncode == 0 and re.search(r"<~  250 2\.0\.0 Ok: queued as [0-9A-F]+", r.stdout),
               "swaks %s AUTH %s submits" % (name, mech), r.stdout + r.stderr)
            is_(len(set(d.queue_files()) - before), 1, "swaks %s %s: message queued" % (name, mech))
    r = subprocess.run(["swaks", "-4", "--server", "127.0.0.1:%d" % p587, "--tls",
                        "--from", alice, "--to", "someone@example.org", "--auth", "PLAIN",
                        "--auth-user", alice, "--auth-password", "nope", "--timeout", "20"],
                       capture_output=True, text=True, timeout=60)
    like(r.stdout, r"<~\*? +535 5\.7\.8", "swaks with a wrong password gets 535 5.7.8")
else:
    diag("swaks not installed: skipping swaks checks")

# --- msmtp on 587 (starttls) and 465 (tls_starttls off)
if have("msmtp"):
    for port, starttls in ((p587, "on"), (p465, "off")):
        rc = os.path.join(d.dir, "msmtprc-%d" % port)
        with open(rc, "w") as f:
            f.write("defaults\ntls on\ntls_starttls %s\ntls_certcheck off\n"
                    "account t\nhost 127.0.0.1\nport %d\nauth plain\nuser %s\n"
                    "password %s\nfrom %s\ntimeout 20\naccount default : t\n"
                    % (starttls, port, alice, apw, alice))
        os.chmod(rc, 0o600)
        before = set(d.queue_files())
        r = subprocess.run(["msmtp", "-C", rc, "rcpt@example.org"],
                           input="Subject: msmtp %d\n\nhello from msmtp\n" % port,
                           capture_output=True, text=True, timeout=60)
        is_(r.returncode, 0, "msmtp on port %s (tls_starttls %s) exits 0" % ("587" if port == p587 else "465", starttls))
        is_(len(set(d.queue_files()) - before), 1, "msmtp message queued")
else:
    diag("msmtp not installed: skipping msmtp checks")

# --- queue list shows what was queued
r = d.ctl("queue", "list")
is_(r.returncode, 0, "msagatectl queue list exits 0")
for q in d.queue_files():
    ok(q in r.stdout, "queue list shows %s" % q, r.stdout + r.stderr)
    break
d.stop()
is_(d.proc.returncode, 0, "SIGTERM: msagated exits 0")
done()
