#!/usr/bin/env python3
# 30-smuggling.t - SMTP smuggling (bare LF / bare CR end-of-data variants,
# the CVE-2023-51764 class) and NUL octets queue nothing and never execute
# the smuggled commands; STARTTLS command injection (the CVE-2011-0411
# class) is thrown away; oversize messages get 552 5.3.4 and queue nothing;
# a message with 100 Received: fields (a mail loop) gets 554 5.4.6 and
# queues nothing.
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from msagatetest import *

d = Daemon()
alice, apw = "alice@example.test", d.users["alice@example.test"]


def authed(port="submission"):
    s = d.smtp(port)
    r = s.login(alice, apw)
    assert r.startswith("235"), r
    return s


def try_smuggle(name, payload):
    """Send one DATA whose body holds a smuggling attempt; expect no queue file
    for the smuggled part and no 250 for it."""
    before = set(d.queue_files())
    s = authed()
    s.cmd("MAIL FROM:<%s>" % alice)
    s.cmd("RCPT TO:<victim@example.org>")
    r = s.cmd("DATA")
    if not r.startswith("354"):
        ok(False, "%s: DATA accepted" % name, r)
        return
    s.send(payload)
    replies = []
    try:
        while True:
            replies.append(s.reply())
            if replies[-1][0] in "45" or len(replies) >= 6:
                break
            if replies[-1].startswith("250 2.0.0"):
                break
    except (EOFError, OSError):
        replies.append("EOF")
    new = set(d.queue_files()) - before
    ok(not any(r.startswith("250 2.0.0") for r in replies),
       "%s: never acknowledged as queued" % name, replies)
    ok(any(r[0] == "5" or r == "EOF" for r in replies),
       "%s: a 5xx reply or the connection closed" % name, replies)
    is_(len(new), 0, "%s: nothing queued" % name)
    s.close()


smuggled = ("MAIL FROM:<admin@example.test>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\n"
            "From: admin@example.test\r\nSubject: smuggled\r\n\r\nsmuggled\r\n")
try_smuggle("bare LF dot bare LF", "Subject: a\r\n\r\nfirst\n.\n" + smuggled + ".\r\n")
try_smuggle("bare LF dot CRLF", "Subject: a\r\n\r\nfirst\n.\r\n" + smuggled + ".\r\n")
try_smuggle("CRLF dot bare LF", "Subject: a\r\n\r\nfirst\r\n.\n" + smuggled + ".\r\n")
try_smuggle("bare CR dot bare CR", "Subject: a\r\n\r\nfirst\r.\r" + smuggled + ".\r\n")
try_smuggle("CR dot CRLF", "Subject: a\r\n\r\nfirst\r.\r\n" + smuggled + ".\r\n")
try_smuggle("bare LF in a header", "Subject: a\nX-Bad: b\r\n\r\nbody\r\n.\r\n")
try_smuggle("bare CR in the body", "Subject: a\r\n\r\nbo\rdy\r\n.\r\n")
# NUL: a next hop that drops it would read "\0." as the end of data
try_smuggle("NUL dot CRLF", "Subject: a\r\n\r\nfirst\r\n\x00.\r\n" + smuggled + ".\r\n")
try_smuggle("NUL in the body", "Subject: a\r\n\r\nbo\x00dy\r\n.\r\n")
ok(d.wait_log(r"reject: message from \[127\.0\.0\.1\] contains NUL characters"), "NUL: logged")

# a legitimate message right after still works on a new session
before = set(d.queue_files())
s = authed()
s.cmd("MAIL FROM:<%s>" % alice)
s.cmd("RCPT TO:<ok@example.org>")
s.cmd("DATA")
s.send("Subject: fine\r\n\r\n..leading dot\r\nlast line\r\n.\r\n")
r = s.reply()
like(r, r"^250 2\.0\.0 Ok: queued as", "clean message after the attempts is queued")
q = queued_id(r)
if q:
    body = d.queue_file(q)
    ok(b"\r\n.leading dot\r\n" in body, "dot-unstuffing: '..' stored as '.'")
    ok(b"smuggled" not in body, "no smuggled text in the clean message")
s.close()

# --- STARTTLS injection: commands pipelined after STARTTLS are discarded
s = d.smtp()
s.cmd("EHLO c.example")
s.send("STARTTLS\r\nRSET\r\nMAIL FROM:<injected@example.test>\r\n")
r = s.reply()
like(r, r"^220", "STARTTLS with injected commands: 220")
s.sock = client_ctx().wrap_socket(s.sock)
s.buf = b""
r = s.cmd("EHLO c.example")
like(r, r"^250-mail\.example\.test", "first reply after TLS answers our EHLO, not the injected RSET")
r = s.cmd("NOOP")
like(r, r"^250 ", "next reply belongs to NOOP (nothing injected in between)")
like(s.cmd("RCPT TO:<x@example.org>"), r"^(503|530)", "injected MAIL FROM did not open a transaction")
s.close()

# EHLO state is forgotten after STARTTLS: MAIL without a new EHLO
s = d.smtp()
s.cmd("EHLO c.example")
s.starttls()
like(s.auth_plain(alice, apw), r"^(503|235)", "AUTH right after STARTTLS without EHLO gets a clear reply")
s.close()

# --- oversize message: real size over message_size_limit (1 MiB in tests)
before = set(d.queue_files())
s = authed()
s.cmd("MAIL FROM:<%s>" % alice)
s.cmd("RCPT TO:<big@example.org>")
s.cmd("DATA")
line = ("x" * 998 + "\r\n").encode()
s.send(b"Subject: big\r\n\r\n" + line * 1200 + b".\r\n")
like(s.reply(), r"^552 5\.3\.4", "message over message_size_limit: 552 5.3.4")
like(s.cmd("NOOP"), r"^250", "session continues after the 552")
is_(len(set(d.queue_files()) - before), 0, "oversize message not queued")
is_(d.incoming_files(), [], "no half-written file left in incoming/")

# --- a mail loop: 100 Received: fields are refused (RFC 5321 6.3), 99 pass
for n, want in ((100, r"^554 5\.4\.6 "), (99, r"^250 2\.0\.0 Ok: queued")):
    before = set(d.queue_files())
    s.cmd("MAIL FROM:<%s>" % alice)
    s.cmd("RCPT TO:<loop@example.org>")
    like(s.cmd("DATA"), r"^354", "DATA (%d Received: fields)" % n)
    hops = "".join("Received: from hop%d.example.org by hop%d.example.org; "
                   "Mon, 23 Nov 2026 12:00:00 +0000\r\n" % (i, i + 1) for i in range(n))
    s.send((hops + "Subject: loop\r\n\r\nround and round\r\n.\r\n").encode())
    like(s.reply(), want, "%d Received: fields: %s" % (n, "refused as a loop" if n == 100 else "accepted"))
    is_(len(set(d.queue_files()) - before), 0 if n == 100 else 1,
        "%d Received: fields: %s" % (n, "nothing queued" if n == 100 else "queued"))
ok(d.wait_log(r"reject: message from \[127\.0\.0\.1\] has 100 Received: fields \(mail loop\?\)"),
   "the loop is logged")
s.close()
d.stop()
done()
