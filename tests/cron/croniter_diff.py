#!/usr/bin/python3
"""Differential test of jetsched's cron next-fire computation (scheduler/cron.c)
against an independent implementation, python3-croniter (Debian 12: 1.3.5).

Random valid cron expressions (5 and 6 fields: *, lists, ranges, steps,
a/step, month and day names in random case, day-of-week 7; no H, which
croniter hashes differently) are paired with zones and start instants (random
ones in 2020-2030 and ones within hours of each DST transition). The C driver
(tests/cron/cron_driver.c) prints the next N fire times of each case; every
one of them, "next after the previous one", is checked twice:

  A. against croniter itself, with a pytz-aware start time (croniter's
     supported way of handling zones);
  B. against a reference built from croniter's matching in *local wall-clock
     time* (naive datetimes, no DST) mapped to instants with zoneinfo by the
     DST rules of docs/CRON.md (skipped time -> the transition instant;
     repeated time -> the first occurrence, both for wildcard schedules).

B must agree exactly. A may differ only in the documented ways (docs/CRON.md
"Differences from croniter"); each is named where it is handled below:

  D1 Vixie day-of-month/day-of-week rule. jetsched (like Vixie cron) ORs the
     two day fields when neither starts with '*'; croniter ORs them when
     neither expands to the whole range. Such expressions are not excluded but
     translated so that croniter computes the Vixie answer (day_or=False, or
     both fields '*' when one of them matches every day). Applies to A and B.
  D2 DST transitions. croniter's heuristic (e.g. "30 2 * * *" on the
     spring-forward day fires at 01:30 EST and again at 03:30 EDT in
     America/New_York) is not followed. A mismatch in A is excluded only when
     an offset change lies between 3 h before the start and the later of the
     two answers AND jetsched's answer equals reference B.
  D3 pytz has no rules after 2037 (it reads only the 32-bit TZif data), so A
     is not checked for instants after 2037-06-01; B checks them.

Generation also avoids two croniter 1.3.5 bugs, not differences in jetsched:
in 6-field expressions croniter does not map day-of-week 7 to Sunday (so
ranges reaching 7, "a/step" and "-SUN" ranges are not generated in 6-field
day-of-week fields) and it accepts day-of-month 0 (never generated).

Expressions jetsched rejects as never firing (e.g. "0 0 30 2 *") must make
croniter fail too (CroniterBadDateError). Prints the seed; fails (exit 1) on
any mismatch, printing the first few. Exit 2 if croniter is not installed.
"""
import argparse
import bisect
import heapq
import datetime
import functools
import multiprocessing
import os
import random
import subprocess
import sys
import time

try:
    import pytz
    import zoneinfo
    from croniter import croniter, CroniterBadDateError
except ImportError as e:  # pragma: no cover
    print("croniter_diff: %s; install the Debian packages python3-croniter python3-tz "
          "python3-dateutil (scripts/install-deps)" % e, file=sys.stderr)
    sys.exit(2)

ZONES = ["UTC", "America/New_York", "Europe/Berlin", "Australia/Sydney", "Asia/Kolkata",
         "Australia/Lord_Howe"]
SEC, MIN, HOUR, DOM, MON, DOW = range(6)
RANGES = {SEC: (0, 59), MIN: (0, 59), HOUR: (0, 23), DOM: (1, 31), MON: (1, 12), DOW: (0, 6)}
MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
EPOCH = datetime.datetime(1970, 1, 1)
PYTZ_LIMIT = int(datetime.datetime(2037, 6, 1, tzinfo=datetime.timezone.utc).timestamp())
N_NEXT = 5


# ----------------------------------------------------------------- generation

def rcase(r, s):
    return r.choice([s.lower(), s.upper(), s.capitalize()])


