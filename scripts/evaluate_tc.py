"""Evaluate a saved text classifier (.nemo) on a labeled TSV, offline.

  python scripts/evaluate_tc.py MODEL.nemo data/ncbi_tc3/test_nemo_format.tsv [--out-dir DIR]

Prints precision/recall/F1 per class and macro F1; with --out-dir also writes metrics.json,
predictions.tsv (text, gold, pred) and confusion_matrix.png. A header row in the TSV is skipped.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bertlab.cli import exit_on_user_error, positive_int


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, help="a .nemo saved by scripts/train_tc.py")
    parser.add_argument("tsv", type=Path, help="text<TAB>label rows")
    parser.add_argument("--out-dir", type=Path,
                        help="write metrics.json, predictions.tsv and confusion_matrix.png here")
    parser.add_argument("--batch-size", type=positive_int, default=64)
    args = parser.parse_args(argv)

    from bertlab.data.tsv import read_labeled_tsv
    from bertlab.tasks import check_evaluation

    # Everything the user gave is checked before the model loads (~20 s).
    cfg = check_evaluation(args.model, "text_classification", [args.tsv], args.out_dir,
                           ("metrics.json", "predictions.tsv", "confusion_matrix.png"))
    read_labeled_tsv(args.tsv, num_classes=cfg.dataset.num_classes)

    from bertlab.predict import Predictor
    from bertlab.tasks import evaluate_text_classification

    predictor = Predictor.load(args.model, batch_size=args.batch_size)
    evaluate_text_classification(predictor, args.tsv, args.out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
