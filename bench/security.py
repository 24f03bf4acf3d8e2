"""The attack suite's figures: runs tests/security with pytest and gathers what its tests recorded.

    python -m bench.security [-- extra pytest arguments]

The tests write what they measured to var/security/*.json (tests/security/support.py `record`): attack messages
by kind and the leaks found at each layer (the generator's prompt and checks with a worst-case model, the skills,
the real REST channel), fuzzed requests per channel with their 5xx and lost messages (in process and against the
real servers), the web chat in Chromium. This script clears those files, runs the suite, and writes
bench/results/security.json with the figures, the pytest outcome (including the known problems, which the suite
marks as strict xfails with their reasons), and the configuration it ran with. var/security/enumeration.json
(the enumeration run, tests/security/test_enumeration.py) is included when present.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any, Dict, List, Optional

from bench.common import write_results
from shop.settings import PROJECT_ROOT

FIGURES_DIR = PROJECT_ROOT / "var" / "security"
SUITE = "tests/security"


def run_suite(extra: List[str]) -> Dict[str, Any]:
    """pytest over tests/security; its outcome per test from the JUnit report."""
    FIGURES_DIR.mkdir(parents=True, exist_ok=True)
    for stale in FIGURES_DIR.glob("*.json"):
        stale.unlink()
    junit = FIGURES_DIR / "junit.xml"
    started = time.monotonic()
    command = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", SUITE, f"--junitxml={junit}",
               *extra]
    # under scripts/env.sh, like test.sh: its request size limit is what the suite checks (without it, oversized
    # socket.io posts are held for Sanic's 60 s timeout and the fuzzing takes hours)
    completed = subprocess.run(["bash", "-c", 'source scripts/env.sh && exec "$@"', "env.sh", *command],
                               cwd=PROJECT_ROOT, check=False, env={**os.environ, "SECURITY_E2E": "1"})
    outcome = parse_junit(junit)
    outcome.update({"command": " ".join(["python", *command[1:]]), "exit_code": completed.returncode,
                    "seconds": round(time.monotonic() - started, 1)})
    return outcome


def parse_junit(path: Path) -> Dict[str, Any]:
    if not path.exists():
        return {"tests": 0, "note": "pytest wrote no report"}
    counts = {"passed": 0, "failed": 0, "skipped": 0, "xfailed": 0}
    known: List[Dict[str, str]] = []
    skipped: List[Dict[str, str]] = []
    failed: List[Dict[str, str]] = []
    for case in ElementTree.parse(path).getroot().iter("testcase"):
        name = f"{case.get('classname', '').replace('.', '/')}.py::{case.get('name')}"
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        if problem is not None:
            counts["failed"] += 1
            failed.append({"test": name, "reason": (problem.get("message") or "")[:300]})
        elif (skip := case.find("skipped")) is not None:
            if skip.get("type") == "pytest.xfail":
                counts["xfailed"] += 1
                known.append({"test": name, "reason": skip.get("message", "")})
            else:
                counts["skipped"] += 1
                skipped.append({"test": name, "reason": skip.get("message", "")})
        else:
            counts["passed"] += 1
    return {"tests": sum(counts.values()), **counts, "failed_tests": failed, "known_problems": known,
            "skipped_tests": skipped}


def figures(name: str) -> Optional[Dict[str, Any]]:
    path = FIGURES_DIR / f"{name}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def attack_messages_by_kind() -> Dict[str, int]:
    from tests.security.support import kinds

    return {kind.name: len(kind.attacks) for kind in kinds()}


def fuzz_summary(inprocess: Optional[Dict], real: Optional[Dict]) -> Dict[str, Any]:
    channels = {}
    for channel, seen in ((inprocess or {}).get("channels") or {}).items():
        channels[channel] = {key: seen.get(key) for key in (
            "requests", "statuses", "server_errors_5xx", "known_server_errors_5xx", "normal_messages_sent",
            "normal_messages_lost", "messages_from_fuzzed_requests") if key in seen}
    fuzzing = (real or {}).get("fuzzing")
    return {
        "in_process": channels,
        "real_servers": fuzzing or {"note": "not run (no trained model?)"},
        "requests_total": sum(seen.get("requests") or 0 for seen in channels.values())
                          + sum((fuzzing or {}).get("requests", {}).values()),
        "server_errors_5xx_total": sum(seen.get("server_errors_5xx") or 0 for seen in channels.values())
                                   + (fuzzing or {}).get("server_errors_5xx", 0),
        "lost_normal_messages_total": sum(seen.get("normal_messages_lost") or 0 for seen in channels.values())
                                      + (fuzzing or {}).get("normal_messages_lost", 0),
    }


def configuration() -> Dict[str, Any]:
    """What actually ran: the code's commit, the model, the generator, the databases, the browser, the tools."""
    from importlib.metadata import version

    from generator.config import get_config
    from shop.servers import DEFAULT_MODEL

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True).stdout.strip()

    model = Path(os.environ.get("SHOP_MODEL", DEFAULT_MODEL))
    digest = model.with_name(model.name + ".sha256")
    generator = get_config()
    chromium = Path(os.environ.get("SHOP_CHROMIUM", "/usr/bin/chromium"))
    return {
        "commit": git("rev-parse", "HEAD"), "uncommitted_changes": bool(git("status", "--porcelain")),
        "model": {"path": str(model), "exists": model.exists(),
                  "sha256": digest.read_text().split()[0] if digest.exists() else None},
        "generator": {"backend": generator.backend, "enabled": generator.enabled, "max_new_tokens":
                      generator.max_new_tokens, "max_sentences": generator.max_sentences,
                      "timeout_s": generator.timeout_s, "top_k": generator.top_k},
        "postgres_url": os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
        "chromium": str(chromium) if chromium.exists() else None,
        "hypothesis": version("hypothesis"), "pytest": version("pytest"), "rasa": version("rasa"),
        "require": {name: os.environ.get(name) for name in ("REQUIRE_MODEL", "REQUIRE_BROWSER", "REQUIRE_POSTGRES")},
    }


