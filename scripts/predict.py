"""Classify or tag new text with a saved model (.nemo), offline; the task comes from the model.

  python scripts/predict.py MODEL.nemo texts.txt                    # one text per line
  python scripts/predict.py MODEL.nemo records.jsonl -o out.jsonl   # {"text": ...} per line
  python scripts/predict.py ner.nemo sentences.conll --format conll # pre-tokenized (NER)
  cat texts.txt | python scripts/predict.py ner.nemo --format inline

Classification writes JSONL (label, class_name, probabilities of every class) or TSV;
NER writes JSONL with entity spans as character offsets ({"start", "end", "label",
"text"}), CoNLL (token<TAB>tag) or inline tags. Bad lines (invalid UTF-8, bad JSON,
over-long) are reported on stderr as file:line and left empty in the output.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from bertlab.cli import exit_on_user_error, positive_int
from bertlab.predict import DEFAULT_BATCH_SIZE, DEFAULT_BATCH_TOKENS, DEFAULT_MAX_CHARS  # no torch


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, help="a .nemo saved by scripts/train_tc.py or scripts/train_ner.py")
    parser.add_argument("inputs", nargs="*", help="input files (default or '-': standard input)")
    parser.add_argument("-o", "--output", type=Path, help="write here (atomically) instead of standard output")
    parser.add_argument("--format", choices=["json", "tsv", "conll", "inline"],
                        help="output: json (default), tsv (classification); conll, inline (NER)")
    parser.add_argument("--input-format", choices=["auto", "text", "jsonl", "conll"], default="auto",
                        help="auto: by suffix (.jsonl, .conll), else JSONL if lines are JSON objects, else text")
    parser.add_argument("--batch-size", type=positive_int, default=DEFAULT_BATCH_SIZE, help="texts per batch, at most")
    parser.add_argument("--batch-tokens", type=positive_int, default=DEFAULT_BATCH_TOKENS,
                        help="subtoken positions per batch (texts x the longest), at most: long texts go in fewer")
    parser.add_argument("--device", help="cpu, cuda, cuda:1 (default: a GPU if present)")
    parser.add_argument("--precision", help="32, 16-mixed, bf16-mixed (default: 16-mixed on GPU, 32 on CPU)")
    parser.add_argument("--max-chars", type=positive_int, default=DEFAULT_MAX_CHARS,
                        help="longer lines are reported and skipped")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on a terminal")
    args = parser.parse_args(argv)

    os.environ.setdefault("NEMO_REDIRECT_LOGS_TO_STDERR", "1")  # standard output is for predictions only
    from bertlab.predict_io import check_prediction_args, predict_files

    check_prediction_args(args.model, args.inputs, args.output, args.format)  # before the model loads
    from bertlab.predict import Predictor

    predictor = Predictor.load(args.model, device=args.device, precision=args.precision, batch_size=args.batch_size,
                               batch_tokens=args.batch_tokens, max_chars=args.max_chars,
                               progress=False if args.no_progress else None)
    failed = predict_files(predictor, args.inputs, args.output, args.format, args.input_format)
    return 0 if not failed else 2


if __name__ == "__main__":
    sys.exit(main())
