#!/usr/bin/env python3
"""stackcheck benchmarks (issue 6), measured side by side on this machine; prints each ratio
next to its goal, as the median of --runs runs.

(a) `stackcheck run suites/mt5.yaml` vs ci/bench/mt5-baseline.sh (the same promises by hand),
    alternating which goes first, warm cache for both (one unmeasured warm-up run each)
(b) three suites whose stacks claim nothing in common, at once (`--jobs 3`), vs the slowest of
    them alone
(c) from the engine's `health_status: unhealthy` event to stackcheck's FAIL line
    (ci/bench/unhealthy: a healthcheck that can never pass)
(d) `stackcheck validate suites/` wall time, and the harness's peak memory (max RSS over the
    validate and mt5 runs)
(e) (a) with `--health fast` (issue 19): every healthcheck polls each second
(f) each suite of suites/ cold and warm: cold = the images the suite builds removed and the
    BuildKit cache pruned (base images stay: they come from ci/images.sh), warm = the run right
    after; the whole run, and its bring-up (the longest state test: from `up` to the last
    service in its promised state)
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SC = str(ROOT / "target" / "release" / "stackcheck")
THREE = ["suites/keeper.yaml", "suites/peak-trade-mlflow.yaml", "suites/peak-trade-ops.yaml"]


def high_water_mb(pid):
    """VmHWM of the process itself (not of the compose/docker children it runs), or 0."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def measured(cmd, quiet=True):
    """Runs cmd from the repository root; returns (wall seconds, the process's own peak RSS in
    MB, exit code). The peak is VmHWM polled every 20 ms: a high-water mark only grows, so the
    last reading before exit is the peak up to the last 20 ms."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL if quiet else None,
                         stderr=subprocess.DEVNULL if quiet else None)
    peak = [0.0]
    done = threading.Event()

    def watch():
        while not done.wait(0.02):
            peak[0] = max(peak[0], high_water_mb(p.pid))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    p.wait()
    wall = time.perf_counter() - t0
    done.set()
    watcher.join()
    return wall, peak[0], p.returncode


def must(result, what):
    wall, _, code = result
    if code != 0:
        sys.exit(f"bench: {what} failed (exit {code}); run it alone to see why")
    return wall


def bench_a(runs, peaks, extra=(), tag="a"):
    ours_cmd = [SC, "run", "suites/mt5.yaml", *extra]
    must(measured(ours_cmd), "warm-up stackcheck mt5")
    must(measured(["bash", "ci/bench/mt5-baseline.sh"]), "warm-up baseline")
    ratios, ours, theirs = [], [], []
    for i in range(runs):
        order = [("sc", ours_cmd), ("sh", ["bash", "ci/bench/mt5-baseline.sh"])]
        if i % 2:
            order.reverse()
        got = {}
        for key, cmd in order:
            r = measured(cmd)
            got[key] = must(r, " ".join(cmd))
            if key == "sc":
                peaks.append(r[1])
        ours.append(got["sc"])
        theirs.append(got["sh"])
        ratios.append(got["sc"] / got["sh"])
        print(f"  ({tag}) run {i + 1}: stackcheck {got['sc']:.1f} s, shell {got['sh']:.1f} s", flush=True)
    return statistics.median(ratios), f"stackcheck {statistics.median(ours):.1f} s vs shell {statistics.median(theirs):.1f} s"


def bench_b(runs):
    ratios, detail = [], ""
    for i in range(runs):
        alone = {s: must(measured([SC, "run", s]), s) for s in THREE}
        together = must(measured([SC, "run", "--jobs", "3", *THREE]), "three at once")
        slowest = max(alone.values())
        ratios.append(together / slowest)
        detail = f"three at once {together:.1f} s vs slowest alone {slowest:.1f} s ({max(alone, key=alone.get)})"
        print(f"  (b) run {i + 1}: {detail}", flush=True)
    return statistics.median(ratios), ", ".join(Path(s).stem for s in THREE)


def bench_c(runs):
    delays = []
    for i in range(runs):
        events = subprocess.Popen(
            ["docker", "events", "--filter", "event=health_status",
             "--filter", "label=io.stackcheck.suite=bench-unhealthy",
             "--format", "{{.TimeNano}} {{.Status}}"],
            stdout=subprocess.PIPE, text=True)
        seen = []
        threading.Thread(target=lambda: seen.extend(events.stdout), daemon=True).start()
        time.sleep(0.5)  # let `docker events` subscribe before the stack starts
        run = subprocess.Popen([SC, "run", "ci/bench/unhealthy/suite.yaml"], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        failed_at = None
        for line in run.stdout:
            if line.startswith("FAIL") and "sicken::state" in line and failed_at is None:
                failed_at = time.time()
        run.wait()
        events.terminate()
        events.wait()
        unhealthy = [int(l.split()[0]) / 1e9 for l in seen if "unhealthy" in l]
        if failed_at is None or not unhealthy:
            sys.exit("bench: (c) saw no unhealthy event or no FAIL line")
        delays.append(failed_at - unhealthy[0])
        print(f"  (c) run {i + 1}: reported {delays[-1]:.2f} s after the engine marked it unhealthy", flush=True)
    return statistics.median(delays)


def run_report(suite):
    """One `stackcheck run` of `suite` with a JSON report: (wall s, report)."""
    out = Path("/tmp") / f"bench-f-{os.getpid()}.json"
    wall = must(measured([SC, "run", suite, "--json", str(out)]), f"run {suite}")
    return wall, json.loads(out.read_text())


def bring_up(report):
    """Seconds from `up` to the last service in its promised state."""
    states = [t["duration_ms"] for s in report["suites"] for t in s["tests"]
              if t["check"].startswith("service::") and t["check"].endswith("::state")]
    return max(states, default=0) / 1000


def bench_f(runs, pattern):
    rows = []
    for suite in sorted(str(p.relative_to(ROOT)) for p in ROOT.glob(pattern)):
        _, report = run_report(suite)
        built = sorted({i["image"] for s in report["suites"] for i in s.get("images", []) if i.get("built")})
        cold, warm, up_cold, up_warm = [], [], [], []
        for i in range(runs):
            if built:
                subprocess.run(["docker", "rmi", "-f", *built], capture_output=True)
            subprocess.run(["docker", "builder", "prune", "-af"], capture_output=True)
            wall, report = run_report(suite)
            cold.append(wall)
            up_cold.append(bring_up(report))
            wall, report = run_report(suite)
            warm.append(wall)
            up_warm.append(bring_up(report))
            print(f"  (f) {suite} run {i + 1}: cold {cold[-1]:.1f} s (bring-up {up_cold[-1]:.1f} s), "
                  f"warm {warm[-1]:.1f} s (bring-up {up_warm[-1]:.1f} s)", flush=True)
        m = statistics.median
        rows.append(f"(f) {Path(suite).stem}: cold {m(cold):.1f} s, warm {m(warm):.1f} s; bring-up cold "
                    f"{m(up_cold):.1f} s, warm {m(up_warm):.1f} s; builds {len(built)} image(s)")
    return rows


def bench_d(runs, peaks):
    walls = []
    for _ in range(runs):
        r = measured([SC, "validate", "suites/"])
        walls.append(must(r, "validate suites/"))
        peaks.append(r[1])
    return statistics.median(walls) * 1000


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--only", default="abcdef", help="which benchmarks, e.g. cd")
    ap.add_argument("--suites", default="suites/*.yaml", help="which suites (f) measures, a glob")
    args = ap.parse_args()
    peaks, rows = [], []
    if "d" in args.only:
        ms = bench_d(args.runs, peaks)
        rows.append(f"(d) validate suites/: {ms:.0f} ms (goal <= 120 ms)")
    if "c" in args.only:
        s = bench_c(args.runs)
        rows.append(f"(c) unhealthy -> failure report: {s:.2f} s (goal <= 2 s)")
    if "a" in args.only:
        ratio, detail = bench_a(args.runs, peaks)
        rows.append(f"(a) mt5 stackcheck / shell baseline: {ratio:.2f} (goal <= 0.85) [{detail}]")
    if "e" in args.only:
        ratio, detail = bench_a(args.runs, peaks, ["--health", "fast"], "e")
        rows.append(f"(e) mt5 --health fast / shell baseline: {ratio:.2f} (goal <= 0.35) [{detail}]")
    if "b" in args.only:
        ratio, which = bench_b(args.runs)
        rows.append(f"(b) three suites at once / slowest alone: {ratio:.2f} (goal <= 1.5) [{which}]")
    if "f" in args.only:
        rows.extend(bench_f(args.runs, args.suites))
    if peaks:
        rows.append(f"(d) harness peak memory: {max(peaks):.0f} MB (goal <= 50 MB)")
    print(f"\nmedians of {args.runs} runs:")
    for r in rows:
        print("  " + r)


if __name__ == "__main__":
    main()
