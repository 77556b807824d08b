#!/usr/bin/env python3
# 95-delivery.t - the queue manager delivers: mail submitted on 587 to
# local users lands in their Maildir (Return-Path, Delivered-To) and leaves
# the queue; aliases expand; user+tag goes to user; foreign recipients stay
# deferred (no relayhost, MX lookup off in the tests); a real Dovecot LMTP
# receives mail, a down LMTP defers and `msagatectl queue flush` delivers
# once it is up; an LMTP 550 bounces (multipart/report) into the sender's
# mailbox; kill -9 during deliveries loses nothing.
import os, pwd, re, smtplib, socket, sys, time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from msagatetest import *
from dovecotauth import PrivateDovecot, user_exists


# every recipient must exist for the relay policy (passwd file or aliases)
LOCALS = ["carol", "dora", "erin", "frank", "gina", "hank", "nosuchuser"]
USERS = dict(Daemon.USERS, **{"%s@example.test" % u: "pw-" + u for u in LOCALS})
USERS["jörg@example.test"] = "pw-joerg"          # an SMTPUTF8 local part

# ------------------------------------------------------------ Maildir
d = Daemon(start=False, users=USERS)
mail = os.path.join(d.dir, "mail")
os.mkdir(mail, 0o700)
chown_run_user(mail, d.user)
aliases = os.path.join(d.dir, "aliases")
with open(aliases, "w") as f:
    f.write("# test aliases\nteam: alice@example.test, bob@example.test\n"
            "postmaster: frank@example.test\n"
            "staff: hank@example.test, someone@far.test\n"
            "loopa: loopb\nloopb: loopa\n"
            "typo: gnia@example.test\n")
os.chmod(aliases, 0o644)
d.relay_extra = ('aliases = "%s";\n  delivery = { method = "maildir"; path = "%s/%%d/%%n/Maildir"; };'
                 % (aliases, mail))
d.write_conf()
d.start()
box = lambda u: os.path.join(mail, "example.test", u, "Maildir")

send_mail(d, ["bob@example.test"], "to bob")
ok(wait_for(lambda: len(maildir_msgs(box("bob"))) == 1), "message delivered to bob's Maildir",
   d.read_log()[-3000:])
m = (maildir_msgs(box("bob")) or [""])[0]
like(m, r"^Return-Path: <alice@example\.test>\nDelivered-To: bob@example\.test\n",
     "Return-Path and Delivered-To at the top")
like(m, r"\nSubject: to bob\n", "the message itself follows")
like(m, r"\nReceived: ", "with the Received: header of the submission")
ok(wait_for(lambda: d.queue_files() == []), "the queue is empty after delivery", d.queue_files())
ok(all(os.path.isdir(os.path.join(box("bob"), s)) for s in ("tmp", "new", "cur")),
   "tmp/, new/ and cur/ created")
st = os.stat(box("bob"))
is_(oct(st.st_mode & 0o777), "0o700", "Maildir created with mode 0700")
is_(pwd.getpwuid(st.st_uid).pw_name, d.user, "mailbox owned by the queue role's user")
ok(d.wait_log(r"[0-9A-F]{16}: to=<bob@example\.test> relay=maildir delay=\d+ status=sent"),
     "one log line per delivery attempt")

send_mail(d, ["team@example.test"], "to the team")
ok(wait_for(lambda: len(maildir_msgs(box("alice"))) == 1 and len(maildir_msgs(box("bob"))) == 2),
   "alias expands to two users", d.read_log()[-3000:])
like(maildir_msgs(box("alice"))[0], r"Delivered-To: alice@example\.test\n", "Delivered-To is the final address")

# alice named directly and through the alias: one copy for each mailbox
send_mail(d, ["team@example.test", "alice@example.test", "Alice@Example.test"], "team and alice")
ok(wait_for(lambda: len(maildir_msgs(box("bob"))) == 3 and d.queue_files() == []),
   "the alias and a direct recipient: delivered", d.read_log()[-3000:])
