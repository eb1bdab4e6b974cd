"""Make the demo's example data: salaries by job category at three employers.

Each provider (a participant of the dataspace) holds its own employees' records; none may
see the others'. The chain's MPC step computes only the agreed aggregates across all three.
The records carry no names or e-mail addresses: an opaque employee reference, a job
category, a yearly gross salary in euros, years of experience and weekly hours.

    python examples/data/make_salaries.py            # rewrites examples/data/*.json
    python examples/data/make_salaries.py --rows 5000 --out /tmp/salaries

Deterministic (seeded), so the bundled files are reproducible.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

CATEGORIES = {
    # category: (median salary, spread)
    "engineer": (58_000, 9_000),
    "nurse": (41_000, 5_000),
    "teacher": (43_000, 6_000),
    "technician": (39_000, 5_500),
    "analyst": (52_000, 8_000),
}
PROVIDERS = {
    "hospital-north": {"nurse": 0.55, "technician": 0.2, "analyst": 0.1, "engineer": 0.15},
    "school-district": {"teacher": 0.7, "technician": 0.15, "analyst": 0.15},
    "engineering-firm": {"engineer": 0.6, "analyst": 0.25, "technician": 0.15},
}


def make_rows(provider: str, rows: int, rng: random.Random) -> list[dict[str, object]]:
    """Rows of one provider, with its own mix of categories."""
    mix = PROVIDERS[provider]
    names, weights = list(mix), list(mix.values())
    out = []
    for n in range(rows):
        category = rng.choices(names, weights)[0]
        median, spread = CATEGORIES[category]
        years = rng.randint(0, 35)
        salary = int(rng.gauss(median + 600 * years, spread))
        out.append(
            {
                "employee": f"{provider[:3]}-{n:05d}",
                "category": category,
                "salary": max(salary, 21_000),
                "years": years,
                "hours": rng.choice([20, 28, 32, 35, 38, 40]),
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=120, help="rows per provider")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    for provider in PROVIDERS:
        path = args.out / f"{provider}.json"
        path.write_text(json.dumps(make_rows(provider, args.rows, rng), indent=1) + "\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
