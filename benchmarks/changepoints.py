"""How often the regression search is wrong, on simulated series (no database).

`datacat_server.queries.changepoint.latest_slowdown` on series of call durations drawn
with a seeded generator:

- **false alarms**: stationary series (uniform jitter of ±``spread`` around 1 s, and a
  share of runs twice as slow, "spikes"), 200 runs each: how many are flagged;
- **found**: a 2x slowdown with ±10 % jitter, and with ±40 % jitter and 5 % spikes,
  landing ``age`` runs before the end of a 200-run series: how often it is found at its
  run (±1);
- a 10-run window whose slowdown landed 8 runs ago (two runs before it).

    python benchmarks/changepoints.py [--series 3000] [--found 200] [--max-p 1e-4]

The figures in `changepoint.py`'s docstring come from this script with its defaults.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from datacat_server.queries.changepoint import latest_slowdown

RUNS = 200
AGES = (2, 3, 4, 5, 8, 10, 20, 100, 190, 195, 197, 198)


def series(rng: random.Random, n: int, spread: float, spikes: float) -> list[float]:
    return [
        rng.uniform(1 - spread, 1 + spread) * (2.0 if rng.random() < spikes else 1.0)
        for _ in range(n)
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--series", type=int, default=3000, help="stationary series per model")
    parser.add_argument("--found", type=int, default=200, help="series per slowdown age")
    parser.add_argument("--max-p", type=float, default=1e-4)
    args = parser.parse_args()

    def flagged(durations: list[float]) -> int | None:
        shift = latest_slowdown(durations, threshold=1.5, min_seconds=0.0, max_p=args.max_p)
        return None if shift is None else shift.index

    print(f"false alarms in {args.series:,} stationary series of {RUNS} runs:")
    for spread, spikes in ((0.02, 0.05), (0.1, 0.05), (0.1, 0.1), (0.4, 0.05), (0.4, 0.1)):
        rng = random.Random(1)
        alarms = sum(
            flagged(series(rng, RUNS, spread, spikes)) is not None for _ in range(args.series)
        )
        print(f"  jitter ±{spread:.0%}, {spikes:.0%} spikes: {alarms}")

    print(f"\na 2x slowdown found at its run (±1), share of {args.found} series, by age in runs:")
    print(f"  {'age':14}" + "".join(f"{age:>6}" for age in AGES))
    for spread, spikes in ((0.1, 0.0), (0.4, 0.05)):
        shares = []
        for age in AGES:
            rng = random.Random(age)
            hits = 0
            for _ in range(args.found):
                durations = series(rng, RUNS, spread, spikes)
                for i in range(RUNS - age, RUNS):
                    durations[i] *= 2
                at = flagged(durations)
                hits += at is not None and abs(at - (RUNS - age)) <= 1
            shares.append(hits / args.found)
        label = f"±{spread:.0%}" + (f", {spikes:.0%} spikes" if spikes else "")
        print(f"  {label:14}" + "".join(f"{s:6.2f}" for s in shares))

    print("\n10 runs, slowed 8 runs ago, found at its run:")
    for spread in (0.02, 0.05, 0.1):
        rng = random.Random(5)
        hits = 0
        for _ in range(args.found):
            durations = series(rng, 10, spread, 0.0)
            for i in range(2, 10):
                durations[i] *= 2
            hits += flagged(durations) == 2
        print(f"  jitter ±{spread:.0%}: {hits / args.found:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