def gen_value(r, f, six, v=None, allow7=True):
    lo, hi = RANGES[f]
    if v is None:
        v = r.randint(lo, hi)
    if f == MON and r.random() < 0.3:
        return rcase(r, MONTHS[v - 1])
    if f == DOW:
        if r.random() < 0.3:
            return rcase(r, DAYS[v])
        if v == 0 and allow7 and not six and r.random() < 0.4:
            return "7"
    return str(v)


def gen_step(r, f):
    lo, hi = RANGES[f]
    span = hi - lo + 1
    # (steps larger than the field's size are rejected by jetsched: docs/CRON.md)
    steps = [s for s in (2, 3, 4, 5, 6, 7, 10, 12, 15, 20, 30) if s <= span]
    return r.choice(steps + [r.randint(1, span)]) if span > 12 else r.randint(1, span)


def gen_item(r, f, six):
    lo, hi = RANGES[f]
    k = r.random()
    if k < 0.4:
        return gen_value(r, f, six)
    if k < 0.8:
        a, b = sorted(r.sample(range(lo, hi + 1), 2))
        if f == DOW and not six and r.random() < 0.2:
            b = 7  # a-7, or a-SUN
            item = "%s-%s" % (gen_value(r, f, six, a, False), r.choice(["7", rcase(r, "sun")]))
        else:
            item = "%s-%s" % (gen_value(r, f, six, a, False), gen_value(r, f, six, b))
        if k < 0.6:
            return item
        return "%s/%d" % (item, gen_step(r, f))
    if k < 0.9 and not (f == DOW and six):  # a/step runs to 7 in day-of-week
        return "%s/%d" % (gen_value(r, f, six), gen_step(r, f))
    return "*/%d" % star_step(r, f, six)


def star_step(r, f, six):
    # In 6-field day-of-week, */1 and */7 select 7, which croniter 1.3.5 does not map to Sunday.
    while True:
        s = gen_step(r, f)
        if not (six and f == DOW and s in (1, 7)):
            return s


def gen_field(r, f, six):
    p_star = {SEC: 0.3, MIN: 0.2, HOUR: 0.35, DOM: 0.6, MON: 0.65, DOW: 0.6}[f]
    k = r.random()
    if k < p_star:
        return "*"
    if k < p_star + 0.1:
        return "*/%d" % star_step(r, f, six)
    n = 1 if r.random() < 0.6 else r.randint(2, 3)
    return ",".join(gen_item(r, f, six) for _ in range(n))


def gen_sparse(r):
    """Rare or impossible day/month combinations (29-31 in short months, Feb 29 with weekdays)."""
    dom = ",".join(str(d) for d in r.sample([28, 29, 30, 31], r.randint(1, 2)))
    mon = ",".join(r.sample(["2", "feb", "4", "apr", "6", "9", "11", "nov"], r.randint(1, 2)))
    dow = r.choice(["*", "*", "*/%d" % r.randint(2, 6), str(r.randint(0, 6))])
    return "%d %d %s %s %s" % (r.randint(0, 59), r.randint(0, 23), dom, mon, dow)


def gen_expr(r):
    if r.random() < 0.05:
        return gen_sparse(r)
    six = r.random() < 0.25
    fields = [gen_field(r, f, six) for f in ([SEC] if six else []) + [MIN, HOUR, DOM, MON, DOW]]
    return " ".join(fields)


# ----------------------------------------------------------- zone transitions

def zone_transitions(name):
    """UTC instants (s) where the zone's offset changes, 2015-2065, via zoneinfo."""
    if name == "UTC":
        return []
    z = zoneinfo.ZoneInfo(name)
    off = lambda t: datetime.datetime.fromtimestamp(t, z).utcoffset()
    out = []
    t = int(datetime.datetime(2015, 1, 1, tzinfo=datetime.timezone.utc).timestamp())
    end = int(datetime.datetime(2065, 1, 1, tzinfo=datetime.timezone.utc).timestamp())
    step = 6 * 3600
    o = off(t)
    while t < end:
        o2 = off(t + step)
        if o2 != o:
            lo, hi = t, t + step  # off(lo) == o, off(hi) == o2
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if off(mid) == o:
                    lo = mid
                else:
                    hi = mid
            out.append(hi)
            o = o2
        t += step
    return out


