"""Accuracy and speed targets, checked by running the real recipe (scripts/benchmark_*.py)."""

from __future__ import annotations

import json
import platform
import time

from omegaconf import DictConfig

from bertlab.io import atomic_write


def run_benchmark(cfg: DictConfig, metric: str, target: float, max_fit_minutes: float) -> bool:
    """Train with ``cfg``; print the test metrics, the training wall time and whether the
    targets are met; write ``benchmark.json`` into the run directory."""
    from bertlab.train import train

    started = time.perf_counter()
    result = train(cfg)
    total_minutes = (time.perf_counter() - started) / 60
    fit_minutes = result.fit_seconds / 60
    passed = result.metrics.get(metric, 0.0) >= target and fit_minutes <= max_fit_minutes
    report = {
        "run": str(result.log_dir),
        "machine": f"{platform.machine()}, {_cpu_count()} CPU cores, device={cfg.trainer.accelerator}",
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


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0


# --- prediction speed -------------------------------------------------------------------


def _timed(function, repeats: int):
    """(best wall time in seconds over ``repeats`` runs, the last result)."""
    best, result = float("inf"), None
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - started)
    return best, result


def benchmark_tagging(nemo_path, text_path, device=None, batch_size: int = 64, nemo_batch_size: int = 32,
                      repeats: int = 1) -> dict:
    """bertlab's Predictor.tag against NeMo's ``add_predictions`` on the same restored model
    and sentences (one per line, CoNLL-tokenized): wall times, and how many sentences get
    the same tags (NeMo reads any length; bertlab windows beyond max_seq_length, so it is
    also run with the encoder's full length, where every sentence must agree)."""
    from bertlab.io import read_text_lines
    from bertlab.predict import Predictor

    predictor = Predictor.load(nemo_path, device=device, batch_size=batch_size)
    model, names = predictor.model, predictor.model.id_to_label
    sentences = [line for line in read_text_lines(text_path) if line.strip()]
    warm = sentences[:nemo_batch_size]
    model.add_predictions(warm, batch_size=nemo_batch_size)
    predictor.tag(warm)
    nemo_seconds, _ = _timed(lambda: model.add_predictions(sentences, batch_size=nemo_batch_size), repeats)
    ours_seconds, ours = _timed(lambda: predictor.tag(sentences), repeats)
    flat, nemo_tags, start = model._infer(sentences, batch_size=nemo_batch_size), [], 0
    for sentence in sentences:  # _infer is what add_predictions tags with, before it formats
        count = len(sentence.split())
        nemo_tags.append(tuple(names[i] for i in flat[start:start + count]))
        start += count
    full = Predictor(model, batch_size=batch_size, max_seq_length=10**6).tag(sentences)
    return {
        "items": len(sentences), "nemo_seconds": nemo_seconds, "bertlab_seconds": ours_seconds,
        "speedup": nemo_seconds / ours_seconds, "max_seq_length": predictor.max_seq_length,
        "windowed": sum(r.windows > 1 for r in ours),
        "same": sum(r.tags == t for r, t in zip(ours, nemo_tags)),
        "same_full_length": sum(r.tags == t for r, t in zip(full, nemo_tags)),
    }


def benchmark_classification(nemo_path, tsv_path, device=None, batch_size: int = 64, nemo_batch_sizes=(1, 64),
                             repeats: int = 1) -> dict:
    """bertlab's Predictor.classify against NeMo's ``classifytext`` (at its default batch size
    1 and at bertlab's), same model, texts and max_seq_length; wall times and agreement."""
    from bertlab.data.tsv import read_labeled_tsv
    from bertlab.predict import Predictor

    predictor = Predictor.load(nemo_path, device=device, batch_size=batch_size)
    model, limit = predictor.model, predictor.max_seq_length
    texts = [text for text, _ in read_labeled_tsv(tsv_path).rows]
    model.classifytext(texts[:4], batch_size=4, max_seq_length=limit)
    predictor.classify(texts[:4])
    ours_seconds, ours = _timed(lambda: predictor.classify(texts), repeats)
    report = {"items": len(texts), "bertlab_seconds": ours_seconds, "max_seq_length": limit,
              "truncated": sum(r.truncated for r in ours), "nemo": {}}
    for nemo_batch in nemo_batch_sizes:
        seconds, labels = _timed(lambda b=nemo_batch: model.classifytext(texts, batch_size=b, max_seq_length=limit),
                                 repeats)
        report["nemo"][nemo_batch] = {"seconds": seconds, "speedup": seconds / ours_seconds,
                                      "same": sum(r.label == label for r, label in zip(ours, labels))}
    return report


def prediction_report(tagging: dict | None, classification: dict | None, device: str) -> str:
    import torch

    lines = [f"machine: {platform.machine()}, {_cpu_count()} CPU cores, torch threads {torch.get_num_threads()}, "
             f"device {device}"]
    if tagging:
        t = tagging
        lines += [f"NER: {t['items']} sentences",
                  f"  NeMo add_predictions  {t['nemo_seconds']:8.2f} s",
                  f"  bertlab Predictor.tag {t['bertlab_seconds']:8.2f} s   speedup {t['speedup']:.1f}x",
                  f"  same tags: {t['same']}/{t['items']} sentences ({t['windowed']} longer than max_seq_length="
                  f"{t['max_seq_length']} tagged in windows); without the length limit {t['same_full_length']}"
                  f"/{t['items']}"]
    if classification:
        c = classification
        lines += [f"classification: {c['items']} texts, max_seq_length={c['max_seq_length']} "
                  f"({c['truncated']} truncated)",
                  f"  bertlab Predictor.classify {c['bertlab_seconds']:8.2f} s"]
        for batch, nemo in c["nemo"].items():
            lines.append(f"  NeMo classifytext batch_size={batch:<3} {nemo['seconds']:8.2f} s   speedup "
                         f"{nemo['speedup']:.1f}x   same labels {nemo['same']}/{c['items']}")
    return "\n".join(lines)
