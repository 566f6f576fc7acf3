#!/usr/bin/env python3
"""tests/deploy/sdnotify_check.py: a daemon's systemd notification protocol,
as deploy/systemd/*.service (Type=notify, NotifyAccess=main, WatchdogSec)
rely on it, seen through a NOTIFY_SOCKET receiver of the test's own.

Run under tests/harness/with-servers --nats --pg:
    sdnotify_check.py agentd|schedulerd

Asserts, against the real servers:
  1. no READY=1 while NATS is down, none while NATS is up and PostgreSQL down
     (the daemon is alive and waiting), READY=1 once both are up;
  2. /readyz answers 200 once READY=1 has been sent;
  3. WATCHDOG=1 pings follow READY (WATCHDOG_USEC=2 s, WATCHDOG_PID = the
     daemon, as systemd sets them), no gap near the watchdog, none before READY;
  4. SIGTERM: STOPPING=1, no WATCHDOG=1 after it, exit status 0;
  5. every datagram comes from the daemon's own pid (systemd drops the others
     under NotifyAccess=main).
"""
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request

from deploytest import check, finish



def env(name):
    v = os.environ.get(name)
    if not v:
        sys.exit("FATAL: %s is not set (run under tests/harness/with-servers)" % name)
    return v


class Receiver:
    """AF_UNIX datagram socket with SO_PASSCRED: (time, pid, fields) per datagram."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.msgs = []

    def poll(self, timeout):
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(struct.calcsize("3i")))
        except socket.timeout:
            return None
        pid = None
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid, _, _ = struct.unpack("3i", payload[: struct.calcsize("3i")])
        fields = data.decode("utf-8", "replace").split("\n")
        m = (time.monotonic(), pid, [f for f in fields if f])
        self.msgs.append(m)
        return m

    def wait_for(self, field, timeout, proc):
        until = time.monotonic() + timeout
        while time.monotonic() < until:
            m = self.poll(min(until - time.monotonic(), 0.5))
            if m is None and proc.poll() is not None:
                return None
            if m and field in m[2]:
                return m
        return None

    def drain(self, seconds):
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            self.poll(until - time.monotonic())

    def seen(self, field):
        return [m for m in self.msgs if field in m[2]]


def ctl(*args):
    subprocess.run([os.path.join(env("JETSCHED_TEST_HARNESS"), "ctl")] + list(args), check=True,
                   stdout=subprocess.DEVNULL)


def log_tail(path, n=30):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return "(no log)"


def main():
    daemon = sys.argv[1] if len(sys.argv) == 2 else ""
    if daemon not in ("agentd", "schedulerd"):
        sys.exit("usage: sdnotify_check.py agentd|schedulerd")
    build, src = env("JETSCHED_BUILD_DIR"), env("JETSCHED_SOURCE_DIR")
    nats_url, dsn = env("JETSCHED_TEST_NATS_URL"), env("JETSCHED_TEST_PG_DSN")
    work = tempfile.mkdtemp(prefix="sdnotify.", dir=env("JETSCHED_TEST_STATE"))
    conf = os.path.join(work, daemon + ".conf")
    logf = os.path.join(work, daemon + ".log")
    child_env = dict(os.environ)
    child_env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    child_env["JETSCHED_SQL_DIR"] = os.path.join(src, "sql")
    with open(conf, "w") as f:
        f.write('nats = { url = "%s"; };\npostgres = { dsn = "%s"; %s};\n'
                % (nats_url, dsn, "migrate = true; " if daemon == "schedulerd" else ""))
        f.write('http = { listen = "127.0.0.1:0"; };\n')
        if daemon == "agentd":
            f.write('agent = { id = "sdnotify"; plugin_dir = "%s/plugins"; lua_dir = "%s/scripts/lua"; };\n'
                    % (build, src))
            f.write('shutdown = { grace = "5s"; };\n')
            binary = os.path.join(build, "agentd", "agentd")
            # agentd expects the schema; schedulerd applies it itself (postgres.migrate).
            subprocess.run([os.path.join(build, "cli", "jetsched"), "migrate", "--sql-dir", os.path.join(src, "sql")],
                           check=True, env=dict(child_env, JETSCHED_PG_DSN=dsn), stdout=subprocess.DEVNULL)
        else:
            f.write('scheduler = { id = "sdnotify"; };\n')
            binary = os.path.join(build, "scheduler", "schedulerd")

    rx = Receiver(os.path.join(work, "notify"))
    child_env["NOTIFY_SOCKET"] = os.path.join(work, "notify")
    child_env["WATCHDOG_USEC"] = "2000000"

    # 1. READY only after NATS and PostgreSQL.
    ctl("nats", "stop")
    ctl("pg", "stop")
    with open(logf, "w") as out:
        # WATCHDOG_PID is the daemon's own pid, as systemd sets it: the shell's
        # $$ is the pid that exec turns into the daemon.
        proc = subprocess.Popen(["/bin/sh", "-c", 'WATCHDOG_PID=$$; export WATCHDOG_PID; exec "$@"', "sh",
                                 binary, "-c", conf], env=child_env, stdout=out, stderr=subprocess.STDOUT)
    try:
        rx.drain(3.0)
        check(proc.poll() is None, "%s exited while NATS was down:\n%s" % (daemon, log_tail(logf)))
        check(not rx.seen("READY=1"), "READY=1 sent while NATS was down")
        ctl("nats", "start")
        rx.drain(3.0)
        check(proc.poll() is None, "%s exited while PostgreSQL was down:\n%s" % (daemon, log_tail(logf)))
        check(not rx.seen("READY=1"), "READY=1 sent while PostgreSQL was down")
        ctl("pg", "start")
        ready = rx.wait_for("READY=1", 60.0, proc)
        if not check(ready is not None, "no READY=1 within 60 s of PostgreSQL's start; got %r\n%s"
                     % ([m[2] for m in rx.msgs], log_tail(logf))):
            return
        check(not [m for m in rx.msgs if m[0] < ready[0] and "WATCHDOG=1" in m[2]], "WATCHDOG=1 before READY=1")

        # 2. /readyz once READY.
        port = None
        for _ in range(50):
            m = re.search(r"http endpoints on \S+ \(port (\d+)\)", log_tail(logf, 200))
            if m:
                port = int(m.group(1))
                break
            time.sleep(0.1)
        if check(port is not None, "no http endpoint logged"):
            code = None
            for _ in range(50):  # readiness may trail READY by a moment (first writer round trip)
                try:
                    code = urllib.request.urlopen("http://127.0.0.1:%d/readyz" % port, timeout=5).status
                except Exception as e:  # noqa: BLE001 - 503 raises HTTPError
                    code = getattr(e, "code", None)
                if code == 200:
                    break
                time.sleep(0.2)
            check(code == 200, "/readyz answered %s after READY=1" % code)

        # 3. Watchdog pings: the daemons ping every min(WATCHDOG_USEC/2, 500 ms).
        rx.drain(3.0)
        pings = [m[0] for m in rx.seen("WATCHDOG=1") if m[0] > ready[0]]
        check(len(pings) >= 4, "only %d WATCHDOG=1 pings in the 3 s after READY" % len(pings))
        gaps = [b - a for a, b in zip(pings, pings[1:])]
        # WatchdogSec is 2 s here; a gap near it would get the unit killed (the
        # margin absorbs a loaded machine: pings are due every 0.5 s).
        check(not gaps or max(gaps) < 1.5, "watchdog gap of %.2f s with WATCHDOG_USEC = 2 s" % max(gaps or [0]))

        # 4. SIGTERM: STOPPING=1, then exit 0.
        proc.send_signal(signal.SIGTERM)
        stopping = rx.wait_for("STOPPING=1", 30.0, proc)
        check(stopping is not None, "no STOPPING=1 within 30 s of SIGTERM")
        try:
            rc = proc.wait(60)
        except subprocess.TimeoutExpired:
            rc = None
        check(rc == 0, "%s exited with %s after SIGTERM (want 0):\n%s" % (daemon, rc, log_tail(logf)))
        rx.drain(0.2)
        if stopping:
            late = [m for m in rx.msgs if m[0] > stopping[0] and "WATCHDOG=1" in m[2]]
            check(not late, "%d WATCHDOG=1 after STOPPING=1" % len(late))

        # 5. Sender credentials.
        foreign = [m for m in rx.msgs if m[1] != proc.pid]
        check(not foreign, "datagrams not from the daemon (pid %d): %r" % (proc.pid, foreign[:3]))
        print("%s: %d datagrams; READY=1, %d WATCHDOG=1, STOPPING=1, exit %s"
              % (daemon, len(rx.msgs), len(rx.seen("WATCHDOG=1")), rc), flush=True)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    main()
    finish("OK")
