#!/usr/bin/env python3
# 90-relay.t - who may send where, over real sockets against the real auth
# role (userdb socket): the relay battery from outside mynetworks
# (127.0.0.9) on the relay listener (foreign recipients 554, tricks never
# relay, nothing queued) and on the submission listener (no AUTH: 530);
# local recipients from outside (user, bare PAM-style user, alias,
# unknown 550 5.1.1); mynetworks (127.0.0.1) relaying via port 25 (also
# by default, without mynetworks in the file, where 127.0.0.9 may not);
# sender ownership on submission (553 5.7.1, the sender map, the From:
# header); a blocked address refused with 421 at connect; pipelined RCPTs
# that need two userdb lookups keep their replies in order (clear and TLS).
import os, re, socket, sys, tempfile, time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from msagatetest import *

OUTSIDE = "127.0.0.9"
files = tempfile.mkdtemp(prefix="msagate-relay-")
os.chmod(files, 0o755)
aliases = os.path.join(files, "aliases")
logins = os.path.join(files, "sender_logins")
with open(aliases, "w") as f:
    f.write("# test aliases\npostmaster: alice@example.test\ninfo: alice, bob\n"
            "team:\n\talice@example.test,\n\tbob@example.test\n")
with open(logins, "w") as f:
    f.write("# sender map\nsales@example.test  alice@example.test, bob\n"
            "@shop.example.test  bob\n")
for p in (aliases, logins):
    os.chmod(p, 0o644)

d = Daemon(penalty=True,
           auth_extra='penalty = { block_after = 3; window = 60; block_time = 30; '
                      'max_delay = 1; exempt = [ "127.0.0.1/32" ]; };',
           relay_extra='relay_domains = [ "relayed.test" ]; aliases = "%s"; '
                       'sender_logins = "%s"; check_from_header = true;'
                       % (aliases, logins))
alice, apw = "alice@example.test", d.users["alice@example.test"]
bob, bpw = "bob", d.users["bob"]


def queue_snapshot():
    """Messages queued or being received (ABORTs are asynchronous: give
    the queue role a moment to remove a refused incoming file)."""
    time.sleep(0.3)
    return set(d.queue_files()) | set("incoming/" + f for f in d.incoming_files())


def nothing_new(before, name):
    new = queue_snapshot() - before
    is_(sorted(new), [], name)


# The classic relay-test list: (recipient path, expected reply regex) for a
# client outside mynetworks on the relay listener.
BATTERY = [
    ("<user@foreign.test>", r"^554 5\.7\.1"),
    ("<user@FOREIGN.test>", r"^554 5\.7\.1"),
    ("<user@sub.example.test>", r"^554 5\.7\.1"),
    ("<user@example.test.foreign.test>", r"^554 5\.7\.1"),
    ("<user%foreign.test@example.test>", r"^(550 5\.1\.1|554 5\.7\.1)"),
    ("<user%foreign.test@relayed.test>", r"^554 5\.7\.1"),
    ("<foreign.test!user@example.test>", r"^(550 5\.1\.1|554 5\.7\.1)"),
    ("<foreign.test!user@relayed.test>", r"^554 5\.7\.1"),
    ("<@example.test:user@foreign.test>", r"^554 5\.7\.1"),
    ("<@example.test,@relayed.test:user@foreign.test>", r"^554 5\.7\.1"),
    ('<"user@foreign.test"@example.test>', r"^(550 5\.1\.1|554 5\.7\.1)"),
    ('<"user%foreign.test"@example.test>', r"^(550 5\.1\.1|554 5\.7\.1)"),
    ('<"foreign.test!user"@example.test>', r"^(550 5\.1\.1|554 5\.7\.1)"),
    ('<"user@foreign.test"@relayed.test>', r"^554 5\.7\.1"),
    ("<user@foreign.test@example.test>", r"^5"),
    ("<user@example.test@foreign.test>", r"^5"),
    ("<<user@foreign.test>@example.test>", r"^5"),
    ("<user@foreign.test>@example.test", r"^5"),
    ("<user@[127.0.0.1]>", r"^554 5\.7\.1"),
    ("<alice@[127.0.0.1]>", r"^554 5\.7\.1"),
    ("<postmaster@[127.0.0.1]>", r"^554 5\.7\.1"),
    ("<user@[IPv6:::1]>", r"^554 5\.7\.1"),
    ("<alice@example.test.>", r"^5"),
    ("<user@foreign.test.>", r"^5"),
    ("<user@example..test>", r"^5"),
    ('<""@example.test>', r"^(550 5\.1\.1|554 5\.7\.1)"),
    ("<@example.test>", r"^5"),
    ("<user@>", r"^5"),
    ("<user>", r"^5"),
    ("<user@xn--bcher-kva.test>", r"^554 5\.7\.1"),
]

