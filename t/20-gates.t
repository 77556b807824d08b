#!/usr/bin/env python3
# 20-gates.t - the session gates and limits of a submission listener: TLS
# before AUTH, AUTH before MAIL, 503s for commands out of order, reply codes
# for bad input, line/recipient/error limits, VRFY, pipelining, a client
# that half-closes its side after a pipeline (plain, and TLS with and
# without close_notify; a wait that never ends is cut by the idle timeout).
import os, re, signal, socket, ssl, sys, time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from msagatetest import *

d = Daemon(smtp_extra="max_recipients = 5; max_errors = 5;")
alice, apw = "alice@example.test", d.users["alice@example.test"]

s = d.smtp()
like(s.greeting, r"^220 mail\.example\.test ESMTP", "greeting names the hostname")
r = s.cmd("EHLO c.example")
like(r, r"^250-mail\.example\.test", "EHLO reply starts with the hostname")
ok("STARTTLS" in r and "AUTH" not in r, "before TLS: STARTTLS offered, AUTH not", r)
like(s.cmd("AUTH PLAIN " + plain_b64(alice, apw)), r"^530 5\.7\.0", "AUTH before STARTTLS: 530 5.7.0")
like(s.cmd("MAIL FROM:<%s>" % alice), r"^530 5\.7\.0", "MAIL before STARTTLS: 530 5.7.0")
like(s.cmd("VRFY alice"), r"^252 ", "VRFY answered 252")
like(s.cmd("NOOP"), r"^250 ", "NOOP 250")
like(s.cmd("HELP"), r"^214", "HELP 214")
like(s.cmd("FOOBAR"), r"^500 5\.5\.1", "unknown command 500 5.5.1")
like(s.starttls(), r"^220 ", "STARTTLS 220")
r = s.cmd("EHLO c.example")
ok("AUTH PLAIN" in r and "STARTTLS" not in r, "after TLS: AUTH offered, STARTTLS not", r)
like(s.cmd("STARTTLS"), r"^503 5\.5\.1", "second STARTTLS: 503 5.5.1")
like(s.cmd("MAIL FROM:<%s>" % alice), r"^530 5\.7\.0", "MAIL before AUTH: 530 5.7.0")
like(s.cmd("AUTH PLAIN !!!notbase64"), r"^501 5\.5\.2", "bad base64: 501 5.5.2")
like(s.cmd("AUTH CRAZY-MECH"), r"^504 5\.5\.4", "unknown mechanism: 504")
r = s.cmd("AUTH PLAIN")
like(r, r"^334", "AUTH PLAIN without initial response: 334")
like(s.cmd("*"), r"^501 5\.7\.0", "'*' cancels the exchange: 501")
r = s.cmd("AUTH LOGIN")
like(r, r"^334 VXNlcm5hbWU6", "AUTH LOGIN asks Username:")
r = s.cmd(base64.b64encode(alice.encode()).decode())
like(r, r"^334 UGFzc3dvcmQ6", "AUTH LOGIN asks Password:")
like(s.cmd(base64.b64encode(apw.encode()).decode()), r"^235 2\.7\.0", "AUTH LOGIN succeeds: 235 2.7.0")
like(s.cmd("AUTH PLAIN " + plain_b64(alice, apw)), r"^503 5\.5\.1", "AUTH after success: 503 5.5.1")
like(s.cmd("RCPT TO:<x@example.org>"), r"^503 5\.5\.1", "RCPT before MAIL: 503")
like(s.cmd("DATA"), r"^503 5\.5\.1", "DATA before MAIL: 503")
like(s.cmd("MAIL FROM:<%s> SIZE=100" % alice), r"^250 2\.1\.0", "MAIL FROM with SIZE: 250")
like(s.cmd("MAIL FROM:<%s>" % alice), r"^503 5\.5\.1", "nested MAIL: 503")
like(s.cmd("RCPT TO:<bad address@example.org>"), r"^501 ", "malformed recipient: 501")
for i in range(5):
    like(s.cmd("RCPT TO:<r%d@example.org>" % i), r"^250 2\.1\.5", "recipient %d accepted" % (i + 1))
