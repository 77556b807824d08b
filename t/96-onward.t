#!/usr/bin/env python3
# 96-onward.t - onward relay of foreign recipients to relay.relayhost (the
# "smtp" delivery method): Postfix's smtp-sink plays the smarthost on
# loopback.  Mail submitted on 587 to a foreign recipient arrives at the
# sink and leaves the queue; a smarthost that is down defers and `queue
# flush` delivers once it is up; a 5xx to RCPT bounces into the local
# sender's Maildir; relayhost_tls = "required" against a sink without
# STARTTLS defers with a clear error; a peer that sends more after its 220
# to STARTTLS (response injection) gets no TLS session and no MAIL; a
# second msagated as the smarthost receives the message over STARTTLS +
# AUTH (credentials file; a group-readable one is refused), and SMTPUTF8
# with it; a non-ASCII address to a next hop without SMTPUTF8 bounces;
# deferred mail is retried by the timer also after a `queue flush`;
# kill -9 during onward delivery, then a restart: delivered at least once.
# By MX (relay.mx_lookup, with dnsmasq as the name server on loopback;
# root only, the MX listens on port 25): preference order with fallback
# past a dead MX, A record without MX, null MX and NXDOMAIN bounce, a
# failing DNS defers.
import os, pwd, re, shutil, signal, smtplib, socket, subprocess, sys, threading, time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from msagatetest import *

from smtpsink import SINK, Sink
if not os.access(SINK, os.X_OK):
    skip_all("no %s (postfix package)" % SINK)


import socket, atexit
sink_port = free_port()
d = Daemon(start=False)
mail = os.path.join(d.dir, "mail")
os.mkdir(mail, 0o700)
chown_run_user(mail, d.user)
maildir = 'delivery = { method = "maildir"; path = "%s/%%d/%%n/Maildir"; };' % mail
box = lambda u: os.path.join(mail, "example.test", u, "Maildir")
sink = Sink(d, sink_port)
atexit.register(sink.stop)


def reconfigure(extra):
    d.stop()
    d.relay_extra = maildir + "\n  " + extra
    d.write_conf()
    d.start()


# ------------------------------------------------------------ to the sink
sink.start()
reconfigure('relayhost = "[127.0.0.1]:%d";' % sink_port)
ok(d.wait_log(r"other domains by smtp:\[127\.0\.0\.1\]:%d" % sink_port),
   "the queue manager announces the relayhost", d.read_log()[-2000:])
send_mail(d, ["someone@remote.test"], "onward one")
ok(wait_for(lambda: len(sink.messages()) == 1 and "\n.\r\n" not in sink.messages()[0]
            and "Subject: onward one" in sink.messages()[0]),
   "the message arrives at the smarthost", d.read_log()[-2000:])
m = (sink.messages() or [""])[0]
like(m, r"Subject: onward one", "with its content")
ok("Return-Path:" not in m, "no Return-Path: added for onward relay")
ok(wait_for(lambda: d.queue_files() == []), "the queue is empty after onward delivery",
   d.queue_files())
ok(d.wait_log(r"to=<someone@remote\.test> relay=smtp:\[127\.0\.0\.1\]:%d delay=\d+ status=sent \(2\.0\.0 "
     % sink_port), "log line with relay=smtp:[host]:port")

# mixed: local + foreign in one message
send_mail(d, ["bob@example.test", "other@remote.test"], "mixed")
ok(wait_for(lambda: len(sink.messages()) == 2 and len(maildir_msgs(box("bob"))) == 1),
   "mixed message: local part to Maildir, foreign part to the smarthost", d.read_log()[-2000:])
ok(wait_for(lambda: d.queue_files() == []), "queue empty again")

# ------------------------------------------------------------ down, then up
sink.stop()
sink.clear()
send_mail(d, ["later@remote.test"], "down then up")
ok(d.wait_log(r"to=<later@remote\.test> relay=smtp:\S+ delay=\d+ status=deferred \(4\.4\.1 connect to smtp:\[127\.0\.0\.1\]:%d: Connection refused"
              % sink_port, 10), "smarthost down: deferred with the reason", d.read_log()[-2000:])
