"""Figures for the rights estimator (not a test): load time, memory, one household, batches, loop lag.

    python bench/bench_rights.py [--month 2025-11] [--batch 1000] [--no-loop]

Prints the figures quoted in docs/rights.md. Run it on a quiet machine: the timings are wall clock.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import gc
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.rights.households import HOUSEHOLDS  # noqa: E402


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def varied_households(count: int, seed: int = 1) -> list[dict]:
    """`count` payloads: the test households with incomes and rents shaken a little."""
    rng = random.Random(seed)
    base = list(HOUSEHOLDS.values())
    payloads = []
    for index in range(count):
        payload = copy.deepcopy(base[index % len(base)])
        for key in ("resources", "partner_resources"):
            for kind, amount in list(payload.get(key, {}).items()):
                if amount:
                    payload[key][kind] = round(amount * rng.uniform(0.8, 1.2), 2)
        if payload.get("rent"):
            payload["rent"] = round(payload["rent"] * rng.uniform(0.8, 1.2), 2)
        payloads.append(payload)
    return payloads


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


async def loop_lag(mode: str, month: str, payloads: list[dict]) -> dict:
    from rights.estimator import RightsEstimator

    estimator = RightsEstimator(mode=mode, month=month)
    estimator.start_loading()
    await estimator.wait_ready()
    lags: list[float] = []
    done = asyncio.Event()

    async def ticker():
        while not done.is_set():
            before = time.perf_counter()
            await asyncio.sleep(0.01)
            lags.append(time.perf_counter() - before - 0.01)

    task = asyncio.create_task(ticker())
    started = time.perf_counter()
    for payload in payloads:
        await estimator.estimate(payload)
    elapsed = time.perf_counter() - started
    done.set()
    await task
    estimator.close()
    return {"max": max(lags), "p99": percentile(lags, 0.99), "median": statistics.median(lags),
            "estimates_s": elapsed / len(payloads)}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--month", default="2025-11")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3, help="runs per household for the single figures")
    parser.add_argument("--no-loop", action="store_true", help="skip the event-loop lag comparison")
    args = parser.parse_args()

    print(f"RSS before OpenFisca: {rss_mb():.0f} MB")
    started = time.perf_counter()
    from rights import worker
    from rights.answers import Answers
    from rights.engine import compute_naive
    from rights.mapping import Reference, map_answers

    systems = worker.systems()
    print(f"load: import + FranceTaxBenefitSystem + reform: {time.perf_counter() - started:.1f} s "
          f"(system alone {systems.load_seconds:.1f} s); RSS {rss_mb():.0f} MB")
    timings = worker.load(warm_up=True, month=args.month)
    print(f"warm-up (2 batches, 6 households): {timings['warm_up_seconds']:.1f} s; RSS {rss_mb():.0f} MB")

    per_household, every_run = {}, []
    for name, payload in HOUSEHOLDS.items():
        runs = []
        for _ in range(args.runs):
            gc.collect()
            before = time.perf_counter()
            worker.run_batch([payload], args.month)
            runs.append(time.perf_counter() - before)
        per_household[name] = statistics.median(runs)
        every_run.extend(runs)
    medians = list(per_household.values())
    print(f"one household, fast path, answers -> result dict ({len(HOUSEHOLDS)} households x {args.runs} runs):")
    print(f"  median of per-household medians {statistics.median(medians):.2f} s, "
          f"p90 {percentile(medians, 0.9):.2f} s, mean {statistics.mean(medians):.2f} s; "
          f"all runs median {statistics.median(every_run):.2f} s p90 {percentile(every_run, 0.9):.2f} s")
    slowest = sorted(per_household.items(), key=lambda item: -item[1])[:3]
    print("  slowest: " + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in slowest))
    print(f"  RSS {rss_mb():.0f} MB")

    reference = Reference.parse(args.month)
    household = map_answers(Answers.model_validate(HOUSEHOLDS["single_parent_paris_low_wage"]), reference)
    compute_naive(systems, household, reference)  # first naive run fills the base system's caches
    gc.collect()
    before = time.perf_counter()
    compute_naive(systems, household, reference)
    naive = time.perf_counter() - before
    print(f"naive path, warm (single_parent_paris_low_wage): {naive:.2f} s "
          f"(fast: {per_household['single_parent_paris_low_wage']:.2f} s)")

    worker.run_batch(varied_households(10, seed=2), args.month)  # untimed: first mixed batch
    for size in (10, 100, args.batch):
        payloads = varied_households(size)
        gc.collect()
        before = time.perf_counter()
        results, simulations = worker.run_batch(payloads, args.month)
        elapsed = time.perf_counter() - before
        print(f"batch of {size}: {elapsed:.2f} s in {simulations} simulation(s), "
              f"{size / elapsed:.0f} households/s, {elapsed / size * 1000:.1f} ms each; RSS {rss_mb():.0f} MB")

    if not args.no_loop:
        payloads = list(HOUSEHOLDS.values())[:10]
        for mode in ("process", "thread"):
            figures = asyncio.run(loop_lag(mode, args.month, payloads))
            print(f"event loop while estimating ({mode}): tick delay median {figures['median'] * 1000:.1f} ms, "
                  f"p99 {figures['p99'] * 1000:.0f} ms, max {figures['max'] * 1000:.0f} ms; "
                  f"{figures['estimates_s']:.2f} s per estimate")
    return 0


if __name__ == "__main__":
    sys.exit(main())
