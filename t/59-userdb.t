#!/usr/bin/env python3
# 59-userdb.t - the auth role's userdb lookup socket (run_dir/auth-userdb),
# spoken to directly: Dovecot master/userdb handshake, USER -> USER with the
# canonical name and uid/gid/home (never a password), NOTFOUND, default
# domain, many requests in flight, PASS refused, and the protocol errors
# that disconnect (unknown command, missing service, over-long line, wrong
# major version); the socket is private (0600).
import os, socket, stat, sys, time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from msagatetest import *

d = Daemon(users={"alice@example.test": "alice-pw"},
           plain_users={"bob@example.test": "bob-pw"},
           passwd_lines=[
               "carol@example.test:{PLAIN}carol-pw:1234:2345:Carol:/home/carol::"
               "userdb_mail=maildir:~/Maildir userdb_password=leak nologin",
               "dave@example.test:{PLAIN}dave-pw::::::allow_nets=192.0.2.0/24",
           ],
           backends='{ driver = "passwd-file"; path = "%(passwd)s"; '
                    'default_domain = "example.test"; }')

st = os.stat(d.userdb_socket)
is_(stat.S_IMODE(st.st_mode), 0o600, "userdb socket mode 0600")


class U(LineClient):
    def __init__(self, hello=True):
        LineClient.__init__(self, d.userdb_socket, 5)
        if hello:
            self.send("VERSION\t1\t0\n")
            self.line()         # VERSION
            self.line()         # SPID

    def send(self, text):
        self.s.sendall(text.encode() if isinstance(text, str) else text)

    def ask(self, text):
        self.send(text)
        return self.line()


u = U(hello=False)
is_(u.line(), "VERSION\t1\t1", "handshake: VERSION 1 1")
like(u.line(), r"^SPID\t\d+$", "handshake: SPID")
u.send("VERSION\t1\t0\n")
is_(u.ask("USER\t1\talice@example.test\tservice=smtp\n"), "USER\t1\talice@example.test",
    "known user: USER with the canonical name")
is_(u.ask("USER\t2\tnobody@example.test\tservice=smtp\n"), "NOTFOUND\t2",
    "unknown user: NOTFOUND")
is_(u.ask("USER\t3\tbob@EXAMPLE.TEST\tservice=smtp\trip=192.0.2.1\n"),
    "USER\t3\tbob@example.test", "domain case-insensitive, canonical lower-cased")
is_(u.ask("USER\t4\tbob\tservice=smtp\n"), "USER\t4\tbob@example.test",
    "default_domain applies")
r = u.ask("USER\t5\tcarol@example.test\tservice=lmtp\n")
is_(r, "USER\t5\tcarol@example.test\tuid=1234\tgid=2345\thome=/home/carol"
    "\tmail=maildir:~/Maildir", "uid, gid, home, userdb_ fields")
ok("leak" not in r and "pw" not in r, "no password in the reply", r)
is_(u.ask("USER\t6\tdave@example.test\tservice=smtp\n"), "USER\t6\tdave@example.test",
    "allow_nets does not hide a user from userdb lookups")
is_(u.ask("USER\t7\tBob@example.test\tservice=smtp\n"), "NOTFOUND\t7",
    "local part is case-sensitive")
is_(u.ask("PASS\t8\tbob@example.test\tservice=smtp\n"),
    "FAIL\t8\treason=Configured passdbs don't support credentials lookups",
    "PASS is refused (never any credential)")

# many requests in flight, answers for every id
n = 500
u.send("".join("USER\t%d\t%s\tservice=smtp\n" %
               (100 + i, "alice@example.test" if i % 2 else "x%d@example.test" % i)
               for i in range(n)))
got = {}
for _ in range(n):
    l = u.line().split("\t")
    got[int(l[1])] = l[0]
ok(len(got) == n and all(got[100 + i] == ("USER" if i % 2 else "NOTFOUND")
                         for i in range(n)), "%d pipelined lookups all answered" % n)
is_(u.ask("USER\t9\talice@example.test\tservice=smtp\n"), "USER\t9\talice@example.test",
    "connection still fine")

# protocol errors disconnect
for name, data in (
        ("unknown command", "LIST\t1\n"),
        ("CPID", "CPID\t1\n"),
        ("USER without service", "USER\t1\talice@example.test\n"),
        ("USER with a bad id", "USER\tx\talice@example.test\tservice=smtp\n"),
        ("line longer than 1024 bytes", "USER\t1\t" + "a" * 1100 + "\tservice=smtp\n")):
    c = U()
    c.send(data)
    ok(c.closed(), "%s: disconnected" % name)
c = U(hello=False)
c.send("VERSION\t2\t0\nUSER\t1\talice@example.test\tservice=smtp\n")
ok(c.closed(), "wrong major version: disconnected")
c = U(hello=False)
c.line(); c.line()
c.send("USER\t1\talice@example.test\tservice=smtp\n")
ok(c.closed(), "no VERSION first: disconnected")

# a 1000-byte line (under the limit) is fine
is_(u.ask("USER\t10\t" + "a" * 300 + "@example.test\tservice=smtp\t" +
          "session=" + "s" * 600 + "\n"), "NOTFOUND\t10", "long but legal line answered")
like(d.read_log(), r"userdb: BUG: userdb client \d+ sent an unknown command",
     "protocol errors logged")
u.s.close()

# SIGHUP/changed file: new users are seen
with open(d.passwd, "a") as f:
    f.write("erin@example.test:{PLAIN}x::::::\n")
time.sleep(1.1)
u = U()
is_(u.ask("USER\t1\terin@example.test\tservice=smtp\n"), "USER\t1\terin@example.test",
    "user added to the file is found")
u.s.close()
done()
