"""tests/ops/opsstack.py: what the operations-pack tests (issue 19) share: a
real schedulerd and agentd started from this build against the servers of
tests/harness/with-servers, the jetsched CLI, free ports, HTTP GETs, and
collected failures. Python, like tests/deploy, because the tests talk to
Prometheus's HTTP API and parse JSON logs."""
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "deploy"))
from deploytest import FAILS, check, finish  # noqa: E402,F401  (shared with tests/deploy)


def env(name):
    v = os.environ.get(name)
    if not v:
        sys.exit("FATAL: %s is not set (run under tests/harness/with-servers through ctest)" % name)
    return v


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def http_get(url, timeout=5):
    """(status, body) of a GET; status 0 when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")
    except OSError:
        return 0, ""


def tail(path, n=40):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return "(no log)\n"


class Stack:
    """Daemons of this build in a temp dir inside the harness state dir;
    stop() (also at exit) sends SIGTERM, waits, and returns their exit codes."""

    def __init__(self, name, nats_url=None, dsn=None):
        self.build, self.src = env("JETSCHED_BUILD_DIR"), env("JETSCHED_SOURCE_DIR")
        self.nats_url = nats_url or os.environ.get("JETSCHED_TEST_NATS_URL", "")
        self.dsn = dsn or env("JETSCHED_TEST_PG_DSN")
        self.dir = tempfile.mkdtemp(prefix=name + ".", dir=env("JETSCHED_TEST_STATE"))
        self.procs = {}  # id -> (Popen, log path, http port)
        self.env = dict(os.environ)
        self.env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        self.env["JETSCHED_SQL_DIR"] = os.path.join(self.src, "sql")
        self.env["JETSCHED_JETSTREAM_LEADER_TTL"] = "3s"  # quick fail-over; the same for init and the daemons
        for k in ("JETSCHED_CONFIG", "JETSCHED_NATS_URL", "JETSCHED_PG_DSN"):
            self.env.pop(k, None)

    def path(self, name):
        return os.path.join(self.dir, name)

    def write(self, name, text):
        with open(self.path(name), "w") as f:
            f.write(text)
        return self.path(name)

    def base_conf(self, nats_extra="", log_extra=""):
        return ('nats = { url = "%s"; %s };\npostgres = { dsn = "%s"; };\nlog = { %s };\n'
                % (self.nats_url, nats_extra, self.dsn, log_extra))

    def cli_conf(self, nats_extra=""):
        return self.write("cli-%d.conf" % len(os.listdir(self.dir)), self.base_conf(nats_extra))

    def jetsched(self, *args, conf=None, timeout=60):
        """Runs the CLI: (exit code, stdout, stderr)."""
        cmd = [os.path.join(self.build, "cli", "jetsched")]
        if conf:
            cmd += ["-c", conf]
        e = dict(self.env)
        if not conf:
            e["JETSCHED_NATS_URL"], e["JETSCHED_PG_DSN"] = self.nats_url, self.dsn
        p = subprocess.run(cmd + list(args), env=e, capture_output=True, text=True, timeout=timeout)
        return p.returncode, p.stdout, p.stderr

    def start(self, daemon, ident, extra="", nats_extra="", log_extra="", wait=True, timeout=30):
        """Starts agentd or schedulerd with the base configuration plus extra; waits for /readyz."""
        port = free_port()
        conf = self.base_conf(nats_extra, log_extra) + 'http = { listen = "127.0.0.1:%d"; };\n' % port
        if daemon == "agentd":
            conf += ('agent = { id = "%s"; plugin_dir = "%s/plugins"; lua_dir = "%s/scripts/lua"; heartbeat = "1s"; };\n'
                     'shutdown = { grace = "5s"; };\n' % (ident, self.build, self.src))
        else:
            conf += 'scheduler = { id = "%s"; };\n' % ident
        conf += extra
        cpath = self.write(ident + ".conf", conf)
        log = self.path(ident + ".log")
        binary = os.path.join(self.build, "agentd" if daemon == "agentd" else "scheduler", daemon)
        p = subprocess.Popen([binary, "-c", cpath], stdout=open(log, "wb"), stderr=subprocess.STDOUT, env=self.env)
        self.procs[ident] = (p, log, port)
        if wait and not self.wait_ready(ident, timeout):
            print("--- %s log:\n%s" % (ident, tail(log)), flush=True)
            return None
        return p

    def wait_ready(self, ident, timeout=30):
        p, _, port = self.procs[ident]
        until = time.monotonic() + timeout
        while time.monotonic() < until:
            if p.poll() is not None:
                return False
            if http_get("http://127.0.0.1:%d/readyz" % port, 1)[0] == 200:
                return True
            time.sleep(0.1)
        return False

    def port(self, ident):
        return self.procs[ident][2]

    def log(self, ident):
        return self.procs[ident][1]

    def stop(self, ident, sig=signal.SIGTERM, timeout=30):
        """Signals one daemon and returns its exit code (None if it had to be killed)."""
        p = self.procs[ident][0]
        if p.poll() is None:
            p.send_signal(sig)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                return None
        return p.returncode

    def stop_all(self):
        for ident in list(self.procs):
            self.stop(ident)

    def migrate_init(self, queues=("default",), conf=None):
        args = []
        for q in queues:
            args += ["--queue", q]
        for cmd in (["migrate"], ["init"] + args):
            rc, out, err = self.jetsched(*cmd, conf=conf)
            if rc != 0:
                sys.exit("FATAL: jetsched %s: %s%s" % (" ".join(cmd), out, err))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop_all()


def metrics(port):
    """Parsed /metrics: {'name{labels}': value}."""
    status, body = http_get("http://127.0.0.1:%d/metrics" % port)
    out = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            k, _, v = line.rpartition(" ")
            out[k] = float(v)
    return out


def load_json(text):
    try:
        return json.loads(text)
    except ValueError:
        return None