def main(argv: List[str]) -> int:
    extra = argv[1:] if argv[:1] == ["--"] else argv
    outcome = run_suite(extra)
    generator, skills = figures("generator-attacks"), figures("skill-attacks")
    end_to_end, inprocess, webchat = figures("end-to-end"), figures("fuzz-inprocess"), figures("webchat-xss")
    attacks_e2e = (end_to_end or {}).get("attacks")
    leaks = {
        "generator_final_replies": (generator or {}).get("leaks"),
        "generator_final_replies_known": (generator or {}).get("known_leaks"),
        "skills": (skills or {}).get("leaks"),
        "rest_end_to_end": (attacks_e2e or {}).get("leaks", "not run"),
    }
    results = {
        "configuration": configuration(),
        "pytest": outcome,
        "attack_messages": {"total": sum(attack_messages_by_kind().values()), "by_kind": attack_messages_by_kind()},
        "leaks": leaks,
        "generator": generator, "skills": skills, "end_to_end": end_to_end,
        "fuzzing": fuzz_summary(inprocess, end_to_end),
        "webchat": webchat,
    }
    enumeration = FIGURES_DIR / "enumeration.json"  # written by tests/security/test_enumeration.py
    if enumeration.exists():
        results["enumeration"] = json.loads(enumeration.read_text(encoding="utf-8"))
    write_results("security", results)
    fuzz = results["fuzzing"]
    print(f"attack messages: {results['attack_messages']['total']} in {len(attack_messages_by_kind())} kinds; "
          f"leaks: {leaks}")
    print(f"fuzzed requests: {fuzz['requests_total']}, 5xx: {fuzz['server_errors_5xx_total']}, "
          f"lost normal messages: {fuzz['lost_normal_messages_total']}")
    print(f"web chat scripts run: {(webchat or {}).get('scripts_run', 'not run')}; pytest: "
          f"{ {key: outcome.get(key) for key in ('passed', 'failed', 'skipped', 'xfailed')} }")
    return outcome["exit_code"]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
