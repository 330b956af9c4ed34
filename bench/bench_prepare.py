#!/usr/bin/env python3
"""Benchmark prepare_training_data.py on a synthetic 1M-message WhatsApp export, against chat-miner.

    python bench/bench_prepare.py                      # 1M messages, 1 run each
    python bench/bench_prepare.py --messages 200000 --runs 3

Builds (once, cached in bench/.cache/) a WhatsApp Android export with real chit-chat texts drawn
from training_data/sample_chat, a group of six people, bursts, long silences, media placeholders and
a sprinkling of phone numbers and URLs. Then times, as whole processes:

  ours:       python prepare_training_data.py big.txt --me X --out <tmp>   (the whole pipeline)
  chat-miner: WhatsAppParser(big.txt).parse_file()                         (parsing only)

and reports wall and CPU seconds, messages/s and peak RSS of each (os.wait4 rusage of that child),
and the ratios. On a shared machine quote the CPU seconds and the ratios; wall time depends on load. chat-miner (MIT, `pip install chat-miner`) is run from bench/.cache/venv when it exists, so it
never touches the main environment:

    python -m venv --system-site-packages bench/.cache/venv && bench/.cache/venv/bin/pip install chat-miner

    python bench/bench_prepare.py --shape busy_group    # one busy group chat: 4 people, one session

Goal: ours <= 20 s and <= 1 GB RSS for 1M messages, and >= 3x faster than chat-miner; for the
busy_group shape (the memory case of issue 12): <= 600 MiB peak RSS and >= 7x chat-miner.
Results also go to bench/results/prepare.json (prepare_busy_group.json for that shape).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from graftkit.messages import Message  # noqa: E402
from graftkit.parsers import parse_input  # noqa: E402
from graftkit.parsers.whatsapp import format_whatsapp  # noqa: E402

CACHE = ROOT / "bench" / ".cache"
RESULTS = ROOT / "bench" / "results"
PEOPLE = ["X", "Ana", "Ben", "Chloé", "Dev", "Emi 🌸"]
EXTRAS = ["call me on +44 7700 900123", "see https://example.com/p/{n}", "mail x{n}@example.org",
          "meet at 12:30 on 31/12", "it was 2023 or so", "<Media omitted>", "This message was deleted"]


def build_export(n: int, style: str, seed: int, shape: str = "mixed") -> Path:
    """Write (or reuse) a synthetic export of n messages; returns its path.

    shape "mixed": six people, bursts and long silences (many sessions). "busy_group": one busy group
    of four people that never falls silent for long (one session of n messages), the shape that
    used to hold every message and sample in memory at once.
    """
    path = CACHE / f"whatsapp_{style}_{shape}_{n}_{seed}.txt"
    if path.exists():
        return path
    texts = [m.text for m in parse_input(ROOT / "training_data" / "sample_chat").messages
             if m.text and not m.media and ": " not in m.text]
    rng = random.Random(seed)
    t = datetime(2021, 1, 1, 8, 0)
    msgs: list[Message] = []
    sender = "X"
    people = PEOPLE if shape == "mixed" else PEOPLE[:4]
    for i in range(n):
        r = rng.random()
        if shape == "busy_group":
            t += timedelta(seconds=rng.randint(0, 120))
        elif r < 0.002:
            t += timedelta(hours=rng.randint(7, 40))  # a long silence: new session
        elif r < 0.6:
            t += timedelta(seconds=rng.randint(0, 90))
        else:
            t += timedelta(minutes=rng.randint(1, 20))
        if rng.random() < 0.45:  # 55 %: the same sender keeps typing (a burst)
            sender = rng.choice(people)
        text = rng.choice(texts) if rng.random() > 0.02 else rng.choice(EXTRAS).format(n=i)
        msgs.append(Message(sender, text, t.strftime("%Y-%m-%dT%H:%M:%S")))
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(format_whatsapp(msgs, style=style), encoding="utf-8")
    tmp.replace(path)
    return path


def run_timed(cmd: list[str], timeout: float) -> dict:
    """Run cmd once; wall seconds and peak RSS (MiB) of that process tree's largest member."""
    errf = tempfile.TemporaryFile()  # not a pipe: a chatty child (tqdm) must not block on a full pipe
    start = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=errf, stdin=subprocess.DEVNULL)
    deadline = start + timeout
    while True:
        pid, status, usage = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            p.kill()
            pid, status, usage = os.wait4(p.pid, 0)
            break
        time.sleep(0.02)
    wall = time.perf_counter() - start
    errf.seek(0)
    err = errf.read().decode(errors="replace")[-2000:]
    errf.close()
    rc = os.waitstatus_to_exitcode(status)
    p.returncode = rc  # reaped by wait4 above
    return {"wall_s": wall, "user_s": usage.ru_utime, "sys_s": usage.ru_stime,
            "peak_rss_mib": usage.ru_maxrss / 1024, "rc": rc, "stderr_tail": err.strip().splitlines()[-1:]}


