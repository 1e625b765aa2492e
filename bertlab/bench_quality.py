"""Model quality against a Hugging Face ``Trainer`` with the same encoder, over seeds
(scripts/benchmark_quality.py, ``make bench-quality``).

The protocol, for each pipeline (bertlab, and Hugging Face's Trainer: see
:mod:`bertlab.bench_speed_worker`):

1. every candidate recipe of ``conf/quality/<task>.yaml`` trains with the first seed (or
   the first ``--select-seeds`` seeds), and the one with the best dev score (its mean over
   those seeds) is the pipeline's recipe (test scores play no part; a tie goes to the
   candidate listed first in the grid, so list the cheaper or the customary one first);
2. that recipe trains again with each further seed; the report gives the test score of
   every seed, their mean and standard deviation, and whether bertlab meets the target
   and beats Hugging Face's mean by the margin, with how far the seeds (standard error) and the
   test items (a paired bootstrap, :mod:`bertlab.bootstrap`) let that lead be read.

Each run is its own process on the same data and encoder. A run whose result file is
already in ``--out-dir`` is not run again, so an interrupted benchmark resumes.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

from omegaconf import OmegaConf

from bertlab.bench_speed import REPO, _corpus_dir, prepare_data, prepare_encoder, resolve_device, run_pipeline
from bertlab.bench_speed_worker import HF_RECIPE_KEYS
from bertlab.config import ConfigError
from bertlab.io import atomic_write

PIPELINES = ("bertlab", "hf")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=("ner", "tc"), default="tc")
    parser.add_argument("--grid", type=Path, default=None, help="candidate recipes (default: conf/quality/<task>.yaml)")
    parser.add_argument("--seeds", default="1,2,3", help="comma-separated; the first one also picks the recipes")
    parser.add_argument("--select-seeds", type=int, default=1,
                        help="pick each pipeline's recipe on the mean dev score over the first N seeds: one seed's "
                             "dev choice is mostly a draw when recipes differ by less than the seed noise, and "
                             "N seeds cost N runs a candidate (default 1)")
    parser.add_argument("--pipelines", default=",".join(PIPELINES), help="comma-separated subset of bertlab,hf")
    parser.add_argument("--candidates", default=None,
                        help="comma-separated recipe names: try only these; NAME in every pipeline that has "
                             "it, PIPELINE:NAME (bertlab:lr_1e-4) in that one only")
    parser.add_argument("--device", choices=("cuda", "cpu"), default=None, help="default: cuda when there is one")
    parser.add_argument("--precision", default="auto", help="auto, 32, 16-mixed or bf16-mixed")
    parser.add_argument("--max-train", type=int, default=0, help="use the first N training items (0: all)")
    parser.add_argument("--max-eval", type=int, default=0, help="use the first N dev and test items (0: all)")
    parser.add_argument("--corpus", type=Path, default=None, help="NCBI Disease directory (original/ and conll/)")
    parser.add_argument("--out-dir", type=Path, default=None,
                        help="default: experiments/quality/<task>_<time>; an existing one resumes")
    return parser.parse_args(argv)


def load_grid(path: Path, pipelines: tuple[str, ...] = PIPELINES, candidates: str | None = None) -> dict:
    """The grid file; ``candidates`` (comma-separated names) keeps only those recipes."""
    if not path.is_file():
        raise ConfigError(f"{path}: no such grid file")
    grid = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    for key in ("target", "margin", "bertlab", "hf", "hf_defaults"):
        if key not in grid:
            raise ConfigError(f"{path}: missing key {key!r}")
    unknown = sorted({f"hf.{name}.{key}" for name, recipe in (grid["hf"] or {}).items() for key in recipe
                      if key not in HF_RECIPE_KEYS}
                     | {f"hf_defaults.{key}" for key in grid["hf_defaults"] or {} if key not in HF_RECIPE_KEYS})
    if unknown:  # a misspelt setting would otherwise train the defaults under the recipe's name
        raise ConfigError(f"{path}: unknown Hugging Face setting {', '.join(unknown)} (known: "
                          f"{', '.join(sorted(HF_RECIPE_KEYS))})")
    if candidates is not None:
        grid.update(_kept_candidates(path, grid, candidates))
    for pipeline in pipelines:
        if not grid[pipeline]:
            raise ConfigError(f"{path}: {pipeline} needs at least one candidate recipe"
                              + (f" (--candidates {candidates})" if candidates is not None else ""))
    return grid


def _kept_candidates(path: Path, grid: dict, candidates: str) -> dict[str, dict]:
    """Each pipeline's recipes that ``candidates`` names: ``name`` keeps it in every pipeline
    that has it, ``pipeline:name`` in that one only (both grids may use a name)."""
    wanted = [name.strip() for name in candidates.split(",") if name.strip()]
    kept: dict[str, set[str]] = {pipeline: set() for pipeline in PIPELINES}
    unknown = []
    for entry in wanted:
        pipeline, _, name = entry.rpartition(":")
        if pipeline and pipeline not in PIPELINES:
            raise ConfigError(f"--candidates {entry}: the pipeline before ':' is one of {', '.join(PIPELINES)}")
        found = [p for p in ([pipeline] if pipeline else PIPELINES) if name in (grid[p] or {})]
        if not found:
            unknown.append(entry)
        for p in found:
            kept[p].add(name)
    if unknown:  # a misspelt name would otherwise just be left out
        raise ConfigError(f"{path}: no candidate recipe {', '.join(unknown)} (--candidates {candidates})")
    return {pipeline: {name: recipe for name, recipe in (grid[pipeline] or {}).items() if name in kept[pipeline]}
            for pipeline in PIPELINES}  # in the grid's order, which breaks dev ties


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"--seeds must be comma-separated integers, got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds must name distinct seeds, got {text!r}")
    return seeds


def run_spec(base: dict, grid: dict, pipeline: str, recipe: str, seed: int) -> dict:
    if pipeline == "bertlab":
        return {**base, "seed": seed, "overrides": list(grid["bertlab"][recipe])}
    return {**base, "seed": seed, "hf": {**grid["hf_defaults"], **grid["hf"][recipe]}}


def run_once(out: Path, base: dict, grid: dict, pipeline: str, recipe: str, seed: int) -> dict:
    """One training run (or its stored result); raises if it failed."""
    name = f"{pipeline}-{recipe}-seed{seed}"
    stored = out / f"{name}.json"
    if stored.is_file():
        print(f"  {name}: done before, {stored}", flush=True)
        result = json.loads(stored.read_text())
    else:
        result = run_pipeline(pipeline, run_spec(base, grid, pipeline, recipe, seed), out, name=name)
    if "error" in result:
        raise RuntimeError(f"{name} failed: {result['error']}")
    return {**result, "recipe": recipe, "seed": seed, "name": name}


def _without_predictions(run: dict) -> dict:
    """A run for the report: its test predictions stay in its own result file."""
    return {key: value for key, value in run.items() if key != "test_predictions"}


def choose_on_dev(tried: list[dict]) -> dict:
    """The candidate with the best dev score; of tied candidates, the first (grid order)."""
    best = max(run["dev_f1"] for run in tried)
    return next(run for run in tried if run["dev_f1"] == best)


def summarize(runs: list[dict]) -> dict:
    scores = [r["f1"] for r in runs]
    return {"recipe": runs[0]["recipe"], "seeds": [r["seed"] for r in runs], "test": scores,
            "mean": statistics.fmean(scores), "std": statistics.stdev(scores) if len(scores) > 1 else 0.0,
            "dev_mean": statistics.fmean(r["dev_f1"] for r in runs),
            "fit_minutes_mean": statistics.fmean(r["fit_s"] for r in runs) / 60}


def bootstrap_lead(task: str, base: dict, final_runs: dict[str, list[dict]], margin: float) -> dict | None:
    """The paired bootstrap of bertlab's lead over Hugging Face on the test items, from the
    final runs' stored test predictions; None without both pipelines, and the runs' names
    under ``missing`` when a result holds no predictions (one stored before they were kept)."""
    if set(final_runs) != set(PIPELINES):
        return None
    missing = [run["name"] for runs in final_runs.values() for run in runs if "test_predictions" not in run]
    if missing:
        return {"missing": missing}
    from bertlab.bench_speed_worker import gold_test_labels
    from bertlab.bootstrap import f1_from_counts, item_counts, paired_bootstrap

    gold = gold_test_labels(base)
    counts = {}
    for pipeline, runs in final_runs.items():
        counts[pipeline] = [item_counts(task, gold, run["test_predictions"]) for run in runs]
        for run, run_counts in zip(runs, counts[pipeline]):
            rescored = float(f1_from_counts(run_counts.sum(axis=0)))
            if not math.isclose(rescored, run["f1"], abs_tol=1e-9):  # predictions and score disagree
                raise RuntimeError(f"{run['name']}: its test predictions score {rescored:.6f}, its result "
                                   f"{run['f1']:.6f}")
    return paired_bootstrap(counts["bertlab"], counts["hf"], margin)


def verdict(final: dict, grid: dict, bootstrap: dict | None = None) -> dict:
    ours, theirs = final.get("bertlab"), final.get("hf")
    result = {"target": grid["target"], "margin": grid["margin"]}
    if ours:
        result["meets_target"] = ours["mean"] >= grid["target"]
    if ours and theirs:
        result["lead"] = ours["mean"] - theirs["mean"]
        result["beats_hf"] = result["lead"] >= grid["margin"]
        # How far the seeds let the lead be read: the standard error of a difference of two means
        # (Welch's), next to the margin it is judged against.
        result["lead_se"] = math.sqrt(sum(s["std"] ** 2 / len(s["test"]) for s in (ours, theirs)))
    if bootstrap is not None:
        result["bootstrap"] = bootstrap
    result["passed"] = all(result.get(key, False) for key in ("meets_target", "beats_hf"))
    return result


def format_markdown(report: dict) -> str:
    metric = report["metric"]
    select_seeds = report["select_seeds"]
    chosen_on = (f"seed {select_seeds[0]}" if len(select_seeds) == 1
                 else f"the mean over seeds {', '.join(map(str, select_seeds))}")
    lines = [f"{report['task'].upper()}, {report['device']} {report['precision']}, embedded MiniLM-L6-H384; "
             f"{report['machine']}; {report['date']}; `{report['command']}`", "",
             f"Recipes chosen on dev ({chosen_on}; "
             "the test column is not used to choose; a tie on dev goes to the candidate listed first):", "",
             f"| pipeline | recipe | seed | dev {metric} | test {metric} | epochs | fit min |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for run in report["selection"]:
        chosen = " (chosen)" if report["final"][run["pipeline"]]["recipe"] == run["recipe"] else ""
        lines.append(f"| {run['pipeline']} | {run['recipe']}{chosen} | {run['seed']} | {run['dev_f1']:.4f} | "
                     f"{run['f1']:.4f} | {run['epochs']} | {run['fit_s'] / 60:.1f} |")
    lines += ["", f"Test {metric}, seeds {', '.join(map(str, report['seeds']))}:", "",
              "| pipeline | recipe | mean +- std | per seed | dev mean | fit min (mean) |",
              "|---|---|---:|---|---:|---:|"]
    for pipeline, s in report["final"].items():
        lines.append(f"| {pipeline} | {s['recipe']} | **{s['mean']:.4f} +- {s['std']:.4f}** | "
                     f"{', '.join(f'{x:.4f}' for x in s['test'])} | {s['dev_mean']:.4f} | "
                     f"{s['fit_minutes_mean']:.1f} |")
    v = report["verdict"]
    lines.append("")
    if "meets_target" in v:
        lines.append(f"- target: bertlab mean {metric} >= {v['target']}: {'PASS' if v['meets_target'] else 'FAIL'}")
    if "beats_hf" in v:
        lines.append(f"- bertlab minus Hugging Face: {100 * v['lead']:+.1f} points, standard error "
                     f"{100 * v['lead_se']:.1f} over the seeds (needed >= {100 * v['margin']:.1f}): "
                     f"{'PASS' if v['beats_hf'] else 'FAIL'}")
    boot = v.get("bootstrap")
    if boot and "missing" in boot:
        lines.append(f"- paired bootstrap over the test items: not run, no stored test predictions in "
                     f"{', '.join(boot['missing'])} (train them again to keep them)")
    elif boot:
        low, high = (100 * x for x in boot["interval"])
        lines.append(f"- paired bootstrap over the {boot['items']} test items ({boot['resamples']} resamples, the "
                     f"seeds fixed): 95% interval of the lead {low:+.1f} to {high:+.1f} points; it reaches "
                     f"{100 * v['margin']:.1f} in {100 * boot['reaches_margin']:.1f}% of the resamples")
    lines.append(f"- whole benchmark: {report['minutes']:.0f} min")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> dict:
    pipelines = [p.strip() for p in args.pipelines.split(",") if p.strip()]
    if not pipelines or set(pipelines) - set(PIPELINES):
        raise ConfigError(f"--pipelines: choose from {', '.join(PIPELINES)} (got {args.pipelines!r})")
    seeds = _seeds(args.seeds)
    if not 1 <= args.select_seeds <= len(seeds):
        raise ConfigError(f"--select-seeds must lie between 1 and the number of --seeds ({len(seeds)}), "
                          f"got {args.select_seeds}")
    select_seeds, other_seeds = seeds[:args.select_seeds], seeds[args.select_seeds:]
    grid = load_grid(args.grid or REPO / "conf" / "quality" / f"{args.task}.yaml", tuple(pipelines), args.candidates)
    corpus = _corpus_dir(args.corpus)
    device, precision = resolve_device(args.device, args.precision)
    started = time.perf_counter()
    out = (args.out_dir or REPO / "experiments" / "quality" / f"{args.task}_{time.strftime('%Y-%m-%d_%H-%M-%S')}")
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    counts = prepare_data(args.task, corpus, out / "data", args.max_train, args.max_eval)
    base = {"task": args.task, "device": device, "precision": precision, "encoder": prepare_encoder("minilm", out, 0),
            "encoder_name": "minilm", "data_dir": str(out / "data"), "counts": counts, "keep_predictions": True}
    print(f"quality benchmark: {args.task}, {device} {precision}, seeds {seeds}, {counts['train']} training items; "
          f"out {out}", flush=True)
    selection, final, final_runs = [], {}, {}
    for pipeline in pipelines:
        tried = {recipe: [run_once(out, base, grid, pipeline, recipe, seed) for seed in select_seeds]
                 for recipe in grid[pipeline]}
        selection.extend(_without_predictions(run) for runs in tried.values() for run in runs)
        best = choose_on_dev([{"recipe": recipe, "dev_f1": statistics.fmean(r["dev_f1"] for r in runs)}
                              for recipe, runs in tried.items()])["recipe"]
        runs = tried[best] + [run_once(out, base, grid, pipeline, best, seed) for seed in other_seeds]
        final[pipeline], final_runs[pipeline] = summarize(runs), runs
    from bertlab.trainer import cpu_cores, cpu_model

    gpu = next((r.get("gpu") for r in selection if r.get("gpu")), None)
    report = {"task": args.task, "metric": "entity F1" if args.task == "ner" else "macro F1", "device": device,
              "precision": precision, "seeds": seeds, "select_seeds": select_seeds, "counts": counts,
              "machine": gpu or f"{cpu_model()}, {cpu_cores()} CPU cores", "date": time.strftime("%Y-%m-%d"),
              "command": " ".join(["scripts/benchmark_quality.py", *sys.argv[1:]]),
              "selection": selection, "final": final,
              "verdict": verdict(final, grid, bootstrap_lead(args.task, base, final_runs, grid["margin"])),
              "minutes": (time.perf_counter() - started) / 60, "out_dir": str(out)}
    with atomic_write(out / "quality.json") as handle:
        json.dump(report, handle, indent=2)
        handle.write("\n")
    markdown = format_markdown(report)
    with atomic_write(out / "quality.md") as handle:
        handle.write(markdown)
    print(markdown)
    print(f"wrote {out / 'quality.json'} and {out / 'quality.md'}")
    return report


def main(argv: list[str] | None = None) -> int:
    report = run(parse_args(argv))
    return 0 if report["verdict"]["passed"] else 1