time.sleep(0.3)
is_(len(maildir_msgs(box("alice"))), 2, "alice got one copy, not two or three")

# one copy also across retries: hank directly and through an alias whose
# other member (far away, no relayhost) is deferred
send_mail(d, ["hank@example.test", "staff@example.test"], "hank twice")
ok(d.wait_log(r"to=<someone@far\.test> orig_to=<staff@example\.test> .*status=deferred"),
   "the alias's foreign member is deferred", d.read_log()[-2000:])
ok(wait_for(lambda: len(maildir_msgs(box("hank"))) == 1), "hank has his copy")
for i in range(2):
    d.ctl("queue", "flush")
    time.sleep(1.5)
is_(len(maildir_msgs(box("hank"))), 1, "still one copy after two retries of the alias")
r = d.ctl("queue", "list")
like(r.stdout, r"staff@example\.test\s+\(deferred", "the alias stays listed as deferred", r.stdout)
for q in d.queue_files():
    d.ctl("queue", "delete", q)
# the same mailbox named in two cases, with a deferred recipient beside it
send_mail(d, ["hank@example.test", "Hank@example.test", "other@far.test"], "hank cases")
ok(d.wait_log(r"to=<other@far\.test> .*status=deferred"), "the foreign one is deferred")
for i in range(2):
    d.ctl("queue", "flush")
    time.sleep(1.5)
is_(len([m for m in maildir_msgs(box("hank")) if "Subject: hank cases" in m]), 1,
    "hank@ and Hank@: one copy, also after retries")
for q in d.queue_files():
    d.ctl("queue", "delete", q)

# an alias whose target is no user (a typo in the aliases file): bounced
# 5.1.1, no Maildir made for it
send_mail(d, ["typo@example.test"], "typo")
ok(d.wait_log(r"to=<gnia@example\.test> orig_to=<typo@example\.test> .*status=bounced \(5\.1\.1 unknown user"),
   "alias to a user that does not exist: bounced 5.1.1", d.read_log()[-2000:])
ok(not os.path.exists(box("gnia")), "no Maildir for the typo")

# an alias loop bounces at once (5.4.6, as Postfix), not deferred for days
send_mail(d, ["loopa@example.test"], "loop")
ok(d.wait_log(r"to=<loopa@example\.test> .*status=bounced \(5\.4\.6 mail forwarding loop"),
   "alias loop: bounced 5.4.6", d.read_log()[-2000:])

send_mail(d, ["carol+lists@example.test"], "tagged")
ok(wait_for(lambda: len(maildir_msgs(box("carol"))) == 1), "user+tag goes to user's Maildir",
   d.read_log()[-3000:])
like((maildir_msgs(box("carol")) or [""])[0], r"Delivered-To: carol\+lists@example\.test",
     "Delivered-To keeps the tag")
ok(wait_for(lambda: d.queue_files() == []), "queue empty again")
like(d.ctl("queue", "list").stdout, r"Mail queue is empty", "queue list: empty")

# from outside on port 25: <Postmaster> (no domain) is this host's postmaster,
# a quoted local part names the same mailbox as the bare one, and a
# recipient given three times (quoted, in another case) gets one copy
s = d.smtp("relay", source="127.0.0.9")
s.cmd("EHLO outside.example")
s.cmd("MAIL FROM:<someone@example.org>")
rs = [s.cmd("RCPT TO:<Postmaster>"), s.cmd('RCPT TO:<"erin"@example.test>'),
      s.cmd("RCPT TO:<erin@example.test>"), s.cmd("RCPT TO:<erin@EXAMPLE.test>")]
ok(all(r.startswith("250") for r in rs), "RCPTs <Postmaster>, quoted, duplicates: 250", rs)
like(s.cmd("DATA"), r"^354", "DATA")
like(s.cmd("Subject: to the postmaster\r\n\r\nhello\r\n."), r"^250 2\.0\.0", "queued")
s.cmd("QUIT")
ok(wait_for(lambda: len(maildir_msgs(box("frank"))) == 1 and d.queue_files() == []),
   "<Postmaster> delivered through the postmaster alias, locally", d.read_log()[-3000:])