def chatminer_python() -> str | None:
    for py in (CACHE / "venv" / "bin" / "python", Path(sys.executable)):
        if py.exists() and subprocess.run([str(py), "-c", "import chatminer.chatparsers"],
                                          capture_output=True).returncode == 0:
            return str(py)
    return None


def summarize(runs: list[dict], n: int) -> dict:
    walls = [r["wall_s"] for r in runs]
    med = statistics.median(walls)
    cpu = statistics.median(r["user_s"] + r["sys_s"] for r in runs)
    return {"runs": runs, "wall_s_median": med, "wall_s_min": min(walls), "wall_s_max": max(walls),
            "cpu_s_median": cpu,
            "msgs_per_s": n / med, "peak_rss_mib": max(r["peak_rss_mib"] for r in runs),
            "ok": all(r["rc"] == 0 for r in runs)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=1_000_000, help="messages in the synthetic export")
    ap.add_argument("--style", default="android_24h", help="format_whatsapp style")
    ap.add_argument("--runs", type=int, default=1, help="timed runs of each command (median is reported)")
    ap.add_argument("--shape", choices=("mixed", "busy_group"), default="mixed",
                    help="mixed: 6 people, many sessions; busy_group: 4 people, one long session (memory case)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the synthetic export")
    ap.add_argument("--no-chatminer", action="store_true", help="time only prepare_training_data.py")
    ap.add_argument("--timeout", type=float, default=900, help="seconds before a run is killed")
    args = ap.parse_args()

    t0 = time.perf_counter()
    export = build_export(args.messages, args.style, args.seed, args.shape)
    print(f"export: {export} ({export.stat().st_size / 2**20:.0f} MiB, built/reused in "
          f"{time.perf_counter() - t0:.1f} s)", flush=True)

    results: dict = {"messages": args.messages, "style": args.style, "shape": args.shape, "export_bytes": export.stat().st_size,
                     "python": platform.python_version(), "cpus": os.cpu_count(),
                     "date": datetime.now().isoformat(timespec="seconds")}
    with tempfile.TemporaryDirectory(prefix="bench-prepare-") as out:
        ours_cmd = [sys.executable, str(ROOT / "prepare_training_data.py"), str(export), "--me", "X", "--out", out]
        runs = [run_timed(ours_cmd, args.timeout) for _ in range(args.runs)]
        results["ours"] = summarize(runs, args.messages)
        if not results["ours"]["ok"]:
            print("prepare_training_data.py failed:", runs[-1]["stderr_tail"], file=sys.stderr)
        stats = json.loads((Path(out) / "stats.json").read_text()) if (Path(out) / "stats.json").exists() else {}
        results["ours"]["samples"] = stats.get("samples", {}).get("total")
        results["ours"]["sessions"] = stats.get("sessions", {}).get("total")

    py = None if args.no_chatminer else chatminer_python()
    if py:
        cm_cmd = [py, "-c", "import sys, logging; logging.disable(logging.CRITICAL); "
                            "from chatminer.chatparsers import WhatsAppParser; "
                            "p = WhatsAppParser(sys.argv[1]); p.parse_file(); "
                            "assert len(p.parsed_messages.get_df()) > 0", str(export)]
        runs = [run_timed(cm_cmd, args.timeout) for _ in range(args.runs)]
        results["chatminer"] = summarize(runs, args.messages)
        results["speedup_vs_chatminer"] = results["chatminer"]["wall_s_median"] / results["ours"]["wall_s_median"]
    elif not args.no_chatminer:
        print("chat-miner not found: install it into bench/.cache/venv (see --help); timing ours only")

    rows = [("prepare_training_data.py (whole pipeline)", results["ours"])]
    if "chatminer" in results:
        rows.append(("chat-miner WhatsAppParser (parse only)", results["chatminer"]))
    print(f"\n{'command':<44} {'wall s':>8} {'cpu s':>7} {'msgs/s':>10} {'peak RSS':>10}  ok")
    for name, r in rows:
        print(f"{name:<44} {r['wall_s_median']:>8.2f} {r['cpu_s_median']:>7.2f} {r['msgs_per_s']:>10,.0f} "
              f"{r['peak_rss_mib']:>7.0f} MiB  {'yes' if r['ok'] else 'NO'}")
    if "speedup_vs_chatminer" in results:
        results["cpu_speedup_vs_chatminer"] = results["chatminer"]["cpu_s_median"] / results["ours"]["cpu_s_median"]
        print(f"speed-up vs chat-miner: {results['speedup_vs_chatminer']:.1f}x wall, "
              f"{results['cpu_speedup_vs_chatminer']:.1f}x cpu (goal >= 3x)")
    print(f"goal for ours: <= 20 s, <= 1024 MiB for 1M messages; samples {results['ours'].get('samples')}, "
          f"sessions {results['ours'].get('sessions')}")
    out_json = RESULTS / ("prepare.json" if args.shape == "mixed" else f"prepare_{args.shape}.json")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out_json.relative_to(ROOT)}")
    return 0 if results["ours"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
