"""Helpers the benchmark scripts share: timing statistics, machine description, writing results."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Callable, Dict, List

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def percentiles_ms(samples_s: List[float]) -> Dict[str, float]:
    ordered = sorted(samples_s)

    def pick(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)

    return {"p50": pick(0.50), "p95": pick(0.95), "mean": round(statistics.fmean(ordered) * 1000, 1),
            "n": len(ordered)}


def time_calls(call: Callable[[int], Any], n: int, label: str) -> List[float]:
    """Run call(i) n times, return the wall time of each; prints progress every 25 calls."""
    samples = []
    for i in range(n):
        start = time.perf_counter()
        call(i)
        samples.append(time.perf_counter() - start)
        if (i + 1) % 25 == 0 or i + 1 == n:
            print(f"  {label}: {i + 1}/{n}", flush=True)
    return samples


def machine() -> Dict[str, Any]:
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}


def timestamp() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def read_tsv(path: Path) -> List[Dict[str, str]]:
    """A tab-separated data file of bench/data/: '#' lines are provenance, then a header row, then one row a line."""
    import csv

    rows = [line for line in path.read_text(encoding="utf-8").splitlines() if line and not line.startswith("#")]
    return list(csv.DictReader(rows, delimiter="\t", quoting=csv.QUOTE_NONE))


def configuration(config_file: Path) -> Dict[str, Any]:
    """What a benchmark ran, read from the Rasa config it used (never a fixed label): file, pipeline, policies."""
    import yaml

    config = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    return {"file": config_file.name,
            "pipeline": [step["name"].rsplit(".", 1)[-1] for step in config.get("pipeline") or []],
            "policies": [step["name"] for step in config.get("policies") or []]}


def write_results(name: str, results: Dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    results = {"benchmark": name, "measured_at": timestamp(),
               "machine": machine(), **results}
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {path}")
    return path
