"""Parse messages with a trained Rasa model: `python bench/parse_messages.py MODEL IN.json OUT.json`.

A script, not a module of the bench package, on purpose: benchmarks run it under another commit's code
(bench/before.py) by putting that tree first on PYTHONPATH, and it imports nothing of this project itself.
IN.json is a list of texts; OUT.json gets each text's full parse result (intent, intent_ranking, entities, and
whatever the custom components add) in the same order.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path


def main(model: str, texts_file: str, out_file: str) -> None:
    from rasa.core.agent import Agent
    from rasa.utils.log_utils import configure_structlog

    configure_structlog(logging.WARNING)
    texts = json.loads(Path(texts_file).read_text(encoding="utf-8"))
    agent = Agent.load(model)

    async def parse_all() -> list:
        results = []
        for index, text in enumerate(texts, start=1):
            results.append(await agent.parse_message(text))
            if index % 100 == 0 or index == len(texts):
                print(f"  parsed {index}/{len(texts)}", flush=True)
        return results

    Path(out_file).write_text(json.dumps(asyncio.run(parse_all()), default=str), encoding="utf-8")


if __name__ == "__main__":
    main(*sys.argv[1:4])