like(s.cmd("RCPT TO:<r6@example.org>"), r"^452 4\.5\.3", "recipient past max_recipients: 452 4.5.3")
like(s.cmd("RSET"), r"^250 ", "RSET 250")
like(s.cmd("MAIL FROM:<%s> SIZE=99999999" % alice), r"^552 5\.3\.4", "declared SIZE over the limit: 552 5.3.4")
like(s.cmd("MAIL FROM:<%s> FOO=BAR" % alice), r"^555 ", "unknown MAIL parameter: 555")
like(s.cmd("MAIL FROM:<>"), r"^250 ", "null sender accepted from an authenticated user")
like(s.cmd("RSET"), r"^250 ", "RSET")
# a command line that is too long
r = s.cmd("NOOP " + "x" * 2000)
like(r, r"^500 5\.5\.2", "over-long command line: 500 5.5.2")
like(s.cmd("NOOP"), r"^250 ", "session still usable after an over-long line")
# pipelining: several commands in one write, replies in order
before = set(d.queue_files())
s.send("MAIL FROM:<%s>\r\nRCPT TO:<p1@example.org>\r\nRCPT TO:<p2@example.org>\r\nDATA\r\n" % alice)
rs = [s.reply() for _ in range(4)]
ok(rs[0].startswith("250") and rs[1].startswith("250") and rs[2].startswith("250")
   and rs[3].startswith("354"), "pipelined MAIL/RCPT/RCPT/DATA answered in order", rs)
s.send("Subject: pipelined\r\n\r\nbody\r\n.\r\nQUIT\r\n")
r1 = s.reply()
like(r1, r"^250 2\.0\.0 Ok: queued as [0-9A-F]+", "pipelined message queued")
like(s.reply(), r"^221", "QUIT after pipelined DATA: 221")
is_(len(set(d.queue_files()) - before), 1, "exactly one queue file for the pipelined message")
s.close()


def half_closed(payload):
    """Send payload on the relay port, close our side (shutdown SHUT_WR, as
    a shell pipe or a client done sending does) and read until the server
    closes; returns the replies."""
    c = socket.create_connection(("127.0.0.1", d.ports["relay"]), timeout=10)
    c.sendall(payload)
    c.shutdown(socket.SHUT_WR)
    buf = b""
    while True:
        x = c.recv(4096)
        if not x:
            break
        buf += x
    c.close()
    return buf.decode()


# half-close after a pipeline ending in QUIT: every command is answered,
# the DATA too (a message queued without its 250 would be sent again)
r = half_closed(b"HELO x.example\r\nMAIL FROM:<x@example.org>\r\nRCPT TO:<bob@example.test>\r\n"
                b"DATA\r\nSubject: half-closed\r\n\r\nbody\r\n.\r\nQUIT\r\n")
m = re.search(r"250 2\.0\.0 Ok: queued as ([0-9A-F]+)\r\n221 ", r)
ok(m is not None, "half-closed client: the 250 for its DATA and the 221 arrive", r)
ok(m is not None and d.wait_log(r"queued: qid=%s from=<x@example\.org>" % m.group(1)),
   "and that is the message queued")


def tls_half_closed(payload, close_notify):
    """payload over implicit TLS (465), then the client closes its side: with
    a close_notify first, or (as many clients do) just the TCP half-close;
    returns what the server sends until it closes."""
    c = socket.create_connection(("127.0.0.1", d.ports["smtps"]), timeout=10)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    o = client_ctx().wrap_bio(inc, out)
    while True:
        try:
            o.do_handshake()
            break
        except ssl.SSLWantReadError:
            c.sendall(out.read())
            inc.write(c.recv(65536))
    o.write(payload)
    if close_notify:
        try:
            o.unwrap()
        except ssl.SSLWantReadError:
            pass
    c.sendall(out.read())
    c.shutdown(socket.SHUT_WR)
    res = b""
    while True:
        x = c.recv(65536)
        if x:
            inc.write(x)
        else:
            inc.write_eof()
        try:
            while True:
                y = o.read(65536)
                if not y:
                    break
                res += y
        except ssl.SSLWantReadError:
            pass
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            break
        if not x:
            break
    c.close()
    return res.decode()


