"""tests/deploy/deploytest.py: what the deployment checkers share: collected
failures (check), the exit (finish), and systemd/config duration parsing."""
import re
import sys

FAILS = []


def check(cond, msg):
    """Records a failure (and prints it) when cond is false; returns cond."""
    if not cond:
        FAILS.append(msg)
        print("FAIL: " + msg, flush=True)
    return cond


def finish(ok_msg="OK"):
    if FAILS:
        print("%d check(s) failed" % len(FAILS))
        sys.exit(1)
    print(ok_msg)


_UNITS = {"ms": 0.001, "s": 1, None: 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


def seconds(v):
    """'30s', '90', '2min', '1h' (systemd) or '2m', '14d' (jetsched config) -> seconds, else None."""
    m = re.fullmatch(r"(\d+)\s*(ms|s|min|m|h|d)?", str(v).strip())
    return int(m.group(1)) * _UNITS[m.group(2)] if m else None
