"""Renders bench/results/*.json as the README's benchmark table (between the BENCHMARKS markers)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Dict, List

from bench.common import RESULTS_DIR

README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- BENCHMARKS:START -->", "<!-- BENCHMARKS:END -->"


def ms(stats: Dict) -> str:
    return f"{stats['p50']} / {stats['p95']} ms"


def foundation_rows(r: Dict) -> List[str]:
    turns = r["rest_turn_ms"]
    rows = [
        ("`rasa train` (forced, stock config)", f"{r['rasa_train_s']} s" if "rasa_train_s" in r else "not measured"),
        ("both servers started, model loaded", f"{r['servers_ready_s']} s"),
        ("`/model/parse` p50 / p95", ms(r["parse_ms"])),
        ("REST turn, no action call, p50 / p95", ms(turns["no_action_call"])),
        ("REST turn calling the action server, p50 / p95", ms(turns["one_action_call"])),
        ("REST turn with form validation + database lookup, p50 / p95", ms(turns["form_validation_and_db"])),
        ("resident memory: Rasa server / action server",
         f"{r['rss_mib']['rasa']:.0f} MiB / {r['rss_mib']['actions']:.0f} MiB"),
    ]
    target = r["target"]
    verdict = "met" if target["met"] else "NOT met"
    lines = [f"**Foundation** (`python -m bench.foundation`, {r['machine']['cpus']} CPUs, {r['measured_at']})", "",
             "| measure | value |", "| --- | --- |"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    lines += ["", f"Target: a REST turn that calls the action server has p50 under "
                  f"{target['rest_turn_with_action_p50_ms']} ms: {verdict} ({target['measured_p50_ms']} ms)."]
    return lines


RENDERERS = {"foundation": foundation_rows}


def render() -> str:
    blocks = []
    for name, renderer in RENDERERS.items():
        path = RESULTS_DIR / f"{name}.json"
        if path.exists():
            blocks.append("\n".join(renderer(json.loads(path.read_text()))))
        else:
            blocks.append(f"*{name}: no results yet; run `./bench/run_all.sh`.*")
    return "\n\n".join(blocks)


def main() -> None:
    text = README.read_text()
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise SystemExit(f"{README} has no {START} ... {END} block")
    README.write_text(pattern.sub(f"{START}\n{render()}\n{END}", text))
    print(f"updated the benchmark table in {README}")


if __name__ == "__main__":
    main()
