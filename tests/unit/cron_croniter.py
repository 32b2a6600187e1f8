#!/usr/bin/env python3
"""Issue 14, item 1: jobbridge's next-fire function against Debian's python3-croniter over
12,000 random expressions and instants, in zones without DST changes (UTC, Asia/Kolkata,
Asia/Tokyo), so both must agree exactly. Expressions keep to the syntax both read the same way:
day-of-month and day-of-week are never both restricted with one starting with `*` (croniter
reads "*/2" as a restriction, Vixie cron as `*`).

usage: cron_croniter.py JB_CRON_NEXT_BINARY
"""
import datetime
import random
import subprocess
import sys
import zoneinfo

from croniter import croniter, CroniterBadDateError

N = 12000
rng = random.Random(14)


def field(lo, hi, names=None):
    kind = rng.random()
    if kind < 0.3:
        return "*"
    if kind < 0.45:
        return f"*/{rng.randint(1, hi - lo + 1)}"
    if kind < 0.6:
        a = rng.randint(lo, hi)
        b = rng.randint(a, hi)
        return f"{a}-{b}" + (f"/{rng.randint(1, 5)}" if rng.random() < 0.4 else "")
    if kind < 0.7 and names:
        return ",".join(sorted({names[rng.randint(0, len(names) - 1)] for _ in range(2)}))
    return ",".join(str(v) for v in sorted({rng.randint(lo, hi) for _ in range(rng.randint(1, 3))}))


def expression():
    dom = field(1, 28) if rng.random() < 0.8 else field(1, 31)
    if dom.startswith("*/"):  # croniter skips the 1st after a short month ("*/15": Mar 1)
        dom = "*"
    dow = field(0, 6, ["sun", "mon", "tue", "wed", "thu", "fri", "sat"])
    if dow.split("/")[0] == "0-6":  # croniter reads a full range as `*`, cron as a restriction
        dow = "*"
    if dom != "*" and dow != "*" and (dom.startswith("*") or dow.startswith("*")):
        dow = "*"
    parts = [field(0, 59), field(0, 23), dom,
             field(1, 12, ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct",
                           "nov", "dec"]), dow]
    if rng.random() < 0.3:
        parts.append(field(0, 59))
    return " ".join(parts)


def main():
    zones = ["UTC", "Asia/Kolkata", "Asia/Tokyo"]
    cases = []
    for i in range(N):
        zone = zones[i % 3]
        after = rng.randint(1577836800, 2145916800)  # 2020 .. 2038
        cases.append((zone, expression(), after))
    cases.sort(key=lambda c: c[0])
    text = "".join(f"{z}\t{e}\t{a}\n" for z, e, a in cases)
    out = subprocess.run([sys.argv[1]], input=text, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr
    got = out.stdout.splitlines()
    assert len(got) == N, f"{len(got)} answers for {N} cases"
    bad = impossible = 0
    for (zone, expr, after), ours in zip(cases, got):
        start = datetime.datetime.fromtimestamp(after, zoneinfo.ZoneInfo(zone))
        try:
            theirs = int(croniter(expr, start).get_next(float))
        except CroniterBadDateError:  # croniter gives up ("0 0 30 2 *"): not compared
            impossible += 1
            continue
        if ours != str(theirs):
            bad += 1
            if bad <= 10:
                print(f"MISMATCH {zone} '{expr}' after {after}: ours {ours}, croniter {theirs}")
    print(f"{N} cases ({impossible} croniter gives up on, not compared), {bad} mismatches")
    sys.exit(1 if bad or N - impossible < 10000 else 0)


main()