is_(len(d.queue_files()), 1, "the message stays queued")
like(d.ctl("queue", "list").stdout, r"later@remote\.test\s+\(deferred", "queue list shows it deferred")
sink.start()
r = d.ctl("queue", "flush")
is_(r.returncode, 0, "queue flush", r.stderr)
ok(wait_for(lambda: len(sink.messages()) == 1), "after the flush the message arrives",
   d.read_log()[-2000:])
ok(wait_for(lambda: d.queue_files() == []), "and leaves the queue")

# ------------------------------------------------------------ 5xx -> bounce
sink.stop()
sink.clear()
sink.opts = ["-f", "RCPT"]
sink.start()
send_mail(d, ["refused@remote.test"], "will bounce")
ok(d.wait_log(r"to=<refused@remote\.test> relay=smtp:\S+ delay=\d+ status=bounced \(5\.", 15),
   "RCPT 5xx: bounced", d.read_log()[-2000:])
ok(wait_for(lambda: len(maildir_msgs(box("alice"))) == 1),
   "the bounce arrives in the sender's Maildir", d.read_log()[-2000:])
b = (maildir_msgs(box("alice")) or [""])[0]
like(b, r"multipart/report", "a multipart/report DSN")
like(b, r"refused@remote\.test", "naming the recipient")
like(b, r"in reply to RCPT TO", "with the remote reply")
ok(wait_for(lambda: d.queue_files() == []), "queue empty after the bounce")
sink.stop()
sink.opts = []
sink.clear()
sink.start()

# ------------------------------------------------------------ TLS required
reconfigure('relayhost = "[127.0.0.1]:%d";\n  relayhost_tls = "required";' % sink_port)
send_mail(d, ["tls@remote.test"], "tls required")
ok(d.wait_log(r"to=<tls@remote\.test> relay=smtp:\S+ delay=\d+ status=deferred \(4\.7\.4 TLS is required, but smtp:\[127\.0\.0\.1\]:%d did not offer STARTTLS\)"
              % sink_port, 10), "STARTTLS required but not offered: deferred", d.read_log()[-2000:])
is_(sink.messages(), [], "nothing sent in clear text")
is_(len(d.queue_files()), 1, "message stays queued")
for q in d.queue_files():
    d.ctl("queue", "delete", q)

# ------------------------------------------------ STARTTLS response injection
# A smarthost (or a man in the middle) that sends more after its 220 to
# STARTTLS: those bytes came in the clear, so no TLS session is started
# on top of them and the message waits.


def injecting_smarthost(lsock, seen):
    try:
        c, _ = lsock.accept()
    except OSError:
        return
    with c:
        c.settimeout(10)
        f = c.makefile("rb")
        c.sendall(b"220 fake ESMTP\r\n")
        for line in f:
            cmd = line.strip().upper()
            seen.append(cmd)
            if cmd.startswith(b"EHLO"):
                c.sendall(b"250-fake\r\n250 STARTTLS\r\n")
            elif cmd == b"STARTTLS":
                c.sendall(b"220 go ahead\r\n250-injected\r\n250 AUTH PLAIN\r\n")
            elif cmd == b"QUIT":
                c.sendall(b"221 bye\r\n")
                return
            else:
                c.sendall(b"250 ok\r\n")


inj = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
inj.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
inj.bind(("127.0.0.1", 0))
inj.listen(4)
inj_seen = []
threading.Thread(target=injecting_smarthost, args=(inj, inj_seen), daemon=True).start()
reconfigure('relayhost = "[127.0.0.1]:%d";' % inj.getsockname()[1])
send_mail(d, ["inject@remote.test"], "starttls injection")
ok(d.wait_log(r"to=<inject@remote\.test> relay=smtp:\S+ delay=\d+ status=deferred \(4\.7\.5 .*sent data after its 220 to STARTTLS", 15),
   "plaintext after the 220 to STARTTLS: deferred 4.7.5", d.read_log()[-2000:])
