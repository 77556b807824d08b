#!/usr/bin/env python3
# 00-config.t - `msagated -n` reports every configuration problem as
# FILE:LINE: message and exits 1, exits 0 on a good file; -V and -h work
# (and --version, --help, for msagatectl too).
import os, re, subprocess, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from msagatetest import *

d = Daemon(start=False)


def check(conf_text):
    path = os.path.join(d.dir, "check.conf")
    with open(path, "w") as f:
        f.write(conf_text)
    r = subprocess.run([MSAGATED, "-n", "-c", path], capture_output=True, text=True)
    return r, path


good = open(d.conf).read()
r, path = check(good)
is_(r.returncode, 0, "-n on the test configuration exits 0")
like(r.stdout, r"configuration OK", "-n says the configuration is OK")

r = subprocess.run([MSAGATED, "-V"], capture_output=True, text=True)
like(r.stdout, r"^msagated \d+\.\d+", "-V prints the version")
r = subprocess.run([MSAGATED, "-h"], capture_output=True, text=True)
like(r.stdout, r"-n\s+check the configuration", "-h documents -n")
for prog in (MSAGATED, MSAGATECTL):
    name = os.path.basename(prog)
    r = subprocess.run([prog, "--help"], capture_output=True, text=True)
    ok(r.returncode == 0 and r.stdout.startswith("usage: " + name) and r.stderr == "",
       "%s --help: usage on stdout, exit 0" % name, (r.returncode, r.stderr))
    r = subprocess.run([prog, "--version"], capture_output=True, text=True)
    like(r.stdout, r"^%s \d+\.\d+" % name, "%s --version" % name)


def line_of(text, needle):
    for i, l in enumerate(text.splitlines(), 1):
        if needle in l:
            return i
    return 0


cases = [
    ("unknown key", good.replace('hostname = ', 'hostnmae = "x";\nhostname = '),
     "hostnmae", r'unknown key "hostnmae"'),
    ("bad CIDR", good.replace('"127.0.0.1/32"', '"127.0.0.1/33"'), None, r"mynetworks: \"127\.0\.0\.1/33\""),
    ("CIDR with host bits", good.replace('"127.0.0.1/32"', '"127.0.0.1/8"'), None, r"host bits"),
    ("missing certificate", good.replace(d.cert, "/nonexistent/cert.pem"), None, r"tls\.cert /nonexistent/cert\.pem"),
    ("unreadable passwd file", good.replace(d.passwd, "/nonexistent/users"), "passwd-file", r"/nonexistent/users"),
    ("unknown backend driver", good.replace('"passwd-file"', '"ldap"'), "ldap", r"unknown backend driver \"ldap\""),
    ("submission without TLS", good.replace('role = "submission"; tls = "starttls"', 'role = "submission"; tls = "none"'),
     'tls = "none"', r"needs tls"),
    ("syntax error", good.replace("listen = (", "listen = (("), None, r":\d+: "),
    ("bad listen role", good.replace('role = "relay"', 'role = "bogus"'), 'role = "bogus"', r"role \"bogus\""),
    ("bad queue_sync", good.replace('hostname = ', 'queue_sync = "sometimes";\nhostname = '),
     "queue_sync", r"queue_sync \"sometimes\" unknown"),
    ("implicit TLS on a relay listener", good.replace('role = "relay"; tls = "starttls"', 'role = "relay"; tls = "implicit"'),
     'role = "relay"', r"relay listener takes tls"),
    ("empty listen list", re.sub(r"listen = \(.*?\n\);", "listen = ( );", good, flags=re.S),
     "listen = ( );", r"\"listen\" is empty"),
    ("empty backends list", re.sub(r"backends = \(.*?\);", "backends = ( );", good),
     "backends = ( );", r"auth\.backends is empty"),
    ("unknown log facility", good + '\nlog = { facility = "mial"; };\n', 'facility = "mial"',
     r"log\.facility \"mial\" unknown"),
    ("relayhost with a space", good.replace("relay = {", 'relay = {\n  relayhost = "mx example";', 1),
     "mx example", r"relay\.relayhost \"mx example\""),
    ("unknown socket_group", good.replace("socket_mode = 0660;",
                                          'socket_mode = 0660;\n  socket_group = "no-such-group-xyz";'),
     "socket_group", r"auth\.socket_group \"no-such-group-xyz\" does not exist"),
    ("missing aliases file", good.replace("relay = {", 'relay = {\n  aliases = "/nonexistent/aliases";', 1),
     "/nonexistent/aliases", r"relay\.aliases: /nonexistent/aliases"),
    ("missing relay CA file", good.replace("relay = {", 'relay = {\n  tls_ca_file = "/nonexistent/ca.pem";', 1),
     "/nonexistent/ca.pem", r"relay\.tls_ca_file /nonexistent/ca\.pem"),
    ("ANONYMOUS mechanism", good.replace('mechanisms = [ "PLAIN"', 'mechanisms = [ "ANONYMOUS", "PLAIN"'),
     "ANONYMOUS", r"\"ANONYMOUS\" is not supported: it would let anyone submit mail"),
    ("a -PLUS mechanism", good.replace('mechanisms = [ "PLAIN"', 'mechanisms = [ "SCRAM-SHA-256-PLUS", "PLAIN"'),
     "SCRAM-SHA-256-PLUS", r"no TLS channel binding"),
    ("an unknown cipher list", good.replace('min_protocol = "TLSv1.2";', 'min_protocol = "TLSv1.2";\n  ciphers = "BOGUS";'),
     'ciphers = "BOGUS"', r"tls\.ciphers \"BOGUS\": OpenSSL accepts no cipher"),
    ("a Maildir path with an unknown escape", good.replace("relay = {", 'relay = {\n  delivery = { method = "maildir"; path = "/var/mail/%d/%x/Maildir"; };', 1),
     "%x", r"unknown escape %x"),
    ("a relative Maildir path", good.replace("relay = {", 'relay = {\n  delivery = { method = "maildir"; path = "Maildir/%n"; };', 1),
     "Maildir/%n", r"must be an absolute path"),
    ("a Maildir path shared by every user", good.replace("relay = {", 'relay = {\n  delivery = { method = "maildir"; path = "/var/mail/%d/Maildir"; };', 1),
     "/var/mail/%d/Maildir", r"names no user"),
    ("lmtp without a socket", good.replace("relay = {", 'relay = {\n  delivery = { method = "lmtp"; };', 1),
     'method = "lmtp"', r"socket is required for lmtp"),
    ("no auth section", re.sub(r"\nauth = \{.*?\n\};", "", good, flags=re.S), None, r"no \"auth\" section"),
]
for name, text, needle, pattern in cases:
    r, path = check(text)
    is_(r.returncode, 1, "-n with %s exits 1" % name)
    like(r.stdout, re.escape(path) + r":\d+: ", "%s reported as FILE:LINE:" % name)
    like(r.stdout, pattern, "%s: message names the problem" % name)
    if needle:
        ln = line_of(text, needle)
        ok(("%s:%d:" % (path, ln)) in r.stdout, "%s: reported at the right line (%d)" % (name, ln), r.stdout)