ok(len(maildir_msgs(box("erin"))) == 1, "the quoted and the repeated recipient: one copy, delivered",
   d.read_log()[-3000:])
ok(not re.search(r"to=<\"?erin\"?@example\.test> .*status=bounced|to=<Postmaster>", d.read_log()),
   "no bounce for them, no domain-less address queued")

# a UTF-8 local part (SMTPUTF8) of a user that exists: delivered to its Maildir
s = smtplib.SMTP("127.0.0.1", d.ports["relay"], timeout=20)
s.ehlo("outside.example")
s.sendmail("sénder@example.org", ["jörg@example.test"], message("utf8 local").encode(),
           mail_options=["SMTPUTF8", "BODY=8BITMIME"])
s.quit()
ok(wait_for(lambda: len(maildir_msgs(box("jörg"))) == 1 and d.queue_files() == []),
   "SMTPUTF8 mail to jörg@example.test lands in example.test/jörg/Maildir", d.read_log()[-2000:])

# a foreign recipient: not delivered, not pretended, stays queued
send_mail(d, ["someone@example.org", "dora@example.test"], "half foreign")
ok(wait_for(lambda: len(maildir_msgs(box("dora"))) == 1), "local half delivered")
ok(d.wait_log(r"to=<someone@example\.org> relay=none .*status=deferred \(4\.4\.0 no relayhost and MX lookup is off"),
   "foreign recipient deferred with a log line")
q = d.queue_files()
is_(len(q), 1, "the message stays in the queue for the foreign recipient")
r = d.ctl("queue", "list")
like(r.stdout, r"someone@example\.org\s+\(deferred to <someone@example\.org>: 4\.4\.0 no relayhost and MX lookup is off",
     "queue list shows the last error per recipient")
like(r.stdout, r"dora@example\.test\s+\(sent", "and the delivered one as sent")
if q:
    lines = [l for l in r.stdout.splitlines() if q[0] in l]
    ok(len(lines) == 1 and "<alice@example.test>" in lines[0] and
       "someone@example.org" in lines[0] and "dora@example.test" in lines[0],
       "queue list: one line per message with id, sender and recipients (spec)", r.stdout)
    like(r.stdout, r"-- \d+ Kbytes in 1 Request\.", "and a total at the end")
    r = d.ctl("queue", "show", q[0])
    like(r.stdout, r"rcpt: <someone@example\.org> \(deferred", "queue show: per-recipient status")
    like(r.stdout, r"status: .* sent <dora@example\.test>", "queue show: status history")
    r = d.ctl("queue", "flush")
    is_(r.returncode, 0, "queue flush exits 0", r.stderr)
    like(r.stdout, r"1 deferred message scheduled now", "flush reports the deferred message")
    r = d.ctl("queue", "delete", q[0])
    is_(r.returncode, 0, "queue delete exits 0")
    ok(not os.path.exists(os.path.join(d.state_dir, "status", q[0])), "queue delete removes the status file")
    ok(d.wait_log(r"%s: removed \(msagatectl queue delete\)" % q[0], 3),
       "the queue role logs the removal at once, not at the next retry")
    r = d.ctl("queue", "flush")
    like(r.stdout, r"\b0 deferred messages scheduled now", "a flush after the delete does not count it", r.stdout)
    is_(len(re.findall(r"%s: removed \(msagatectl queue delete\)" % q[0], d.read_log())), 1,
        "and once only")

# kill -9 of every process while messages are being submitted and delivered
import threading
acked, lock = [], threading.Lock()


def crash_sender(k):
    try:
        s = submission_login(d, ehlo="x")
        for i in range(25):
            sub = "crash %d-%d" % (k, i)
            s.sendmail("alice@example.test", ["erin@example.test", "frank@example.test"],
                       message(sub).encode())
            with lock:
                acked.append(sub)
    except Exception:
        pass


