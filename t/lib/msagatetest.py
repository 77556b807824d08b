"""msagatetest - the integration-test harness for msagate (t/*.t).

Each test script starts its own msagated on free high loopback ports with a
generated self-signed certificate, a Dovecot-format passwd file and a private
state/run directory, talks to it with real clients (smtplib, ssl, swaks,
msmtp, openssl s_client), and prints TAP for prove.
"""
import atexit
import base64
import os
import re
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile
import time

SRCDIR = os.environ.get("MSAGATE_SRCDIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
BUILDDIR = os.environ.get("MSAGATE_BUILDDIR") or SRCDIR
MSAGATED = os.path.join(BUILDDIR, "msagated")
MSAGATECTL = os.path.join(BUILDDIR, "msagatectl")

# ---------------------------------------------------------------- TAP
_n = 0
_failed = 0


def ok(cond, name, diag=None):
    """Record one TAP result; print diag lines when it failed."""
    global _n, _failed
    _n += 1
    if not cond:
        _failed += 1
    print("%sok %d - %s" % ("" if cond else "not ", _n, name), flush=True)
    if not cond and diag is not None:
        for line in str(diag).splitlines()[-40:]:
            print("#   " + line, flush=True)
    return bool(cond)


def is_(got, want, name, extra=None):
    return ok(got == want, name, "got:  %r\nwant: %r%s" % (
        got, want, "" if extra is None else "\n" + str(extra)))


def like(got, pattern, name, extra=None):
    return ok(got is not None and re.search(pattern, got, re.S) is not None,
              name, "got:  %r\nwant match: %r%s" % (
                  got, pattern, "" if extra is None else "\n" + str(extra)))


def diag(msg):
    for line in str(msg).splitlines():
        print("# " + line, flush=True)


def skip_all(reason):
    print("1..0 # SKIP " + reason, flush=True)
    sys.exit(0)


def done():
    print("1..%d" % _n, flush=True)
    sys.exit(1 if _failed else 0)


def have(prog):
    return shutil.which(prog) is not None


# ---------------------------------------------------------------- helpers
_ports_given = set()


def free_port(addr="127.0.0.1"):
    """A port free now that this process has not handed out before (the
    kernel may give the same ephemeral port to two binds in a row)."""
    for _ in range(100):
        s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET)
        s.bind((addr, 0))
        port = s.getsockname()[1]
        s.close()
        if port not in _ports_given:
            break
    _ports_given.add(port)
    return port


def sha512_crypt(password):
    out = subprocess.run(["openssl", "passwd", "-6", password],
                         capture_output=True, text=True, check=True)
    return "{SHA512-CRYPT}" + out.stdout.strip()


def plain_b64(user, password, authzid=""):
    return base64.b64encode(("%s\0%s\0%s" % (authzid, user, password)).encode()).decode()


TEST_USER = "msagate-test"


def run_user():
    """The account the roles run as: ourselves, or a test account when root
    (the daemon refuses to run its roles as root)."""
    import getpass
    if os.geteuid() != 0:
        return getpass.getuser()
    import pwd
    try:
        pwd.getpwnam(TEST_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir",
                        "/nonexistent", "--shell", "/usr/sbin/nologin", TEST_USER],
                       check=True, capture_output=True)
    return TEST_USER


def client_ctx():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def auth_handshake(s, cpid=1):
    """The client side of the Dovecot auth protocol handshake on the
    connected socket s (VERSION, CPID, then the server's lines up to DONE);
    returns what came after DONE, or None if the server closed first."""
    s.sendall(b"VERSION\t1\t2\nCPID\t%d\n" % cpid)
    buf = b""
    while b"DONE\n" not in buf:
        d = s.recv(4096)
        if not d:
            return None
        buf += d
    return buf.split(b"DONE\n", 1)[1]