ok(b"STARTTLS" in inj_seen and not any(c.startswith(b"MAIL") for c in inj_seen),
   "no MAIL FROM was sent to that peer", inj_seen)
inj.close()
for q in d.queue_files():
    d.ctl("queue", "delete", q)

# ------------------------------------------------------------ our own smarthost
hub = Daemon()                # same users: alice@example.test may relay there
cred = os.path.join(d.dir, "relay-credentials")
with open(cred, "w") as f:
    f.write("alice@example.test:%s\n" % hub.users["alice@example.test"])
chown_run_user(cred, d.user)
os.chmod(cred, 0o640)
reconfigure('relayhost = "[127.0.0.1]:%d";\n  relayhost_tls = "required";\n'
            '  relayhost_credentials = "%s";' % (hub.ports["submission"], cred))
send_mail(d, ["far@remote.test"], "refused credentials")
ok(d.wait_log(r"relay credentials \S+ refused: group or others may read it", 10),
   "group-readable credentials file refused and logged", d.read_log()[-2000:])
ok(d.wait_log(r"to=<far@remote\.test> relay=smtp:\S+ delay=\d+ status=deferred \(4\.7\.0 relay credentials", 10),
   "and the recipient deferred")
ok(hub.queue_files() == [], "nothing reached the smarthost")
ok(d.users["alice@example.test"] not in d.read_log(), "the password is not logged")
os.chmod(cred, 0o600)
r = d.ctl("queue", "flush")
ok(wait_for(lambda: len(hub.queue_files()) == 1), "with a 0600 file: STARTTLS + AUTH to the "
   "second msagated, the message is in its queue", d.read_log()[-2000:] + hub.read_log()[-2000:])
ok(wait_for(lambda: d.queue_files() == []), "and gone from the first queue")
if hub.queue_files():
    qf = hub.queue_file(hub.queue_files()[0]).decode("utf-8", "replace")
    like(qf, r"far@remote\.test", "the smarthost has the recipient")
    like(qf, r"alice@example\.test", "and the authenticated user")
    like(qf, r"TLS", "received over TLS")
    like(qf, r"Subject: refused credentials", "and the message")
like(hub.read_log(), r"auth.*alice@example\.test|alice@example\.test.*auth", "the smarthost logged the login")
ok(d.users["alice@example.test"] not in d.read_log(), "the password is never logged")


def send_utf8(rcpt, subject):
    """Submit as alice with MAIL ... SMTPUTF8 (RFC 6531)."""
    s = submission_login(d)
    s.sendmail("alice@example.test", [rcpt], message(subject).encode(), mail_options=["SMTPUTF8"])
    s.quit()


# SMTPUTF8 is carried to a next hop that offers it (the second msagated)
for q in hub.queue_files():
    hub.ctl("queue", "delete", q)
send_utf8("δοκιμή@remote.test", "utf8 onward")
ok(wait_for(lambda: len(hub.queue_files()) == 1), "SMTPUTF8 message relayed to the smarthost",
   d.read_log()[-2000:] + hub.read_log()[-2000:])
if hub.queue_files():
    qf = hub.queue_file(hub.queue_files()[0]).decode("utf-8", "replace")
    like(qf, r"(?m)^rcpt=δοκιμή@remote\.test$", "with its UTF-8 recipient")
    like(qf, r"(?m)^smtputf8=yes$", "sent with MAIL ... SMTPUTF8 (the smarthost recorded it)")

# tls_verify against the self-signed hub, asked for an IP address: deferred
reconfigure('relayhost = "[127.0.0.1]:%d";\n  relayhost_tls = "required";\n'
            '  tls_verify = true;\n  tls_ca_file = "%s";\n  relayhost_credentials = "%s";'
            % (hub.ports["submission"], hub.cert, cred))