ts = [threading.Thread(target=crash_sender, args=(k,)) for k in range(4)]
[t.start() for t in ts]
wait_for(lambda: len(acked) >= 30, 30)
d.kill9_all()
[t.join() for t in ts]
subjects = list(acked)
ok(len(subjects) >= 30, "%d messages acknowledged before kill -9" % len(subjects))
d.start()
ok(wait_for(lambda: d.queue_files() == [], 30), "after kill -9 and restart the queue drains",
   d.queue_files())
m = re.findall(r"queue: (\d+) messages? in the queue", d.read_log())
diag("messages in the queue at the restart: %s" % (m[-1] if m else "?"))
for u in ("erin", "frank"):
    got = "\n".join(maildir_msgs(box(u)))
    missing = [x for x in subjects if ("Subject: %s\n" % x) not in got]
    is_(missing, [], "every acknowledged message reached %s at least once" % u)
ok(os.listdir(os.path.join(d.state_dir, "status")) == [], "no status file left")
d.stop()


# ------------------------------------------------------------ Dovecot LMTP
class Lmtp(PrivateDovecot):
    """A private Dovecot with only the lmtp service on a unix socket."""

    def __init__(self, users, run_user):
        PrivateDovecot.__init__(self, "msagate-lmtp-")
        self.socket = os.path.join(self.dir, "run", "lmtp")
        self.mail = os.path.join(self.dir, "mail")
        os.mkdir(self.mail, 0o755)
        pw = pwd.getpwnam(run_user)
        chown_run_user(self.mail, run_user)
        ufile = os.path.join(self.dir, "users")
        with open(ufile, "w") as f:
            for u in users:
                f.write("%s::%d:%d::%s/home/%s::\n" % (u, pw.pw_uid, pw.pw_gid, self.dir, u))
        os.chmod(ufile, 0o644)
        if os.geteuid() == 0:
            internal, login = "dovecot", "dovenull"
        else:
            internal = login = run_user
        with open(self.conf, "w") as f:
            f.write("""
base_dir = %(dir)s/run
state_dir = %(dir)s/state
log_path = %(dir)s/dovecot.log
instance_name = msagate-lmtp-%(tag)s
protocols = lmtp
ssl = no
first_valid_uid = 1
default_internal_user = %(internal)s
default_login_user = %(login)s
mail_location = maildir:%(mail)s/%%u
passdb {
  driver = passwd-file
  args = %(users)s
}
userdb {
  driver = passwd-file
  args = %(users)s
}
service lmtp {
  unix_listener lmtp {
    mode = 0666
  }
}
""" % dict(dir=self.dir, tag=os.path.basename(self.dir), internal=internal,
           login=login, mail=self.mail, users=ufile))

    def start(self):
        self.spawn()
        return wait_for(lambda: os.path.exists(self.socket), 15)

    def msgs(self, user):
        return maildir_msgs(os.path.join(self.mail, user))


if not have("dovecot") or not os.path.exists("/usr/lib/dovecot/lmtp"):
    ok(True, "# SKIP dovecot lmtp (dovecot-lmtpd) not installed")
    done()
if os.geteuid() == 0 and not (user_exists("dovecot") and user_exists("dovenull")):
    ok(True, "# SKIP dovecot/dovenull users missing")
    done()

d2 = Daemon(start=False, users=USERS)
lm = Lmtp(["alice@example.test", "gina@example.test"], d2.user)
d2.relay_extra = 'delivery = { method = "lmtp"; socket = "unix:%s"; };' % lm.socket
d2.write_conf()
d2.start()

# LMTP down: deferred, stays queued, listed with the error
send_mail(d2, ["gina@example.test"], "lmtp later")
ok(d2.wait_log(r"to=<gina@example\.test> relay=lmtp:unix:\S+ delay=\d+ status=deferred \(4\.4\.1 connect to", 10),
   "LMTP socket missing: deferred", d2.read_log()[-2000:])