# several problems at once are all reported
bad = good.replace('"127.0.0.1/32"', '"nonsense"').replace('hostname = ', 'bogus_key = 1;\nhostname = ')
r, path = check(bad)
ok(r.returncode == 1 and "nonsense" in r.stdout and "bogus_key" in r.stdout,
   "every problem is reported, not just the first", r.stdout)

# a passwd file with several bad lines: each one is reported with its line
pw2 = os.path.join(d.dir, "users-bad")
with open(pw2, "w") as f:
    f.write("# users\nbad1\nok@example.test:{PLAIN}pw::::::\nx:{NOSUCH}a::::::\nbad5\n"
            "ok@example.test:{PLAIN}again::::::\n")
r, path = check(good.replace(d.passwd, pw2))
is_(r.returncode, 1, "-n with a passwd file with bad lines exits 1")
for ln in (2, 4, 5, 6):
    like(r.stdout, r"%s:%d: " % (re.escape(pw2), ln), "passwd file line %d reported" % ln)

# files the daemon needs only later: problems for -n (FILE: message)
cred = os.path.join(d.dir, "creds")
with open(cred, "w") as f:
    f.write("u:p\n")
os.chmod(cred, 0o644)
r, path = check(good.replace("relay = {", 'relay = {\n  relayhost = "[127.0.0.1]:2525";\n'
                             '  relayhost_credentials = "%s";' % cred, 1)
                .replace("socket_mode = 0660;", 'socket_mode = 0660;\n  socket_group = "no-such-group-xyz";'))
is_(r.returncode, 1, "-n with a group-readable credentials file and an unknown socket_group exits 1")
like(r.stdout, r"relayhost_credentials %s: group or others may read it" % re.escape(cred),
     "the credentials file's mode is reported")
like(r.stdout, r"auth\.socket_group \"no-such-group-xyz\" does not exist", "the unknown group is reported")

r, path = check(good.replace("relay = {", 'relay = {\n  tls_ca_file = "";\n  relayhost_credentials = "";', 1))
is_(r.returncode, 0, "empty tls_ca_file and relayhost_credentials (the documented defaults) are fine",
    r.stdout)

# key that does not match the certificate
other = os.path.join(d.dir, "other-key.pem")
subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-out", other], check=True, capture_output=True)
r, path = check(good.replace(d.key, other))
is_(r.returncode, 1, "-n with a key that does not match the certificate exits 1")
like(r.stdout, r"does not match", "mismatched key reported")

# unknown user (only meaningful as root, where the roles switch to it)
if os.geteuid() == 0:
    r, path = check(good.replace('user = "%s"' % d.user, 'user = "no-such-user-xyz"'))
    is_(r.returncode, 1, "-n with an unknown user exits 1")
    like(r.stdout, r"user \"no-such-user-xyz\" does not exist", "unknown user reported")

# the daemon refuses to start with a bad configuration
r = subprocess.run([MSAGATED, "-f", "-c", check(bad)[1]], capture_output=True, text=True, timeout=10)
is_(r.returncode, 1, "msagated refuses to start with a bad configuration")

# the sample configuration in conf/ parses (its paths need not exist here)
r = subprocess.run([MSAGATED, "-n", "-c", os.path.join(SRCDIR, "conf", "msagate.conf")],
                   capture_output=True, text=True)
ok("unknown key" not in r.stdout and "syntax" not in r.stdout.lower(),
   "conf/msagate.conf uses only known keys and parses", r.stdout)
done()
