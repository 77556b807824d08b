"""smtpsink - Postfix's smtp-sink on a loopback port as a next hop for the
tests (a smarthost or an MX), each message dumped into a directory."""
import os, socket, subprocess, time

SINK = "/usr/sbin/smtp-sink"


class Sink:
    """smtp-sink on a loopback port, dumping each message into a directory."""

    def __init__(self, d, port, opts=(), addr="127.0.0.1", name="sink"):
        self.dir = os.path.join(d.dir, name)
        self.addr = addr
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.dir, 0o777)
        self.port = port
        self.opts = list(opts)
        self.proc = None
        self.user = d.user

    def start(self):
        args = [SINK, "-d", os.path.join(self.dir, "%M.")] + self.opts
        if os.geteuid() == 0:
            args += ["-u", self.user]
        args += ["%s:%d" % (self.addr, self.port), "100"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.time() + 5
        while time.time() < deadline:
            try:
                with socket.create_connection((self.addr, self.port), 1) as s:
                    s.settimeout(2)
                    if s.recv(100).startswith(b"220"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("smtp-sink did not start")

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def messages(self):
        out = []
        for n in sorted(os.listdir(self.dir)):
            with open(os.path.join(self.dir, n), "rb") as f:
                out.append(f.read().decode("utf-8", "replace"))
        return out

    def clear(self):
        for n in os.listdir(self.dir):
            os.unlink(os.path.join(self.dir, n))