# -- relay listener, client outside mynetworks --------------------------------
before = queue_snapshot()
s = d.smtp("relay", source=OUTSIDE)
like(s.greeting, r"^220 ", "relay listener greets %s" % OUTSIDE)
r = s.cmd("EHLO outside.example")
ok("AUTH" not in r, "relay listener offers no AUTH", r)
like(s.cmd("MAIL FROM:<spammer@foreign.test>"), r"^250 ", "MAIL from outside accepted")
for rcpt, want in BATTERY:
    like(s.cmd("RCPT TO:%s" % rcpt), want, "relay port from outside: RCPT %s refused" % rcpt)
like(s.cmd("RCPT TO:<user@bücher.test>"), r"^553 5\.6\.7",
     "UTF-8 domain without SMTPUTF8: 553 5.6.7")
like(s.cmd("DATA"), r"^503 ", "DATA with every recipient refused: 503")
like(s.cmd("RSET"), r"^250", "RSET")
like(s.cmd("MAIL FROM:<spammer@foreign.test> SMTPUTF8"), r"^250 ", "MAIL with SMTPUTF8")
like(s.cmd("RCPT TO:<user@bücher.test>"), r"^554 5\.7\.1", "UTF-8 foreign domain: 554 5.7.1")
like(s.cmd("RCPT TO:<nobody@example.test>"), r"^550 5\.1\.1 ",
     "unknown local user from outside: 550 5.1.1")
like(s.cmd("RCPT TO:<nobody+tag@EXAMPLE.test>"), r"^550 5\.1\.1 ", "unknown local user+tag: 550 5.1.1")
like(s.cmd("RCPT TO:<user@relayed.test>"), r"^250 ", "relay_domains accepted from anyone")
s.cmd("RSET")
s.cmd("MAIL FROM:<logged-once@foreign.test>")
s.cmd("RCPT TO:<logged-once@foreign.test>")
ok(d.wait_log(r"reject: RCPT from \[127\.0\.0\.9\]: 554 5\.7\.1 <logged-once@foreign\.test>: "
              r"Relay access denied; from=<logged-once@foreign\.test>"),
   "a refused RCPT is logged with the reply and the sender")
is_(len(re.findall(r"reject: RCPT .*<logged-once@foreign\.test>: Relay", d.read_log())), 1,
    "once (not again as a bare reply line)")
s.cmd("RSET")
s.cmd("QUIT")
s.close()
nothing_new(before, "nothing queued from the refused relay attempts")

# local recipients from outside: existing user, bare user, alias, postmaster
s = d.smtp("relay", source=OUTSIDE)
s.cmd("EHLO outside.example")
like(s.cmd("MAIL FROM:<friend@foreign.test>"), r"^250 ", "MAIL from outside")
like(s.cmd("RCPT TO:<alice@example.test>"), r"^250 ", "existing user (passwd-file, full name): 250")
like(s.cmd("RCPT TO:<Alice+news@Example.Test>"), r"^250 ", "existing user, case and +tag: 250")
like(s.cmd("RCPT TO:<bob@example.test>"), r"^250 ", "existing bare user (bob): 250")
like(s.cmd("RCPT TO:<info@example.test>"), r"^250 ", "alias: 250")
like(s.cmd("RCPT TO:<team@example.test>"), r"^250 ", "alias with continuation lines: 250")
like(s.cmd("RCPT TO:<Postmaster>"), r"^250 ", "<Postmaster>: 250")
like(s.cmd("RCPT TO:<carol@example.test>"), r"^550 5\.1\.1 ", "unknown local user: 550 5.1.1")
like(s.cmd("RCPT TO:<user@foreign.test>"), r"^554 5\.7\.1 ", "still no relaying in this transaction")
like(s.cmd("DATA"), r"^354", "DATA")
r = s.cmd(message(subject="inbound").replace("rcpt@example.org", "alice@example.test") + ".")
like(r, r"^250 2\.0\.0 Ok: queued as ", "inbound mail for local users queued")
qid = queued_id(r)
if qid:
    data = d.queue_file(qid).decode("utf-8", "replace")
    ok("rcpt=alice@example.test" in data and "foreign.test" not in
       "".join(l for l in data.splitlines() if l.startswith("rcpt=")),
       "queued recipients are the accepted local ones only")
s.cmd("QUIT")
s.close()

