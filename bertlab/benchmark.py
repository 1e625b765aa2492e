"""Accuracy and speed targets, checked by running the real recipe (scripts/benchmark_*.py)."""

from __future__ import annotations

import json
import platform
import time

from omegaconf import DictConfig

from bertlab.io import atomic_write
from bertlab.trainer import cpu_cores


def run_benchmark(cfg: DictConfig, metric: str, target: float, max_fit_minutes: float) -> bool:
    """Train with ``cfg``; print the test metrics, the training wall time and whether the
    targets are met; write ``benchmark.json`` into the run directory."""
    from bertlab.train import train

    started = time.perf_counter()
    result = train(cfg)
    total_minutes = (time.perf_counter() - started) / 60
    fit_minutes = result.fit_seconds / 60
    passed = result.metrics.get(metric, 0.0) >= target and fit_minutes <= max_fit_minutes
    from omegaconf import OmegaConf

    ran = OmegaConf.load(result.log_dir / "environment.yaml")  # the device and precision that ran
    device = ran.device.get("gpu") or ran.trainer.accelerator
    report = {
        "run": str(result.log_dir),
        "machine": f"{platform.machine()}, {cpu_cores()} CPU cores, device={device}, "
                   f"precision={ran.trainer.precision}",
        "metrics": result.metrics,
        "fit_minutes": round(fit_minutes, 2),
        "total_minutes": round(total_minutes, 2),
        "targets": {metric: target, "fit_minutes": max_fit_minutes},
        "passed": passed,
    }
    with atomic_write(result.log_dir / "benchmark.json") as handle:
        json.dump(report, handle, indent=2)
    print("\n".join([
        f"benchmark: {result.log_dir}",
        *(f"  {name:<28}{value:.4f}" for name, value in result.metrics.items()),
        f"  training wall time          {fit_minutes:.1f} min (whole run {total_minutes:.1f} min)",
        f"  target {metric} >= {target} within {max_fit_minutes:g} min: {'PASS' if passed else 'FAIL'}",
    ]))
    return passed


# --- prediction speed -------------------------------------------------------------------


def _race(runs: dict, repeats: int) -> tuple[dict, dict]:
    """Run each function ``repeats`` times, alternating between them so that load from other
    processes hits all alike. Returns the best wall and process CPU seconds of each, and
    each one's last result."""
    times = {name: {"seconds": float("inf"), "cpu_seconds": float("inf")} for name in runs}
    results = {}
    for _ in range(repeats):
        for name, function in runs.items():
            wall, cpu = time.perf_counter(), time.process_time()
            results[name] = function()
            times[name]["seconds"] = min(times[name]["seconds"], time.perf_counter() - wall)
            times[name]["cpu_seconds"] = min(times[name]["cpu_seconds"], time.process_time() - cpu)
    return times, results


def _dtype_name(predictor) -> str:
    return str(predictor.dtype).removeprefix("torch.") if predictor.dtype is not None else "float32"


def _stock(model, function):
    """``function`` run with the model's encoder as NeMo builds it (``stock_layers``), so that
    NeMo's own inference is timed without bertlab's layers."""
    from bertlab.unpadded import stock_layers

    def run(*args, **kwargs):
        with stock_layers(model.bert_model):
            return function(*args, **kwargs)

    return run


def _fresh(predictor, method):
    """A timed run starts with an empty word cache, as a newly loaded Predictor does."""

    def run(inputs):
        predictor._word_cache.clear()
        return getattr(predictor, method)(inputs)

    return run


def benchmark_tagging(nemo_path, text_path, device=None, batch_size: int = 64, nemo_batch_size: int = 32,
                      repeats: int = 1, precision: str | None = None) -> dict:
    """bertlab's Predictor.tag against NeMo's ``add_predictions`` on the same restored model
    and sentences (one per line, CoNLL-tokenized): wall times, and how many sentences get
    the same tags (NeMo reads any length; bertlab windows beyond max_seq_length, so it is
    also run with the encoder's full length, where every sentence must agree). ``precision``
    is bertlab's (default: training's rules); NeMo's inference runs as NeMo runs it."""
    from bertlab.io import read_text_lines
    from bertlab.predict import Predictor

    predictor = Predictor.load(nemo_path, device=device, batch_size=batch_size, precision=precision)
    model, names = predictor.model, predictor.model.id_to_label
    sentences = [line for line in read_text_lines(text_path) if line.strip()]
    warm = sentences[:nemo_batch_size]
    model.add_predictions(warm, batch_size=nemo_batch_size)
    predictor.tag(warm)
    captured, infer = {}, model._infer

    def capture(queries, batch_size=None):  # add_predictions tags with _infer, then formats strings
        captured["ids"] = infer(queries, batch_size)
        return captured["ids"]

    model._infer = capture
    tag = _fresh(predictor, "tag")
    add_predictions = _stock(model, model.add_predictions)
    times, results = _race({"nemo": lambda: add_predictions(sentences, batch_size=nemo_batch_size),
                            "bertlab": lambda: tag(sentences)}, repeats)
    del model._infer
    ours, nemo_tags, start = results["bertlab"], [], 0
    for sentence in sentences:
        count = len(sentence.split())
        nemo_tags.append(tuple(names[i] for i in captured["ids"][start:start + count]))
        start += count
    # Sentences within max_seq_length are read the same either way; the windowed ones again whole.
    windowed = [i for i, r in enumerate(ours) if r.windows > 1]
    whole = Predictor(model, batch_size=batch_size, max_seq_length=10**6, precision=precision).tag(
        [sentences[i] for i in windowed])
    full = list(ours)
    for i, result in zip(windowed, whole):
        full[i] = result
    return {
        "items": len(sentences), "nemo": times["nemo"], "bertlab": times["bertlab"],
        "speedup": times["nemo"]["seconds"] / times["bertlab"]["seconds"],
        "cpu_speedup": times["nemo"]["cpu_seconds"] / times["bertlab"]["cpu_seconds"],
        "max_seq_length": predictor.max_seq_length, "bertlab_dtype": _dtype_name(predictor),
        "windowed": sum(r.windows > 1 for r in ours),
        "same": sum(r.tags == t for r, t in zip(ours, nemo_tags)),
        "same_full_length": sum(r.tags == t for r, t in zip(full, nemo_tags)),
    }


