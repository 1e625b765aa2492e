"""Evaluate a saved NER model (.nemo) with exact-match entity scores, offline.

  python scripts/evaluate_ner.py MODEL.nemo --conll data.tsv [--out-dir DIR]
  python scripts/evaluate_ner.py MODEL.nemo --text text_test.txt --labels labels_test.txt [--documents docs_test.txt]

Prints precision/recall/F1 per entity type; with --out-dir also writes metrics.json and
predictions.conll (token, gold, pred) and errors.tsv (false positives, false
negatives, boundary and type errors, each with its sentence). A model trained with
document context reads each sentence beside the others of its document: the documents
come from --documents, or from the -DOCSTART- lines of a CoNLL file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bertlab.cli import exit_on_user_error, positive_int


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, help="a .nemo saved by scripts/train_ner.py")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--conll", type=Path, help="CoNLL/IOB file: token ... tag per line")
    source.add_argument("--text", type=Path, help="NeMo text file (with --labels)")
    parser.add_argument("--labels", type=Path, help="NeMo labels file matching --text")
    parser.add_argument("--documents", type=Path, help="NeMo documents file matching --text (docs_*.txt)")
    parser.add_argument("--out-dir", type=Path, help="write metrics.json, predictions.conll and errors.tsv here")
    parser.add_argument("--batch-size", type=positive_int, default=64)
    args = parser.parse_args(argv)
    if args.text and not args.labels:
        parser.error("--text needs --labels")
    if args.documents and not args.text:
        parser.error("--documents goes with --text")

    from bertlab.data.iob import read_iob, read_nemo
    from bertlab.tasks import check_evaluation

    # Everything the user gave is checked before the model loads (~20 s).
    inputs = [args.conll] if args.conll else [args.text, args.labels, *([args.documents] if args.documents else [])]
    check_evaluation(args.model, "token_classification", inputs, args.out_dir,
                     ("metrics.json", "predictions.conll", "errors.tsv"))
    gold = read_iob(args.conll)[0] if args.conll else read_nemo(args.text, args.labels, args.documents)

    from bertlab.predict import Predictor
    from bertlab.tasks import evaluate_ner

    predictor = Predictor.load(args.model, batch_size=args.batch_size)
    evaluate_ner(predictor, gold, args.out_dir, source=str(args.conll or args.text), batch_size=args.batch_size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