TRANSITIONS = {}


def has_transition(zone, a, b):
    """Whether an offset change lies in (a, b]."""
    tr = TRANSITIONS[zone]
    i = bisect.bisect_right(tr, a)
    return i < len(tr) and tr[i] <= b


# -------------------------------------------------------------- translation

def field_texts(expr):
    f = expr.split()
    if len(f) == 6:
        return f[0], f[1], f[2], f[3], f[4], f[5]
    return None, f[0], f[1], f[2], f[3], f[4]


def translate(expr):
    """-> (croniter expression, day_or, wildcard, D1 note or None)."""
    sec, mi, hr, dom, mon, dow = field_texts(expr)
    cexpr = " ".join([mi, hr, dom, mon, dow] + ([sec] if sec is not None else []))  # croniter: seconds last
    expanded, _ = croniter.expand(cexpr)
    c_and = expanded[2] == ["*"] or expanded[4] == ["*"]
    v_and = dom[0] == "*" or dow[0] == "*"
    wildcard = mi[0] == "*" or hr[0] == "*" or (sec is not None and sec[0] == "*")
    note = None
    day_or = True
    if v_and and not c_and:
        # D1: a '*/n' day field -> Vixie ANDs the day fields; croniter would OR them.
        day_or = False
        note = "D1 and"
    elif c_and and not v_and:
        # D1: a full range written without '*' (e.g. 1-31, 0-6, MON-SUN) -> Vixie ORs,
        # and one field matching every day makes every day match.
        parts = cexpr.split()
        parts[2] = parts[4] = "*"
        cexpr = " ".join(parts)
        note = "D1 or"
    return cexpr, day_or, wildcard, note


# ----------------------------------------------------------------- reference

def wall_instants(z, w, wildcard):
    """Instants (s) at which local wall time w fires under jetsched's DST rules."""
    a, b = w.replace(tzinfo=z, fold=0), w.replace(tzinfo=z, fold=1)
    ua, ub = int(a.timestamp()), int(b.timestamp())
    if ua == ub:
        return [ua]
    lo, hi = min(ua, ub), max(ua, ub)
    valid = lambda u: datetime.datetime.fromtimestamp(u, z).replace(tzinfo=None) == w
    if valid(lo) and valid(hi):  # repeated: first occurrence (both for wildcard schedules)
        return [lo, hi] if wildcard else [lo]
    # skipped: the transition instant, the first instant with the later offset
    o_hi = datetime.datetime.fromtimestamp(hi, z).utcoffset()
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.datetime.fromtimestamp(mid, z).utcoffset() == o_hi:
            hi = mid
        else:
            lo = mid
    return [hi]


@functools.lru_cache(maxsize=4096)
def expand(cexpr):
    return croniter.expand(cexpr)[0]


@functools.lru_cache(maxsize=4096)
def cron_obj(cexpr, day_or, aware):
    """One croniter per expression (expanding is its slow part); every use passes start_time."""
    return croniter(cexpr, datetime.datetime(2000, 1, 1), day_or=day_or)


def or_variants(cexpr, day_or):
    """C2 workaround: croniter ORs the day fields by computing the day-of-month-only
    and the day-of-week-only answers, but raises CroniterBadDateError when either
    one never matches (e.g. "0 0 31 6 SAT": every Saturday in June). Returns the
    expressions whose earliest answer is the answer."""
    exp = expand(cexpr)
    if not (day_or and exp[2] != ["*"] and exp[4] != ["*"]):
        return [(cexpr, day_or)]
    a, b = cexpr.split(), cexpr.split()
    a[4] = "*"
    b[2] = "*"
    return [(" ".join(a), True), (" ".join(b), True)]