# -- submission listener, outside, no AUTH ------------------------------------
before = queue_snapshot()
s = d.smtp("submission", source=OUTSIDE)
s.cmd("EHLO outside.example")
like(s.cmd("MAIL FROM:<user@foreign.test>"), r"^530 5\.7\.0", "submission before STARTTLS: 530")
s.starttls()
s.cmd("EHLO outside.example")
like(s.cmd("MAIL FROM:<user@foreign.test>"), r"^530 5\.7\.0", "submission without AUTH: 530 5.7.0")
for rcpt, want in BATTERY[:12]:
    like(s.cmd("RCPT TO:%s" % rcpt), r"^(503|530) ",
         "submission without AUTH: RCPT %s refused" % rcpt)
like(s.cmd("DATA"), r"^(503|530) ", "submission without AUTH: DATA refused")
s.close()
s = d.smtp("smtps", source=OUTSIDE)
s.cmd("EHLO outside.example")
like(s.cmd("MAIL FROM:<user@foreign.test>"), r"^530 5\.7\.0", "465 without AUTH: 530 5.7.0")
s.close()
nothing_new(before, "nothing queued from unauthenticated submission")

# -- mynetworks relaying via port 25 ------------------------------------------
s = d.smtp("relay", source="127.0.0.1")
s.cmd("EHLO app.example")
like(s.cmd("MAIL FROM:<app@example.test>"), r"^250 ", "mynetworks client: MAIL")
like(s.cmd("RCPT TO:<user@foreign.test>"), r"^250 ", "mynetworks client relays to a foreign domain")
like(s.cmd("RCPT TO:<user@[192.0.2.1]>"), r"^250 ", "mynetworks client: address literal")
like(s.cmd("RCPT TO:<nobody@example.test>"), r"^550 5\.1\.1", "mynetworks client: unknown local user still 550")
like(s.cmd('RCPT TO:<"user@foreign.test"@example.test>'), r"^(550 5\.1\.1|554 5\.7\.1)",
     "mynetworks client: quoted routing to a local domain refused")
like(s.cmd("DATA"), r"^354", "DATA")
like(s.cmd(message(subject="from an app") + "."), r"^250 2\.0\.0 Ok: queued as ",
     "mail from mynetworks to a foreign domain queued")
s.close()

# -- submission: sender ownership ---------------------------------------------
s = d.smtp("submission", source=OUTSIDE)
like(s.login(alice, apw), r"^235 ", "alice authenticates")
like(s.cmd("MAIL FROM:<bob@example.test>"), r"^553 5\.7\.1 .*not owned by user alice@example\.test",
     "MAIL FROM someone else's address: 553 5.7.1")
like(s.cmd("MAIL FROM:<Alice@example.test>"), r"^553 5\.7\.1", "local part compared exactly: 553")
like(s.cmd("MAIL FROM:<alice@EXAMPLE.TEST>"), r"^250 ", "domain compared case-insensitively")
s.cmd("RSET")
like(s.cmd("MAIL FROM:<sales@example.test>"), r"^250 ", "address the sender map gives alice: 250")
like(s.cmd("RCPT TO:<user@foreign.test>"), r"^250 ", "authenticated: relay anywhere")
like(s.cmd("RCPT TO:<nobody@example.test>"), r"^550 5\.1\.1", "authenticated: unknown local user 550")
s.cmd("RSET")
like(s.cmd("MAIL FROM:<x@shop.example.test>"), r"^553 5\.7\.1", "@domain entry of another login: 553")
like(s.cmd("MAIL FROM:<>"), r"^250 ", "null sender allowed")
s.cmd("RSET")
# From: header check
before = queue_snapshot()
s.cmd("MAIL FROM:<alice@example.test>")
s.cmd("RCPT TO:<user@foreign.test>")
like(s.cmd("DATA"), r"^354", "DATA")
msg = message(subject="forged").replace("From: alice@example.test", "From: Bob <bob@example.test>")
like(s.cmd(msg + "."), r"^553 5\.7\.1", "From: header not owned: DATA answered 553 5.7.1")
nothing_new(before, "nothing queued for the forged From:")
s.cmd("MAIL FROM:<alice@example.test>")
s.cmd("RCPT TO:<user@foreign.test>")
s.cmd("DATA")
msg = message(subject="fine").replace("From: alice@example.test",
                                      'From: "Alice, A." <alice@example.test>')
like(s.cmd(msg + "."), r"^250 2\.0\.0 Ok: queued", "own From: header accepted")
s.close()

s = d.smtp("submission", source=OUTSIDE)
like(s.login(bob, bpw), r"^235 ", "bob (login without a domain) authenticates")
like(s.cmd("MAIL FROM:<bob@example.test>"), r"^250 ", "bob may send as bob@<local domain>")
s.cmd("RSET")
like(s.cmd("MAIL FROM:<bob@foreign.test>"), r"^553 5\.7\.1", "bob@foreign: 553")
like(s.cmd("MAIL FROM:<orders@shop.example.test>"), r"^250 ", "bob: @domain entry of the map")
s.close()