def benchmark_classification(nemo_path, tsv_path, device=None, batch_size: int = 64, nemo_batch_sizes=(1, 64),
                             repeats: int = 1, precision: str | None = None) -> dict:
    """bertlab's Predictor.classify against NeMo's ``classifytext`` (at its default batch size
    1 and at bertlab's), same model, texts and max_seq_length; wall times and agreement
    (``precision``: bertlab's, as in :func:`benchmark_tagging`)."""
    from bertlab.data.tsv import read_labeled_tsv
    from bertlab.predict import Predictor

    predictor = Predictor.load(nemo_path, device=device, batch_size=batch_size, precision=precision)
    model, limit = predictor.model, predictor.max_seq_length
    texts = [text for text, _ in read_labeled_tsv(tsv_path).rows]
    model.classifytext(texts[:4], batch_size=4, max_seq_length=limit)
    predictor.classify(texts[:4])
    classify = _fresh(predictor, "classify")
    runs = {"bertlab": lambda: classify(texts)}
    classifytext = _stock(model, model.classifytext)
    runs.update({f"nemo_{b}": lambda b=b: classifytext(texts, batch_size=b, max_seq_length=limit)
                 for b in nemo_batch_sizes})
    times, results = _race(runs, repeats)
    ours = results["bertlab"]
    report = {"items": len(texts), "bertlab": times["bertlab"], "max_seq_length": limit,
              "bertlab_dtype": _dtype_name(predictor),
              "truncated": sum(r.truncated for r in ours), "nemo": {}}
    for batch in nemo_batch_sizes:
        nemo = times[f"nemo_{batch}"]
        report["nemo"][batch] = {**nemo, "speedup": nemo["seconds"] / times["bertlab"]["seconds"],
                                 "cpu_speedup": nemo["cpu_seconds"] / times["bertlab"]["cpu_seconds"],
                                 "same": sum(r.label == label for r, label in zip(ours, results[f"nemo_{batch}"]))}
    return report


def prediction_report(tagging: dict | None, classification: dict | None, device: str) -> str:
    import torch

    lines = [f"machine: {platform.machine()}, {cpu_cores()} CPU cores, torch threads {torch.get_num_threads()}, "
             f"device {device}"]
    if tagging:
        t = tagging
        lines += [f"NER: {t['items']} sentences            wall s    CPU s",
                  f"  NeMo add_predictions  {t['nemo']['seconds']:8.2f} {t['nemo']['cpu_seconds']:8.2f}",
                  f"  bertlab Predictor.tag {t['bertlab']['seconds']:8.2f} {t['bertlab']['cpu_seconds']:8.2f}"
                  f" ({t['bertlab_dtype']})"
                  f"   speedup {t['speedup']:.1f}x wall, {t['cpu_speedup']:.1f}x CPU",
                  f"  same tags: {t['same']}/{t['items']} sentences ({t['windowed']} longer than max_seq_length="
                  f"{t['max_seq_length']} tagged in windows); without the length limit {t['same_full_length']}"
                  f"/{t['items']}"]
    if classification:
        c = classification
        lines += [f"classification: {c['items']} texts, max_seq_length={c['max_seq_length']} "
                  f"({c['truncated']} truncated)     wall s    CPU s",
                  f"  bertlab Predictor.classify        {c['bertlab']['seconds']:8.2f} "
                  f"{c['bertlab']['cpu_seconds']:8.2f} ({c['bertlab_dtype']})"]
        for batch, nemo in c["nemo"].items():
            lines.append(f"  NeMo classifytext batch_size={batch:<4} {nemo['seconds']:8.2f} {nemo['cpu_seconds']:8.2f}"
                         f"   speedup {nemo['speedup']:.1f}x wall, {nemo['cpu_speedup']:.1f}x CPU, "
                         f"same labels {nemo['same']}/{c['items']}")
    return "\n".join(lines)