send_mail(d, ["verify@remote.test"], "verify")
ok(d.wait_log(r"to=<verify@remote\.test> relay=smtp:\S+ delay=\d+ status=deferred \(4\.7\.5 TLS handshake with \S+ failed: certificate verification", 10),
   "tls_verify: certificate not valid for 127.0.0.1: deferred", d.read_log()[-2000:])
for q in d.queue_files():
    d.ctl("queue", "delete", q)
hub.stop()

# ------------------------------------------------------------ SMTPUTF8, no support
# smtp-sink offers no SMTPUTF8: a non-ASCII envelope address bounces (RFC
# 6531 3.4), an all-ASCII SMTPUTF8 message is delivered
sink.clear()
reconfigure('relayhost = "[127.0.0.1]:%d";' % sink_port)
send_utf8("δοκιμή@remote.test", "utf8 no support")
ok(d.wait_log(r"to=<\S+@remote\.test> relay=smtp:\S+ delay=\d+ status=bounced \(5\.6\.7 \S+ does not support SMTPUTF8", 15),
   "non-ASCII recipient, next hop without SMTPUTF8: bounced 5.6.7", d.read_log()[-2000:])
send_utf8("ascii@remote.test", "utf8 ascii envelope")
ok(wait_for(lambda: any("Subject: utf8 ascii envelope" in m for m in sink.messages()), 15),
   "SMTPUTF8 message with an ASCII envelope: delivered anyway", d.read_log()[-2000:])
ok(not any("utf8 no support" in m for m in sink.messages()), "the bounced one never reached it")
ok(wait_for(lambda: d.queue_files() == [], 15), "queue empty")
sink.stop()

# ------------------------------------------------------------ the smarthost hangs up
sink.stop()
sink.opts = ["-q", "DATA"]        # disconnects, without a reply, at DATA
sink.start()
reconfigure('relayhost = "[127.0.0.1]:%d";' % sink_port)
send_mail(d, ["hangup@remote.test"], "hang up")
ok(d.wait_log(r"to=<hangup@remote\.test> .*status=deferred \(4\.4\.2 lost connection with "
              r"smtp:\[127\.0\.0\.1\]:\d+ during DATA: the server closed the connection\)", 10),
   "a smarthost that closes the connection: deferred 4.4.2, said as it is", d.read_log()[-1500:])

# ------------------------------------------------------------ retries after a flush
# a flush while a message waits for its retry must leave the retry timer
# working: later deferrals are retried on their own
sink.stop()
sink.clear()
sink.opts = ["-r", "RCPT"]        # 4xx to every RCPT
sink.start()
reconfigure('relayhost = "[127.0.0.1]:%d";\n  retry_min = 1;\n  retry_max = 2;' % sink_port)
send_mail(d, ["later@remote.test"], "retried after a flush")
ok(d.wait_log(r"to=<later@remote\.test> .*status=deferred", 10), "4xx from the smarthost: deferred")
mark = len(d.read_log())
d.ctl("queue", "flush")
ok(wait_for(lambda: re.search(r"to=<later@remote\.test> .*status=deferred", d.read_log()[mark:]), 10),
   "flushed while waiting: tried again, deferred again")
sink.stop()
sink.opts = []
sink.start()
ok(wait_for(lambda: any("retried after a flush" in m for m in sink.messages()), 15),
   "then the retry timer delivers it on its own (retry_max 2 s)", d.read_log()[-1500:])
ok(wait_for(lambda: d.queue_files() == [], 10), "queue empty")
sink.stop()

# ------------------------------------------------------------ kill -9 in flight
sink.stop()
sink.clear()
sink.opts = ["-w", "4"]          # 4 s before answering DATA
sink.start()
reconfigure('relayhost = "[127.0.0.1]:%d";' % sink_port)
send_mail(d, ["crash@remote.test"], "crash test")
time.sleep(2)
d.kill9_all()
sink.stop()
sink.opts = []
sink.start()
d.start()
ok(wait_for(lambda: any("Subject: crash test" in m for m in sink.messages()), 30),
   "after kill -9 and restart the message is delivered (at least once)", d.read_log()[-2000:])