for notify in (True, False):
    r = tls_half_closed(("EHLO x\r\nAUTH PLAIN %s\r\nMAIL FROM:<%s>\r\nRCPT TO:<bob@example.test>\r\n"
                         "DATA\r\nSubject: tls half\r\n\r\nbody\r\n.\r\nQUIT\r\n"
                         % (plain_b64(alice, apw), alice)).encode(), notify)
    ok(re.search(r"235 .*250 2\.0\.0 Ok: queued as [0-9A-F]+\r\n221 ", r, re.S),
       "TLS client half-closing %s: AUTH, the 250 for its DATA and the 221 arrive"
       % ("after its close_notify" if notify else "without close_notify"), r)

# an unfinished message before the half-close: answered up to 354, not queued
mark = len(d.read_log())
r = half_closed(b"HELO x.example\r\nMAIL FROM:<x@example.org>\r\nRCPT TO:<bob@example.test>\r\n"
                b"DATA\r\nSubject: unfinished\r\n\r\nno end\r\n")
ok(r.rstrip().endswith("354 End data with <CR><LF>.<CR><LF>"), "half-close in DATA: replies up to 354", r)
ok(d.wait_log(r"lost connection after DATA"), "logged as a connection lost after DATA")
ok("queued:" not in d.read_log()[mark:], "and nothing queued")

# MAIL on 465 before AUTH
s = d.smtp("smtps")
s.cmd("EHLO c.example")
like(s.cmd("MAIL FROM:<%s>" % alice), r"^530 5\.7\.0", "465: MAIL before AUTH: 530 5.7.0")
like(s.cmd("STARTTLS"), r"^503 5\.5\.1", "465: STARTTLS: 503 5.5.1")
s.close()

# too many errors: 421 and close
s = d.smtp()
s.cmd("EHLO c.example")
codes = [s.code("BOGUS%d" % i) for i in range(5)]
r = None
try:
    r = s.cmd("BOGUS-LAST")
except EOFError:
    r = "EOF"
ok(r.startswith("421") or r == "EOF" or codes[-1] == "421", "error limit: 421 and close", (codes, r))
ok(s.closed(), "connection closed after the error limit")

# cross-protocol: an HTTP request line closes the connection
s = d.smtp()
s.send("GET / HTTP/1.1\r\n")
ok(s.closed(), "HTTP request line: connection closed")

# MAIL without EHLO
s = d.smtp("smtps")
like(s.cmd("AUTH PLAIN " + plain_b64(alice, apw)), r"^(235|503)", "AUTH without EHLO")
like(s.cmd("MAIL FROM:<%s>" % alice), r"^(503|250)", "MAIL without EHLO gets a clear answer")
s.close()
d.stop()
# a half-closed client whose message waits on a queue role that does not
# answer: no read timeout runs without reading, so a timer ends the wait
d3 = Daemon(smtp_extra="idle_timeout = 2;")
qpid = int(re.findall(r"msagated/queue\[(\d+)\]", d3.read_log())[0])
os.kill(qpid, signal.SIGSTOP)
try:
    c = socket.create_connection(("127.0.0.1", d3.ports["relay"]), timeout=15)
    c.sendall(b"HELO x.example\r\nMAIL FROM:<x@example.org>\r\nRCPT TO:<bob@example.test>\r\n"
              b"DATA\r\nSubject: stuck\r\n\r\nbody\r\n.\r\nQUIT\r\n")
    c.shutdown(socket.SHUT_WR)
    t0 = time.time()
    try:
        while c.recv(4096):
            pass
        closed = time.time() - t0
    except socket.timeout:
        closed = None
    c.close()
    ok(closed is not None and closed < 10, "the session is closed after the idle timeout (%s s)" % closed)
    ok(d3.wait_log(r"timeout after \S+ from \[127\.0\.0\.1\] \(the client had closed its side\)"),
       "and logged as a timeout", d3.read_log()[-1000:])
finally:
    os.kill(qpid, signal.SIGCONT)
d3.stop()
done()