def has_long_dom(cexpr):
    exp = expand(cexpr)
    return exp[2] != ["*"] and max(exp[2]) > 28


def month_end(w):
    """The last second of w's month."""
    return datetime.datetime(w.year + (w.month == 12), w.month % 12 + 1, 1) - datetime.timedelta(seconds=1)


def wall_next(cexpr, day_or, w):
    """croniter's next wall-clock match after naive w, with the C1 workaround:
    croniter 1.3.5 moves to a day-of-month value past the end of a short month
    by adding days, overshooting into the next month and skipping its first
    days (e.g. day-of-month "*/30" = 1,31 from Feb 9 gives Mar 31, not Mar 1;
    it can happen in any month it passes through). Restarting at the last
    second of every month up to croniter's answer gives the right one: from a
    month's first day croniter finds that month's first match correctly."""
    it = cron_obj(cexpr, day_or, False)
    r = it.get_next(datetime.datetime, start_time=w)
    if has_long_dom(cexpr):
        nm = month_end(w)
        while nm < r:
            if nm > w:
                r = min(r, it.get_next(datetime.datetime, start_time=nm))
            nm = month_end(nm + datetime.timedelta(seconds=1))
    return r


def wall_matches(cexpr, day_or, start):
    """Successive wall-clock matches after naive `start`."""
    gens = []
    for e, d in or_variants(cexpr, day_or):
        def gen(e=e, d=d):
            cur = start
            while True:
                try:
                    cur = wall_next(e, d, cur)
                except CroniterBadDateError:
                    return
                yield cur
        gens.append(gen())
    last = None
    for w in heapq.merge(*gens):
        if w != last:
            yield w
        last = w


def irregular_walls(zone, z, a, b):
    """Wall-clock intervals [lo, hi) skipped or repeated by the offset changes in (a, b]."""
    tr = TRANSITIONS[zone]
    out = []
    for t in tr[bisect.bisect_right(tr, a):bisect.bisect_right(tr, b)]:
        before = datetime.datetime.fromtimestamp(t - 1, z).utcoffset()
        after = datetime.datetime.fromtimestamp(t, z).utcoffset()
        w = datetime.datetime.utcfromtimestamp(t)
        out.append((w + min(before, after), w + max(before, after)))
    return out


def reference_next(cexpr, day_or, wildcard, zone, z, after_ms):
    """The first fire instant after after_ms under docs/CRON.md's rules, from
    croniter's wall-clock matches mapped to instants with zoneinfo."""
    p = after_ms // 1000  # fire u > after_ms  <=>  u > floor(after_ms / 1000)
    wall = lambda u: datetime.datetime.fromtimestamp(u, z).replace(tzinfo=None)
    # Wall times before p's own can still fire after p only when repeated by a
    # nearby backward transition: start at the earliest such interval.
    start = min([wall(p)] + [lo for lo, hi in irregular_walls(zone, z, p - 3 * 3600, p + 3 * 3600)])
    best = None
    for w in wall_matches(cexpr, day_or, start - datetime.timedelta(seconds=1)):
        for u in wall_instants(z, w, wildcard):
            if u > p and (best is None or u < best):
                best = u
        # Outside the skipped/repeated intervals, later wall times map to later instants.
        if best is not None and w > wall(best) and all(
                w >= hi for lo, hi in irregular_walls(zone, z, p - 3 * 3600, best + 3 * 3600)):
            return best
    return best


def croniter_next(cexpr, day_or, ptz, after_ms):
    """croniter's own answer with a pytz-aware start (only the C2 workaround)."""
    start = datetime.datetime.fromtimestamp(after_ms / 1000.0, ptz)
    best = None
    for e, d in or_variants(cexpr, day_or):
        try:
            c = int(cron_obj(e, d, True).get_next(float, start_time=start))
        except CroniterBadDateError:
            continue
        best = c if best is None else min(best, c)
    return best


# --------------------------------------------------------------------- check

