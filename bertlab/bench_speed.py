"""Training speed against stock NeMo and Hugging Face (scripts/benchmark_speed.py, ``make bench-speed``).

Each pipeline trains in its own process (``python -m bertlab.bench_speed_worker``) on the
same data, encoder, batch size, epochs, learning rate and precision:

- ``nemo``: NeMo's own ``TokenClassificationModel`` / ``TextClassificationModel`` and data
  loaders, with the NeMo keys of ``conf/model/*.yaml`` (bertlab's additions removed), a
  plain Lightning Trainer, no logger and no checkpoints;
- ``bertlab``: ``bertlab.train.train`` with the default config (logger, test report and
  ``.nemo`` included; the fit time covers what ``trainer.fit`` does), but, like stock NeMo
  here, no checkpoints (``--variant checkpoints exp_manager.create_checkpoint_callback=true``
  measures them);
- ``hf``: Hugging Face ``Trainer`` with ``DataCollatorForTokenClassification`` /
  ``DataCollatorWithPadding`` and a linear schedule with the same warmup.

Every pipeline validates once per epoch. Reported per pipeline: fit sentences/s, training
sentences per CPU-second of the process over the epochs (robust on a shared CPU), seconds
from process start to the first training step, first-epoch and later-epoch seconds (each
epoch with its validation), peak GPU memory (RSS on CPU) and test entity F1 (NER) / macro
F1 (TC). Torch and NeMo are imported only in the workers.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bertlab.config import ConfigError
from bertlab.io import atomic_write

REPO = Path(__file__).resolve().parents[1]
PIPELINES = ("nemo", "bertlab", "hf")
ENCODERS = ("minilm", "base-random", "tiny-random")
# Random encoders built from a config (no download), with the MiniLM vocabulary.
RANDOM_SHAPES = {
    "base-random": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072},
    "tiny-random": {"hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 512},
}
TASK_DEFAULTS = {"ner": {"max_seq_length": 128}, "tc": {"max_seq_length": 256}}
WARMUP_RATIO = 0.1  # one schedule for all three (bertlab's NER default chose none on dev; the others' is 10%)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=("ner", "tc"), default="ner")
    parser.add_argument("--device", choices=("cuda", "cpu"), default=None, help="default: cuda when there is one")
    parser.add_argument("--encoder", choices=ENCODERS, default="minilm")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--precision", default="auto",
                        help="auto (bf16-mixed on GPUs with bf16, else 16-mixed; 32 on CPU), 32, 16-mixed, bf16-mixed")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--max-train", type=int, default=0, help="use the first N training items (0: all)")
    parser.add_argument("--max-eval", type=int, default=0, help="use the first N dev and test items (0: all)")
    parser.add_argument("--pipelines", default=",".join(PIPELINES), help="comma-separated subset of nemo,bertlab,hf")
    parser.add_argument("--corpus", type=Path, default=None, help="NCBI Disease directory (original/ and conll/)")
    parser.add_argument("--out-dir", type=Path, default=None, help="default: experiments/speed/<task>_<device>_<time>")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--variant", nargs="+", action="append", default=[], metavar="NAME OVERRIDE",
                        help="also train bertlab with these Hydra overrides, as row bertlab-NAME (repeatable; "
                             "e.g. --variant padded model.unpadded=false)")
    return parser.parse_args(argv)


def _corpus_dir(given: Path | None) -> Path:
    corpus = given or Path(os.environ.get("NCBI_DISEASE_DIR") or REPO.parent / "shared" / "datasets" / "ncbi-disease")
    if not (corpus / "conll").is_dir() or not (corpus / "original").is_dir():
        raise ConfigError(f"NCBI Disease corpus not found at {corpus} (give --corpus DIR or set NCBI_DISEASE_DIR)")
    return corpus


def _head(items: list, limit: int) -> list:
    return items[:limit] if limit > 0 else items


def prepare_data(task: str, corpus: Path, out: Path, max_train: int, max_eval: int) -> dict[str, int]:
    """The benchmark's copy of the data (sliced as asked); returns item counts per split."""
    if task == "ner":
        from bertlab.data.download import CONLL_FILENAMES, ORIGINAL_FILENAMES
        from bertlab.data.iob import write_nemo_dataset
        from bertlab.data.ncbi_iob import conll_splits

        # With each sentence's abstract (docs_*.txt), for document context.
        conll = conll_splits({split: corpus / "conll" / name for split, name in CONLL_FILENAMES.items()},
                             {split: corpus / "original" / name for split, name in ORIGINAL_FILENAMES.items()})
        splits = {split: sentences for split, (sentences, _) in conll.items()}
    else:
        import tempfile

        from bertlab.data.ncbi_tc3 import build_tc3
        from bertlab.data.tsv import read_labeled_tsv, write_nemo_tsv

        with tempfile.TemporaryDirectory() as full:
            build_tc3(corpus / "original", full)
            splits = {split: read_labeled_tsv(Path(full) / f"{split}.tsv").rows for split in ("train", "dev", "test")}
    splits = {split: _head(items, max_train if split == "train" else max_eval) for split, items in splits.items()}
    if task == "ner":
        write_nemo_dataset(splits, out, overwrite=True)  # the benchmark's own copy: a resumed run rewrites it
    else:
        for split, rows in splits.items():
            write_nemo_tsv(rows, out / f"{split}_nemo_format.tsv")
    return {split: len(items) for split, items in splits.items()}


