# dovecotauth.py - private Dovecot 2.3 instances for the tests: the common
# part (a directory, `dovecot -F -c FILE` in its own session, stop, log,
# clean-up) and one that runs only its auth service (passwd-file passdb
# with SHA512-CRYPT hashes, static userdb), the upstream of msagate's
# `dovecot` backend (t/54, t/81).  t/95 builds its LMTP instance on the
# common part.
import atexit, os, pwd, shutil, signal, socket, subprocess, tempfile, time

from msagatetest import auth_handshake, have, sha512_crypt


def user_exists(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


class PrivateDovecot:
    """A Dovecot master in a directory of its own; subclasses write
    self.conf before spawn()."""

    def __init__(self, prefix):
        self.dir = tempfile.mkdtemp(prefix=prefix)
        os.chmod(self.dir, 0o755)
        atexit.register(self.cleanup)
        self.conf = os.path.join(self.dir, "dovecot.conf")
        self.proc = None

    def spawn(self):
        self.proc = subprocess.Popen(["dovecot", "-F", "-c", self.conf],
                                     stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(self.dir, "stderr"), "ab"),
                                     start_new_session=True)

    def stop(self):
        """SIGTERM to the whole session (SIGKILL if it lingers)."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
        self.proc = None

    def log(self):
        try:
            with open(os.path.join(self.dir, "dovecot.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def cleanup(self):
        self.stop()
        if not os.environ.get("MSAGATE_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)


class Upstream(PrivateDovecot):
    """A private Dovecot instance that runs only its auth service."""

    def __init__(self, users, raw_lines=(), mechanisms="plain login cram-md5"):
        PrivateDovecot.__init__(self, "msagate-dv-")
        self.base = os.path.join(self.dir, "run")
        self.socket = os.path.join(self.base, "auth-client")
        self.users = os.path.join(self.dir, "users")
        with open(self.users, "w") as f:
            for u, p in users.items():
                f.write("%s:%s::::::\n" % (u, sha512_crypt(p)))
            for line in raw_lines:
                f.write(line + "\n")
        os.chmod(self.users, 0o644)
        self.mechanisms = mechanisms

    def write_conf(self, failure_delay):
        if os.geteuid() == 0:
            internal, login = "dovecot", "dovenull"
        else:
            import getpass
            internal = login = getpass.getuser()
        with open(self.conf, "w") as f:
            f.write("""
base_dir = %(base)s
state_dir = %(dir)s/state
log_path = %(dir)s/dovecot.log
instance_name = msagate-test-%(tag)s
protocols =
ssl = no
auth_mechanisms = %(mechs)s
auth_verbose = yes
%(delay)s
default_internal_user = %(internal)s
default_login_user = %(login)s
passdb {
  driver = passwd-file
  args = scheme=SHA512-CRYPT %(users)s
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=/nonexistent
}
service auth {
  unix_listener auth-client {
    mode = 0666
  }
}
""" % dict(base=self.base, dir=self.dir, tag=os.path.basename(self.dir),
           users=self.users, internal=internal, login=login, mechs=self.mechanisms,
           delay="" if failure_delay is None else
           "auth_failure_delay = %d" % failure_delay))

    def start(self, failure_delay=0):
        self.write_conf(failure_delay)
        self.spawn()
        deadline = time.time() + 15
        while time.time() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.settimeout(2)
                    s.connect(self.socket)
                    if auth_handshake(s) is not None:
                        return True
            except OSError:
                pass
            time.sleep(0.1)
        return False

    def stop(self):
        if self.proc is None:
            return
        PrivateDovecot.stop(self)
        # its children (auth, anvil, log) leave with the master; wait for the socket
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(self.socket)
            except OSError:
                return
            time.sleep(0.1)


def start_upstream(users, raw_lines=(), mechanisms="plain login cram-md5"):
    """A started Upstream, or (None, reason) when Dovecot cannot run here."""
    if not have("dovecot"):
        return None, "dovecot (dovecot-core) is not installed"
    if os.geteuid() == 0 and not (user_exists("dovecot") and user_exists("dovenull")):
        return None, "the dovecot/dovenull users of the dovecot-core package are missing"
    up = Upstream(users, raw_lines, mechanisms)
    if not up.start():
        return None, "cannot start a private Dovecot: " + up.log()[-500:]
    return up, None
