"""Evaluate a saved text classifier (.nemo) on a labeled TSV, offline.

  python scripts/evaluate_tc.py MODEL.nemo data/ncbi_tc3/test_nemo_format.tsv [--out-dir DIR]

Prints precision/recall/F1 per class and macro F1; with --out-dir also writes metrics.json
and predictions.tsv (text, gold, pred). A header row in the TSV is skipped.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bertlab.io import DataError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, help="a .nemo saved by scripts/train_tc.py")
    parser.add_argument("tsv", type=Path, help="text<TAB>label rows")
    parser.add_argument("--out-dir", type=Path, help="write metrics.json and predictions.tsv here")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)

    from bertlab.predict import Predictor
    from bertlab.tasks import evaluate_text_classification

    try:
        predictor = Predictor.load(args.model, batch_size=args.batch_size)
        evaluate_text_classification(predictor, args.tsv, args.out_dir)
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