def prepare_encoder(name: str, out: Path, seed: int) -> str:
    """A local encoder directory: the embedded MiniLM, or a random BERT built from a config."""
    from bertlab.encoders import embedded_encoder_path

    minilm = embedded_encoder_path()
    if name == "minilm":
        return minilm
    path = out / name
    if not (path / "config.json").is_file():
        import torch
        from transformers import AutoTokenizer, BertConfig, BertModel

        torch.manual_seed(seed)
        config = BertConfig.from_pretrained(minilm, **RANDOM_SHAPES[name])
        BertModel(config).save_pretrained(path)
        AutoTokenizer.from_pretrained(minilm).save_pretrained(path)
    return str(path)


def resolve_device(device: str | None, precision: str) -> tuple[str, str]:
    import torch

    cuda = torch.cuda.is_available()
    device = device or ("cuda" if cuda else "cpu")
    if device == "cuda" and not cuda:
        raise ConfigError("--device cuda: torch sees no CUDA GPU here")
    if precision == "auto":
        precision = ("bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed") if device == "cuda" else "32"
    if precision not in ("32", "16-mixed", "bf16-mixed"):
        raise ConfigError(f"--precision must be auto, 32, 16-mixed or bf16-mixed, got {precision!r}")
    return device, precision


def run_pipeline(pipeline: str, spec: dict, out: Path, timeout: float | None = None, name: str | None = None) -> dict:
    """One pipeline in a fresh process; its result JSON (or the error). ``name`` (default:
    the pipeline's) names the run's files and directory under ``out``."""
    import shutil

    name = name or pipeline
    spec_path, result_path, log_path = out / f"{name}.spec.json", out / f"{name}.json", out / f"{name}.log"
    # A fresh copy of the data each: NeMo writes caches and label statistics beside it.
    data_dir = out / name / "data"
    shutil.rmtree(data_dir, ignore_errors=True)
    shutil.copytree(spec["data_dir"], data_dir)
    with atomic_write(spec_path) as handle:
        json.dump({**spec, "pipeline": pipeline, "work_dir": str(out / name), "data_dir": str(data_dir)},
                  handle, indent=2)
    command = [sys.executable, "-m", "bertlab.bench_speed_worker", str(spec_path), str(result_path)]
    print(f"  {name}: training ({' '.join(command[1:3])} ...), log {log_path}", flush=True)
    with open(log_path, "w", encoding="utf-8") as log:
        completed = subprocess.run(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, timeout=timeout)
    if completed.returncode != 0 or not result_path.is_file():
        tail = log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-5:]
        return {"pipeline": pipeline, "error": f"exit {completed.returncode}: " + " | ".join(tail)}
    return json.loads(result_path.read_text())


def _number(value: float) -> str:
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"


def _ratio(value: float | None, base: float | None) -> str:
    return f"{value / base:.2f}x" if value and base else ""


def table_rows(results: list[dict]) -> list[dict[str, str]]:
    speed = {r["pipeline"]: r.get("sentences_per_s") for r in results}
    per_cpu = {r["pipeline"]: r.get("sentences_per_cpu_s") for r in results}
    rows = []
    for r in results:
        if "error" in r:
            rows.append({"pipeline": r["pipeline"], "fit sent/s": "failed: " + r["error"][:80]})
            continue
        rows.append({
            "pipeline": r["pipeline"],
            "fit s": f"{r['fit_s']:.1f}",
            "fit sent/s": _number(r["sentences_per_s"]),
            "vs nemo": _ratio(r["sentences_per_s"], speed.get("nemo")),
            "vs hf": _ratio(r["sentences_per_s"], speed.get("hf")),
            "sent/CPU-s": _number(r["sentences_per_cpu_s"]),
            "CPU vs nemo": _ratio(r["sentences_per_cpu_s"], per_cpu.get("nemo")),
            "CPU vs hf": _ratio(r["sentences_per_cpu_s"], per_cpu.get("hf")),
            "first step s": f"{r['first_step_s']:.1f}",
            "epoch 1 s": f"{r['epoch_s'][0]:.1f}",
            "later epoch s": f"{r['later_epoch_s']:.1f}" if r["later_epoch_s"] else "",
            f"peak {r['memory_kind']} MB": f"{r['peak_memory_mb']:.0f}",
            r["f1_name"]: f"{r['f1']:.3f}",
        })
    return rows


