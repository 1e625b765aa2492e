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

    from bertlab.restore import restore_model
    from bertlab.tasks import evaluate_text_classification

    model = restore_model(args.model)
    try:
        evaluate_text_classification(model, args.tsv, args.out_dir, batch_size=args.batch_size,
                                     max_seq_length=model.cfg.dataset.max_seq_length)
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