class LineClient:
    """A line protocol client on a UNIX socket (the auth and userdb
    sockets): line() reads one LF-terminated line, closed() waits for the
    server to hang up."""

    def __init__(self, path, timeout=10):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.settimeout(timeout)
        self.s.connect(path)
        self.buf = b""

    def line(self):
        while b"\n" not in self.buf:
            x = self.s.recv(65536)
            if not x:
                raise EOFError(self.buf)
            self.buf += x
        l, self.buf = self.buf.split(b"\n", 1)
        return l.decode()

    def closed(self, timeout=5):
        """True once the server closes the connection within timeout."""
        self.s.settimeout(timeout)
        try:
            while True:
                if not self.s.recv(65536):
                    return True
        except (socket.timeout, TimeoutError):
            return False
        except OSError:
            return True

    def close(self):
        self.s.close()


class Daemon:
    """One msagated instance with its own directory, ports and users."""

    USERS = {"alice@example.test": "alice-secret-1", "bob": "b0b pass:word"}

    def __init__(self, extra_conf="", failure_delay=0, users=None, start=True,
                 smtp_extra="", auth_extra="", relay_extra="", backends=None,
                 mechanisms=("PLAIN", "LOGIN"), penalty=False, plain_users=None,
                 passwd_lines=None, mynetworks='[ "127.0.0.1/32", "::1/128" ]',
                 listen_extra=()):
        self.dir = tempfile.mkdtemp(prefix="msagate-t-")
        self.user = run_user()
        os.chmod(self.dir, 0o755)
        atexit.register(self.cleanup)
        self.users = dict(self.USERS if users is None else users)
        # users stored as {PLAIN} (needed for CRAM-MD5 and SCRAM)
        self.plain_users = dict(plain_users or {})
        # raw passwd-file lines written as they are (extra fields, schemes)
        self.passwd_lines = list(passwd_lines or [])
        self.ports = {"submission": free_port(), "smtps": free_port(),
                      "relay": free_port()}
        self.run_dir = os.path.join(self.dir, "run")
        self.state_dir = os.path.join(self.dir, "state")
        self.cert = os.path.join(self.dir, "cert.pem")
        self.key = os.path.join(self.dir, "key.pem")
        self.passwd = os.path.join(self.dir, "users")
        self.conf = os.path.join(self.dir, "msagate.conf")
        self.log = os.path.join(self.dir, "msagated.log")
        self.auth_socket = os.path.join(self.run_dir, "auth")
        self.userdb_socket = os.path.join(self.run_dir, "auth-userdb")
        os.mkdir(self.run_dir)
        self.make_cert()
        self.write_users()
        self.failure_delay = failure_delay
        self.extra_conf = extra_conf
        self.smtp_extra = smtp_extra
        # brute-force penalties change timing; only the tests about them want them
        self.auth_extra = auth_extra if penalty else (
            auth_extra + "\n  penalty = { enabled = false; };")
        self.relay_extra = relay_extra
        self.mynetworks = mynetworks   # None: not in the file (the default applies)
        self.listen_extra = listen_extra   # more listeners, libconfig groups
        # the auth.backends list (libconfig text, "%(passwd)s" = our passwd
        # file); default: just the passwd file
        self.backends = backends
        self.mechanisms = list(mechanisms)
        self.write_conf()
        self.proc = None
        if start:
            self.start()

    # -- files
    def make_cert(self):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-keyout", self.key, "-out", self.cert, "-days", "2",
                        "-subj", "/CN=mail.example.test"],
                       check=True, capture_output=True)

    def write_users(self):
        with open(self.passwd, "w") as f:
            f.write("# test users\n")
            for u, p in self.users.items():
                f.write("%s:%s::::::\n" % (u, sha512_crypt(p)))
            for u, p in self.plain_users.items():
                f.write("%s:{PLAIN}%s::::::\n" % (u, p))
            for line in self.passwd_lines:
                f.write(line.rstrip("\n") + "\n")
        if os.geteuid() == 0:
            import pwd
            os.chown(self.passwd, 0, pwd.getpwnam(self.user).pw_gid)
            os.chmod(self.passwd, 0o640)

    def write_conf(self):
        with open(self.conf, "w") as f:
            f.write("""
hostname = "mail.example.test";
user = "%(user)s";
state_dir = "%(state)s";
run_dir = "%(run)s";
tls = { cert = "%(cert)s"; key = "%(key)s"; min_protocol = "TLSv1.2"; };
listen = (
  { address = "127.0.0.1"; port = %(p587)d; role = "submission"; tls = "starttls"; },
  { address = "127.0.0.1"; port = %(p465)d; role = "submission"; tls = "implicit"; },
  { address = "127.0.0.1"; port = %(p25)d; role = "relay"; tls = "starttls"; }%(listen_extra)s
);
auth = {
  socket = "%(run)s/auth";
  socket_mode = 0660;
  mechanisms = [ %(mechs)s ];
  backends = ( %(backends)s );
  failure_delay = %(delay)s;
  min_time = 0;
  %(auth_extra)s
};
relay = {
  %(mynetworks)s
  local_domains = [ "example.test" ];
  message_size_limit = 1048576;
  %(mx_off)s
  %(relay_extra)s
};
smtp = {
  %(smtp_extra)s
};
%(extra)s
""" % dict(user=self.user, state=self.state_dir, run=self.run_dir,
                cert=self.cert, key=self.key, p587=self.ports["submission"],
                p465=self.ports["smtps"], p25=self.ports["relay"], passwd=self.passwd,
                delay=self.failure_delay, extra=self.extra_conf,
                smtp_extra=self.smtp_extra, auth_extra=self.auth_extra,
                relay_extra=self.relay_extra,
                listen_extra="".join(",\n  " + l for l in self.listen_extra),
                mynetworks="" if self.mynetworks is None else
                "mynetworks = %s;" % self.mynetworks,
                # tests never query real DNS: MX lookup only where a test sets it up
                mx_off="" if "mx_lookup" in self.relay_extra else "mx_lookup = false;",
                mechs=", ".join('"%s"' % m for m in self.mechanisms),
                backends=(self.backends if self.backends is not None else
                          '{ driver = "passwd-file"; path = "%(passwd)s"; }')
                % dict(passwd=self.passwd)))

    # -- process
    def start(self, timeout=15):
        self.logf = open(self.log, "ab")
        self.proc = subprocess.Popen([MSAGATED, "-f", "-d", "-c", self.conf],
                                     stdout=self.logf, stderr=self.logf,
                                     start_new_session=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("msagated exited with %s:\n%s" %
                                   (self.proc.returncode, self.read_log()))
            if self.ready():
                return
            time.sleep(0.05)
        raise RuntimeError("msagated did not become ready:\n" + self.read_log())

    def ready(self):
        """Greeting on the submission port and an auth socket handshake."""
        try:
            with socket.create_connection(("127.0.0.1", self.ports["submission"]), 1) as s:
                s.settimeout(1)
                if not s.recv(512).startswith(b"220"):
                    return False
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(1)
                s.connect(self.auth_socket)
                if auth_handshake(s) is None:
                    return False
            return True
        except OSError:
            return False

    def pids(self):
        """Every process of this daemon (the parent's process group)."""
        if self.proc is None:
            return []
        out = subprocess.run(["pgrep", "-g", str(self.proc.pid)],
                             capture_output=True, text=True).stdout.split()
        return [int(p) for p in out]

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        return self.proc.returncode

    def kill9_all(self):
        """kill -9 every msagate process at once (the parent and its roles)."""
        pids = self.pids()
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        deadline = time.time() + 5
        while time.time() < deadline and any(_alive(p) for p in pids):
            time.sleep(0.05)
        return pids

    def cleanup(self):
        try:
            if self.proc is not None and self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        except Exception:
            pass
        if os.environ.get("MSAGATE_KEEP"):
            return
        shutil.rmtree(self.dir, ignore_errors=True)

    def read_log(self):
        try:
            with open(self.log, "r", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def wait_log(self, pattern, timeout=5):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if re.search(pattern, self.read_log()):
                return True
            time.sleep(0.05)
        return False

    def deliver_to_maildirs(self):
        """Local mail to DIR/mail/DOMAIN/USER/Maildir (the directory made
        here for the run user); rewrites the configuration, call before
        start().  Returns DIR/mail."""
        mail = os.path.join(self.dir, "mail")
        os.mkdir(mail, 0o700)
        chown_run_user(mail, self.user)
        self.relay_extra = ('delivery = { method = "maildir"; path = "%s/%%d/%%n/Maildir"; };'
                            % mail)
        self.write_conf()
        return mail

    # -- queue
    def queue_files(self):
        d = os.path.join(self.state_dir, "queue")
        try:
            return sorted(os.listdir(d))
        except OSError:
            return []

    def incoming_files(self, empty=False):
        """Files in incoming/ holding (part of) a message being received.
        Others are left out unless empty=True: spares, and the files the
        SMTP role keeps opened ahead of DATA, which stay empty or (when
        recycled) hold a delivered message under another id until used."""
        d = os.path.join(self.state_dir, "incoming")
        try:
            names = sorted(os.listdir(d))
        except OSError:
            return []
        if empty:
            return names
        out = []
        for n in names:
            if n.startswith("spare."):
                continue
            try:
                with open(os.path.join(d, n), "rb") as f:
                    head = f.read(64)
            except OSError:
                continue
            other = re.match(rb"MSAGATE-QUEUE 1\nid=([0-9A-F]+)\n", head)
            if head and not (other and other.group(1).decode() != n):
                out.append(n)
        return out

    def queue_file(self, qid):
        with open(os.path.join(self.state_dir, "queue", qid), "rb") as f:
            return f.read()

    def ctl(self, *args, input=None):
        return subprocess.run([MSAGATECTL, "-c", self.conf] + list(args),
                              capture_output=True, text=True, input=input, timeout=60)

    # -- clients
    def smtp(self, port_name="submission", source=None):
        return Session("127.0.0.1", self.ports[port_name],
                       implicit=(port_name == "smtps"), source=source)


def _alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


class Session:
    """A raw SMTP client: exact bytes out, whole replies in."""

    def __init__(self, host, port, implicit=False, source=None, timeout=10):
        self.sock = socket.create_connection((host, port), timeout,
                                             source_address=(source, 0) if source else None)
        self.sock.settimeout(timeout)
        if implicit:
            self.sock = client_ctx().wrap_socket(self.sock)
        self.buf = b""
        self.greeting = self.reply()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def line(self):
        while b"\r\n" not in self.buf:
            d = self.sock.recv(65536)
            if not d:
                raise EOFError("connection closed; pending %r" % self.buf)
            self.buf += d
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")

    def reply(self):
        """One whole (possibly multi-line) reply as text, lines joined by \\n."""
        lines = [self.line()]
        while len(lines[-1]) > 3 and lines[-1][3] == "-":
            lines.append(self.line())
        return "\n".join(lines)

    def cmd(self, text):
        self.send(text + "\r\n")
        return self.reply()

    def code(self, text):
        return self.cmd(text)[:3]

    def starttls(self):
        r = self.cmd("STARTTLS")
        if r.startswith("220"):
            self.sock = client_ctx().wrap_socket(self.sock)
            self.buf = b""
        return r

    def auth_plain(self, user, password):
        return self.cmd("AUTH PLAIN " + plain_b64(user, password))

    def login(self, user, password, ehlo="client.example.test"):
        """EHLO, STARTTLS unless already TLS, EHLO, AUTH PLAIN; returns AUTH reply."""
        self.cmd("EHLO " + ehlo)
        if not isinstance(self.sock, ssl.SSLSocket):
            self.starttls()
            self.cmd("EHLO " + ehlo)
        return self.auth_plain(user, password)

    def closed(self, timeout=5):
        """True if the server closes the connection (EOF) within timeout."""
        self.sock.settimeout(timeout)
        try:
            while True:
                d = self.sock.recv(65536)
                if not d:
                    return True
                self.buf += d
        except (OSError, ssl.SSLError):
            return True
        except socket.timeout:
            return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def message(subject="test", body="hello\r\n", headers=True, extra=""):
    h = ""
    if headers:
        h = ("From: alice@example.test\r\nTo: rcpt@example.org\r\n"
             "Subject: %s\r\nMessage-ID: <%s@client.example.test>\r\n"
             "Date: Mon, 23 Nov 2026 12:00:00 +0000\r\n" % (subject, os.urandom(6).hex()))
    return h + extra + "\r\n" + body


def queued_id(reply):
    m = re.search(r"queued as ([0-9A-F]+)", reply)
    return m.group(1) if m else None


# ---------------------------------------------------------------- delivery
def wait_for(cond, timeout=15):
    """Poll cond() every 0.1 s until it is true or timeout seconds pass;
    returns the last value of cond()."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return cond()


def chown_run_user(path, user):
    """Give path to user (and its group) when we are root; else leave it."""
    if os.geteuid() == 0:
        import pwd
        pw = pwd.getpwnam(user)
        os.chown(path, pw.pw_uid, pw.pw_gid)


def submission_login(d, user="alice@example.test", ehlo="mua.example.test"):
    """An smtplib session on Daemon d's 587, after STARTTLS and AUTH as user."""
    s = smtplib.SMTP("127.0.0.1", d.ports["submission"], timeout=20)
    s.ehlo(ehlo)
    s.starttls(context=client_ctx())
    s.ehlo(ehlo)
    s.login(user, d.users[user])
    return s


def send_mail(d, rcpts, subject, body="hello\r\n", sender="alice@example.test"):
    """Submit one message() over 587 + STARTTLS as alice to Daemon d;
    returns smtplib's dict of refused recipients."""
    s = submission_login(d)
    refused = s.sendmail(sender, rcpts, message(subject, body=body).encode())
    s.quit()
    return refused


def maildir_files(path):
    """Paths of every message in the Maildir path (new/, then cur/)."""
    out = []
    for sub in ("new", "cur"):
        p = os.path.join(path, sub)
        if os.path.isdir(p):
            out += [os.path.join(p, n) for n in sorted(os.listdir(p))]
    return out


def maildir_msgs(path):
    """Contents (text) of every message in the Maildir path (new/, then cur/)."""
    out = []
    for f in maildir_files(path):
        with open(f, "rb") as fh:
            out.append(fh.read().decode("utf-8", "replace"))
    return out


# ---------------------------------------------------------------- SMTP AUTH
def ehlo_auth(port, ehlo="mua.example.test"):
    """The AUTH keyword's value (mechanisms) offered after STARTTLS on port."""
    s = smtplib.SMTP("127.0.0.1", port, timeout=10)
    s.ehlo(ehlo)
    s.starttls(context=client_ctx())
    s.ehlo(ehlo)
    auth = s.esmtp_features.get("auth", "")
    s.quit()
    return auth


def auth_submit(port, user, password, mech="PLAIN", send=True, subject="test"):
    """STARTTLS + AUTH mech (PLAIN, LOGIN or CRAM-MD5) on port and, when
    send and the login worked, one message(subject) to rcpt@example.org;
    returns (auth code, reply text, queue id or None)."""
    s = smtplib.SMTP("127.0.0.1", port, timeout=30)
    try:
        s.ehlo("mua.example.test")
        s.starttls(context=client_ctx())
        s.ehlo("mua.example.test")
        s.user, s.password = user, password
        authobj = {"PLAIN": s.auth_plain, "LOGIN": s.auth_login,
                   "CRAM-MD5": s.auth_cram_md5}[mech]
        try:
            code, resp = s.auth(mech, authobj, initial_response_ok=(mech == "PLAIN"))
        except smtplib.SMTPAuthenticationError as e:
            return e.smtp_code, e.smtp_error.decode(errors="replace"), None
        qid = None
        if send and code == 235:
            sender = user if "@" in user else user + "@example.test"
            s.mail(sender)
            s.rcpt("rcpt@example.org")
            c2, r2 = s.data(message(subject).encode())
            qid = queued_id(r2.decode(errors="replace")) if c2 == 250 else None
        return code, resp.decode(errors="replace"), qid
    finally:
        try:
            s.quit()
        except Exception:
            s.close()