def format_markdown(rows: list[dict[str, str]]) -> str:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    lines = ["| " + " | ".join(columns) + " |", "| " + " | ".join("---" for _ in columns) + " |"]
    lines += ["| " + " | ".join(row.get(c, "") for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def format_text(rows: list[dict[str, str]]) -> str:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    widths = {c: max(len(c), *(len(row.get(c, "")) for row in rows)) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns)]
    lines += ["  ".join(row.get(c, "").ljust(widths[c]) for c in columns) for row in rows]
    return "\n".join(lines)


def later_epoch_seconds(epoch_s: list[float]) -> float | None:
    return statistics.median(epoch_s[1:]) if len(epoch_s) > 1 else None


def run(args: argparse.Namespace) -> dict:
    pipelines = [p.strip() for p in args.pipelines.split(",") if p.strip()]
    unknown = set(pipelines) - set(PIPELINES)
    if unknown or not pipelines:
        raise ConfigError(f"--pipelines: choose from {', '.join(PIPELINES)} (got {args.pipelines!r})")
    if args.epochs < 1 or args.batch_size < 1:
        raise ConfigError("--epochs and --batch-size must be at least 1")
    for variant in args.variant:
        if len(variant) < 2 or "=" in variant[0] or not all("=" in o for o in variant[1:]):
            raise ConfigError(f"--variant {' '.join(variant)}: expected a name and KEY=VALUE overrides")
    corpus = _corpus_dir(args.corpus)
    device, precision = resolve_device(args.device, args.precision)
    out = (args.out_dir or REPO / "experiments" / "speed" /
           f"{args.task}_{device}_{args.encoder}_{time.strftime('%Y-%m-%d_%H-%M-%S')}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    counts = prepare_data(args.task, corpus, out / "data", args.max_train, args.max_eval)
    encoder = prepare_encoder(args.encoder, out / "encoders", args.seed)
    spec = {"task": args.task, "device": device, "precision": precision, "encoder": encoder,
            "encoder_name": args.encoder, "data_dir": str(out / "data"), "epochs": args.epochs,
            "batch_size": args.batch_size, "lr": args.lr, "warmup_ratio": WARMUP_RATIO, "seed": args.seed,
            "counts": counts, **TASK_DEFAULTS[args.task]}
    print(f"speed benchmark: {args.task}, {device} {precision}, encoder {args.encoder}, {args.epochs} epochs, "
          f"batch {args.batch_size}, {counts['train']} training items; out {out}", flush=True)
    results = [run_pipeline(p, spec, out) for p in pipelines]
    for name, *overrides in args.variant:
        variant = f"bertlab-{name}"
        results.append({**run_pipeline("bertlab", {**spec, "variant_overrides": overrides}, out, name=variant),
                        "pipeline": variant, "overrides": overrides})
    rows = table_rows(results)
    from bertlab.trainer import cpu_cores, cpu_model

    report = {"spec": spec, "machine": {"cpu": cpu_model(), "cpu_cores": cpu_cores()},
              "date": time.strftime("%Y-%m-%d"), "command": " ".join(["scripts/benchmark_speed.py", *sys.argv[1:]]),
              "results": results}
    gpu = next((r.get("gpu") for r in results if r.get("gpu")), None)
    if gpu:
        report["machine"]["gpu"] = gpu
    with atomic_write(out / "speed.json") as handle:
        json.dump(report, handle, indent=2)
        handle.write("\n")
    machine = gpu or f"{report['machine']['cpu']}, {report['machine']['cpu_cores']} cores"
    with atomic_write(out / "speed.md") as handle:
        handle.write(f"{args.task.upper()}, {device} {precision}, encoder {args.encoder}, {args.epochs} epochs, "
                     f"batch {args.batch_size}, {counts['train']} training items; {machine}; {report['date']}; "
                     f"`{report['command']}`\n\n")
        handle.write(format_markdown(rows))
    print(format_text(rows))
    print(f"wrote {out / 'speed.json'} and {out / 'speed.md'}")
    report["out_dir"] = str(out)
    return report


def main(argv: list[str] | None = None) -> int:
    report = run(parse_args(argv))
    return 1 if any("error" in r for r in report["results"]) else 0