is_(len(d2.queue_files()), 1, "message stays in the queue")
like(d2.ctl("queue", "list").stdout, r"gina@example\.test\s+\(deferred .*connect to",
     "queue list shows the connection error")

ok(lm.start(), "private Dovecot LMTP started", lm.log())
r = d2.ctl("queue", "flush")
is_(r.returncode, 0, "queue flush exits 0", r.stderr)
ok(wait_for(lambda: len(lm.msgs("gina@example.test")) == 1), "after flush the message reaches Dovecot",
   d2.read_log()[-2000:] + lm.log()[-2000:])
m = (lm.msgs("gina@example.test") or [""])[0]
like(m, r"Subject: lmtp later", "Dovecot stored the message")
like(m, r"(?m)^Return-Path: <alice@example\.test>", "Return-Path present")
like(m, r"(?m)^Delivered-To: gina@example\.test", "Delivered-To present")
ok(wait_for(lambda: d2.queue_files() == []), "queue empty after LMTP delivery")
ok(d2.wait_log(r"to=<gina@example\.test> relay=lmtp:unix:\S+ delay=\d+ status=sent \(2\.0\.0 "),
     "log line status=sent for LMTP")

# dot-stuffing and several recipients in one transaction
s = submission_login(d2, ehlo="x")
s.sendmail("alice@example.test", ["gina@example.test", "alice@example.test"],
           message("dots", body="..leading dots\r\n.\r\nend\r\n").encode())
s.quit()
ok(wait_for(lambda: len(lm.msgs("gina@example.test")) == 2 and len(lm.msgs("alice@example.test")) == 1),
   "two recipients over one LMTP session", d2.read_log()[-2000:])
got = [x for x in lm.msgs("gina@example.test") if "Subject: dots" in x]
like(got[0] if got else "", r"\n\.\.leading dots\r?\n\.\r?\nend", "dot-stuffing round trip")

# the LMTP connection is kept for the next messages (as Postfix caches it)
conns = lambda: len(re.findall(r"Connect from local", lm.log()))
before = conns()
for i in range(4):
    send_mail(d2, ["gina@example.test"], "kept %d" % i)
    ok(wait_for(lambda: d2.queue_files() == []), "kept-connection message %d delivered" % i)
ok(len([x for x in lm.msgs("gina@example.test") if "Subject: kept" in x]) == 4,
   "four messages in gina's mailbox")
ok(conns() - before <= 1, "over one LMTP connection (%d new)" % (conns() - before), lm.log()[-1500:])

# LMTP 550 for a user Dovecot does not know (msagate's passwd file has it,
# so the relay policy accepts it): a bounce to the (local) sender
send_mail(d2, ["nosuchuser@example.test"], "will bounce")
ok(d2.wait_log(r"to=<nosuchuser@example\.test> relay=lmtp:\S+ delay=\d+ status=bounced \(5\.1\.1 ", 15),
   "LMTP 550: bounced", d2.read_log()[-2000:])
ok(wait_for(lambda: any("multipart/report" in x for x in lm.msgs("alice@example.test"))),
   "the bounce arrives in the sender's mailbox", d2.read_log()[-2000:])
b = [x for x in lm.msgs("alice@example.test") if "multipart/report" in x]
b = b[0] if b else ""
like(b, r"(?m)^Return-Path: <>", "the bounce has the null sender")
like(b, r"report-type=delivery-status", "report-type=delivery-status")
like(b, r"Final-Recipient: rfc822; nosuchuser@example\.test\r?\nAction: failed\r?\nStatus: 5\.1\.1",
     "machine-readable part names the recipient and status")
like(b, r"Subject: will bounce", "original headers included")
ok(wait_for(lambda: d2.queue_files() == []), "queue empty after the bounce")
d2.stop()
lm.stop()
done()
