"""The project as it was at an earlier commit, checked out and trained beside the current one, so that a benchmark
can compare before and after in one run on the same machine.

`prepare(ref)` checks the commit out under var/bench/before-<sha> (a git worktree, no copy of .venv: the current
environment runs it) and trains its model there once; later runs reuse both. `environment(tree)` is what its
processes need to import the old code instead of the current one.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Dict

from shop.servers import RASA
from shop.settings import PROJECT_ROOT

WORK = PROJECT_ROOT / "var" / "bench"


@dataclass(frozen=True)
class Before:
    ref: str
    sha: str
    tree: Path
    model: Path

    def environment(self) -> Dict[str, str]:
        """Run the old tree's code and read its shop.yml; the database is its own (var/ of that tree)."""
        env = {key: value for key, value in os.environ.items() if key not in ("SHOP_CONFIG", "DATABASE_URL")}
        env["PYTHONPATH"] = str(self.tree)
        return env


def resolve(ref: str) -> str:
    return subprocess.run(["git", "rev-parse", "--verify", f"{ref}^{{commit}}"], cwd=PROJECT_ROOT, check=True,
                          capture_output=True, text=True).stdout.strip()


def prepare(ref: str) -> Before:
    """The tree and trained model of `ref`, made on first use (training takes a few minutes; its log is
    var/bench/before-<sha>/var/log/train.log)."""
    sha = resolve(ref)
    tree = WORK / f"before-{sha[:10]}"
    if not (tree / "config.yml").exists():
        WORK.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "worktree", "prune"], cwd=PROJECT_ROOT, check=True)
        subprocess.run(["git", "worktree", "add", "--detach", "--force", str(tree), sha], cwd=PROJECT_ROOT, check=True,
                       capture_output=True)
    model = tree / "models" / "shop.tar.gz"
    before = Before(ref=ref, sha=sha, tree=tree, model=model)
    if not model.exists():
        print(f"before: training the model of {ref} ({sha[:10]}) in {tree} (a few minutes)", flush=True)
        (tree / "var" / "log").mkdir(parents=True, exist_ok=True)
        with (tree / "var" / "log" / "train.log").open("w") as log:
            subprocess.run(
                [RASA, "train", "--config", "config.yml", "--domain", "domain.yml", "--data", "data/nlu.yml",
                 "data/rules.yml", "data/stories.yml", "--out", "models", "--fixed-model-name", "shop", "--force"],
                cwd=tree, env=before.environment(), check=True, stdout=log, stderr=subprocess.STDOUT)
    return before