def fmt(t, z):
    if t is None or t < 0:
        return str(t)
    return datetime.datetime.fromtimestamp(t, z).isoformat()


def check(case):
    try:
        return check1(case)
    except Exception as e:  # a croniter failure is reported as a mismatch, not a crash
        return {"cmp_a": 0, "cmp_b": 0, "d1": 0, "d2": 0, "d3": 0, "c1": 0, "never": 0, "d2_examples": [],
                "mismatches": ["%r %s after %s: exception %r" % (case[0], case[1], case[2], e)]}


def check1(case):
    expr, zone, start_ms, out = case
    z = zoneinfo.ZoneInfo(zone)
    ptz = pytz.timezone(zone)
    res = {"cmp_a": 0, "cmp_b": 0, "d1": 0, "d2": 0, "d3": 0, "c1": 0, "never": 0, "mismatches": [], "d2_examples": []}
    cexpr, day_or, wildcard, note = translate(expr)
    if note:
        res["d1"] = 1
    if out.startswith("ERR\t"):
        if "never fire" in out:
            found = []
            for e, d in or_variants(cexpr, day_or):
                try:
                    found.append(croniter(e, datetime.datetime(2024, 1, 1), day_or=d).get_next(datetime.datetime))
                except CroniterBadDateError:
                    pass
            if found:
                res["mismatches"].append("%r %s: jetsched says it never fires, croniter finds %s (%s)"
                                         % (expr, zone, min(found), out[4:]))
            else:
                res["never"] = 1
        else:
            res["mismatches"].append("%r %s: jetsched rejected a valid expression: %s" % (expr, zone, out[4:]))
        return res
    times = [int(x) for x in out[3:].split()]
    prev = start_ms
    for ours_ms in times:
        if ours_ms < 0:
            res["mismatches"].append("%r %s after %s: jetsched found no fire time" % (expr, zone, prev))
            break
        ours = ours_ms // 1000
        ref = reference_next(cexpr, day_or, wildcard, zone, z, prev)
        res["cmp_b"] += 1
        if ref != ours:
            res["mismatches"].append(
                "B %r %s after %s: jetsched %s, reference %s%s"
                % (expr, zone, fmt(prev // 1000, z), fmt(ours, z), fmt(ref, z), " (%s)" % note if note else ""))
        if max(prev // 1000, ours) >= PYTZ_LIMIT and zone != "UTC":
            res["d3"] += 1  # D3: pytz has no DST rules after 2037
        else:
            c = croniter_next(cexpr, day_or, ptz, prev)
            res["cmp_a"] += 1
            if c != ours:
                if c is not None and c > ours and ours == ref and has_long_dom(cexpr):
                    res["c1"] += 1  # C1: croniter skips days after a short month; verified against B
                elif c is not None and has_transition(zone, prev // 1000 - 3 * 3600, max(c, ours)) and ours == ref:
                    res["d2"] += 1  # D2: croniter's DST heuristic; verified against B
                    res["d2_examples"].append("%r %s after %s: jetsched %s, croniter %s"
                                              % (expr, zone, fmt(prev // 1000, z), fmt(ours, z), fmt(c, z)))
                else:
                    res["mismatches"].append(
                        "A %r %s after %s: jetsched %s, croniter %s, reference %s%s"
                        % (expr, zone, fmt(prev // 1000, z), fmt(ours, z), fmt(c, z), fmt(ref, z),
                           " (%s)" % note if note else ""))
        prev = ours_ms
    return res


def init_worker(trans):
    TRANSITIONS.update(trans)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--driver", required=True)
    ap.add_argument("--seed", type=int, default=int(os.environ.get("CRON_DIFF_SEED", "20250601")))
    ap.add_argument("--exprs", type=int, default=3000)
    ap.add_argument("--instants", type=int, default=4, help="start instants per expression")
    ap.add_argument("--show-d2", type=int, default=0, metavar="N", help="print N examples of D2 differences")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    args = ap.parse_args()
    t0 = time.time()
    r = random.Random(args.seed)
    print("croniter_diff: seed %d, %d expressions x %d start instants x %d next fire times"
          % (args.seed, args.exprs, args.instants, N_NEXT))
    trans = {zn: zone_transitions(zn) for zn in ZONES}
    TRANSITIONS.update(trans)
    lo = int(datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc).timestamp())
    hi = int(datetime.datetime(2031, 1, 1, tzinfo=datetime.timezone.utc).timestamp())
    far = [(int(datetime.datetime(y0, 1, 1, tzinfo=datetime.timezone.utc).timestamp()),
            int(datetime.datetime(y1, 1, 1, tzinfo=datetime.timezone.utc).timestamp()))
           for y0, y1 in ((2037, 2046), (2055, 2064))]
    cases = []
    for _ in range(args.exprs):
        expr = gen_expr(r)
        zone = r.choice(ZONES)
        for k in range(args.instants):
            # k = 0: anywhere in 2020-2030; k = 3: after 2037 (past the explicit TZif
            # transitions: the POSIX footer rules apply; checked by B only, D3);
            # otherwise within hours of a DST transition (30 h before to 3 h after).
            a, b = far[r.randint(0, 1)] if k == 3 else (lo, hi)
            tr = [t for t in trans[zone] if a <= t < b]
            if tr and k > 0 and (k != 3 or r.random() < 0.7):
                t = r.choice(tr) + r.randint(-30 * 3600, 3 * 3600)
            else:
                t = r.randint(a, b)
            kind = r.random()
            if kind < 0.3:
                ms = t * 1000 + r.randint(0, 999)
            elif kind < 0.6:
                ms = (t - t % 60) * 1000  # on a whole minute
            else:
                ms = t * 1000
            cases.append([expr, zone, ms])
    inp = "".join("cron\t%s\t%s\tdiff\t%d\t%d\n" % (e, zn, ms, N_NEXT) for e, zn, ms in cases)
    proc = subprocess.run([args.driver], input=inp, capture_output=True, text=True)
    if proc.returncode != 0:
        print("croniter_diff: driver failed (%d): %s" % (proc.returncode, proc.stderr[-2000:]))
        return 1
    lines = proc.stdout.splitlines()
    if len(lines) != len(cases):
        print("croniter_diff: driver printed %d lines for %d cases" % (len(lines), len(cases)))
        return 1
    work = [c + [l] for c, l in zip(cases, lines)]
    if args.jobs > 1:
        with multiprocessing.Pool(args.jobs, initializer=init_worker, initargs=(trans,)) as pool:
            results = pool.map(check, work, chunksize=64)
    else:
        results = [check(w) for w in work]
    tot = {k: sum(x[k] for x in results) for k in ("cmp_a", "cmp_b", "d1", "d2", "d3", "c1", "never")}
    mism = [m for x in results for m in x["mismatches"]]
    print("croniter_diff: %d cases; %d fire times compared with croniter (A), %d with the wall-clock "
          "reference (B); %d cases translated for the Vixie day rule (D1); %d A-differences at DST "
          "transitions verified by B (D2); %d A-comparisons skipped after 2037 (D3); %d A-differences from "
          "croniter's short-month bug verified by B (C1); %d never-firing expressions rejected by both; %.1f s"
          % (len(cases), tot["cmp_a"], tot["cmp_b"], tot["d1"], tot["d2"], tot["d3"], tot["c1"], tot["never"],
             time.time() - t0))
    if args.show_d2:
        print("croniter_diff: D2 examples:")
        for m in [m for x in results for m in x["d2_examples"]][:args.show_d2]:
            print("  " + m)
    if mism:
        print("croniter_diff: %d MISMATCHES (seed %d); first ones:" % (len(mism), args.seed))
        for m in mism[:15]:
            print("  " + m)
        return 1
    print("croniter_diff: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