# -- a blocked address gets 421 at connect ------------------------------------
BAD = "127.0.0.30"
blocked = False
for i in range(6):
    try:
        s = d.smtp("submission", source=BAD)
    except (OSError, EOFError):
        break
    if s.greeting.startswith("421"):
        blocked = True
        break
    s.cmd("EHLO guesser.example")
    s.starttls()
    s.cmd("EHLO guesser.example")
    try:
        r = s.auth_plain(alice, "wrong-%d" % i)
    except EOFError:
        r = "EOF"
    s.close()
    if r.startswith("421"):
        blocked = True
        break
ok(blocked, "the guessing address gets blocked")
s = d.smtp("submission", source=BAD)
like(s.greeting, r"^421 4\.7\.0", "a new connection from the blocked address: 421 4.7.0 at connect")
ok(s.closed(), "and the connection is closed")
s = d.smtp("relay", source=BAD)
like(s.greeting, r"^421 4\.7\.0", "on every listener")
s = d.smtp("submission", source=OUTSIDE)
like(s.greeting, r"^220 ", "other addresses are still served")
s.close()
d.stop()

# -- pipelined RCPTs that need two userdb lookups (local@domain, then local):
# the replies keep the order of the commands (RFC 2920), in clear text and
# after STARTTLS; a real MTA (Postfix, t/85) bounced mail when they did not
dp = Daemon(users={"alice@example.test": "alice-pw-1", "bob": "bob-pw-2", "carl": "carl-pw-3"})
for tls, bare in ((False, b"bob"), (True, b"carl")):
    raw = socket.create_connection(("127.0.0.1", dp.ports["relay"]), timeout=10)
    raw.recv(1000)
    conn = raw
    if tls:
        raw.sendall(b"EHLO mta.example\r\n")
        buf = b""
        while not re.search(rb"(^|\n)250 [^\n]*\n", buf):
            buf += raw.recv(4096)
        raw.sendall(b"STARTTLS\r\n")
        raw.recv(1000)
        conn = client_ctx().wrap_socket(raw)
    conn.sendall(b"EHLO mta.example\r\n")
    buf = b""
    while not re.search(rb"(^|\n)250 [^\n]*\n", buf):
        buf += conn.recv(4096)
    # bob/carl exist only without the domain: two lookups (none cached yet);
    # nobody-*: two lookups, both unknown
    conn.sendall(b"MAIL FROM:<x@foreign.test>\r\nRCPT TO:<" + bare + b"@example.test>\r\n"
                 b"RCPT TO:<nobody-" + bare + b"@example.test>\r\n"
                 b"RCPT TO:<alice@example.test>\r\nDATA\r\n")
    buf = b""
    conn.settimeout(5)
    try:
        while buf.count(b"\r\n") < 5:
            d = conn.recv(4096)
            if not d:
                break
            buf += d
    except socket.timeout:
        pass                # a reply missing: the check below says so
    codes = [l[:3].decode() for l in buf.split(b"\r\n") if l]
    is_(codes, ["250", "250", "550", "250", "354"],
        "pipelined MAIL, RCPT x3, DATA%s: replies in order" % (" after STARTTLS" if tls else ""),
        buf)
    conn.sendall(b"Subject: pipelined\r\n\r\nhi\r\n.\r\nQUIT\r\n")
    buf = b""
    try:
        while b"221" not in buf:
            d = conn.recv(4096)
            if not d:
                break
            buf += d
    except socket.timeout:
        pass
    like(buf.decode(), r"^250 2\.0\.0 Ok: queued as", "and the message is queued")
    conn.close()
dp.stop()

# -- without relay.mynetworks in the file: only this host's 127.0.0.1 relays --
dd = Daemon(mynetworks=None)
s = dd.smtp("relay", source=OUTSIDE)
s.cmd("EHLO other.loopback")
like(s.cmd("MAIL FROM:<x@foreign.test>"), r"^250 ", "default mynetworks: MAIL from %s" % OUTSIDE)
like(s.cmd("RCPT TO:<user@foreign.test>"), r"^554 5\.7\.1",
     "default mynetworks: %s (another loopback address) may not relay" % OUTSIDE)
s.close()
s = dd.smtp("relay")
s.cmd("EHLO localhost")
like(s.cmd("MAIL FROM:<app@example.test>"), r"^250 ", "default mynetworks: MAIL from 127.0.0.1")
like(s.cmd("RCPT TO:<user@foreign.test>"), r"^250 ", "default mynetworks: 127.0.0.1 relays")
s.close()
dd.stop()
done()