ok(wait_for(lambda: d.queue_files() == [], 15), "queue empty after the restart")
sink.stop()

# ------------------------------------------------------------ by MX
DNSMASQ = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
if os.geteuid() != 0 or not os.access(DNSMASQ, os.X_OK):
    diag("MX tests skipped: need root (port 25) and dnsmasq (dnsmasq-base)")
else:
    dns_port = free_port()
    dns = subprocess.Popen([DNSMASQ, "--no-daemon", "--no-resolv", "--no-hosts",
                            "-p", str(dns_port), "--listen-address=127.0.0.1",
                            "--bind-interfaces", "--local=/test/", "--user=root",
                            "--mx-host=remote.test,mx.remote.test,10",
                            "--mx-host=remote.test,dead.remote.test,5",
                            "--host-record=mx.remote.test,127.0.0.96",
                            "--host-record=dead.remote.test,127.0.0.95",
                            "--host-record=nomx.test,127.0.0.96",
                            "--mx-host=nullmx.test,.,0"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    atexit.register(lambda: (dns.kill(), dns.wait()))
    mxsink = Sink(d, 25, addr="127.0.0.96", name="mxsink")
    atexit.register(mxsink.stop)
    mxsink.start()
    for n in os.listdir(box("alice") + "/new"):
        os.unlink(os.path.join(box("alice"), "new", n))
    reconfigure('mx_lookup = true;\n  dns_servers = [ "127.0.0.1:%d" ];' % dns_port)
    ok(d.wait_log(r"other domains by smtp, "), "no relayhost: delivery by MX announced")
    send_mail(d, ["mx1@remote.test", "mx2@nomx.test", "bob@example.test"], "by mx")
    ok(wait_for(lambda: len(mxsink.messages()) == 2), "by MX: both domains reach the MX on "
       "127.0.0.96:25", d.read_log()[-2000:])
    # the sink has the message before msagate has read its 250 and logged it: wait for the log
    ok(d.wait_log(r"to=<mx1@remote\.test> relay=smtp delay=\d+ status=sent \(2\.0\.0 250 .*smtp:mx\.remote\.test\[127\.0\.0\.96\]:25"),
       "remote.test: the dead preference-5 MX skipped, delivered to mx.remote.test", d.read_log()[-2000:])
    ok(d.wait_log(r"to=<mx2@nomx\.test> relay=smtp delay=\d+ status=sent .*smtp:nomx\.test\[127\.0\.0\.96\]:25"),
       "nomx.test: no MX, delivered to its A record", d.read_log()[-2000:])
    ok(wait_for(lambda: d.queue_files() == []), "queue empty after MX delivery")
    send_mail(d, ["x@nullmx.test", "y@nosuch.test"], "mx bounces")
    ok(d.wait_log(r"to=<x@nullmx\.test> relay=smtp delay=\d+ status=bounced \(5\.1\.10 Domain nullmx\.test does not accept mail \(null MX\)", 15),
       "null MX: bounced", d.read_log()[-2000:])
    ok(d.wait_log(r"to=<y@nosuch\.test> relay=smtp delay=\d+ status=bounced \(5\.1\.2 Host or domain name not found", 15),
       "NXDOMAIN: bounced")
    ok(wait_for(lambda: len(maildir_msgs(box("alice"))) == 1), "one bounce for both in the sender's Maildir")
    send_mail(d, ["z@fail.example"], "dns fails")
    ok(d.wait_log(r"to=<z@fail\.example> relay=smtp delay=\d+ status=deferred \(4\.4\.3 DNS lookup of fail\.example \(MX\) failed", 20),
       "DNS failure (REFUSED/SERVFAIL): deferred", d.read_log()[-2000:])
    mxsink.stop()

d.stop()
done()
