"""Compare training runs: hyperparameters that differ, validation and test metrics, throughput, curves.

  python scripts/compare_runs.py [DIR...] [--metric M] [--scalars a,b] [--csv P] [--markdown P] [--plot P]

Every directory under DIR (default: experiments) holding TensorBoard event files is a run.
The Markdown table goes to stdout unless --markdown names a file; the plot is always written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dirs", nargs="*", type=Path, default=[Path("experiments")], metavar="DIR",
                        help="where to look for runs (default: experiments)")
    parser.add_argument("--metric", help="validation metric for the best/final columns "
                                         "(default: val_macro_f1 for text classification, val_entity_f1 for NER)")
    parser.add_argument("--scalars", help="comma-separated scalars to plot (default: train_loss and the metric)")
    parser.add_argument("--csv", type=Path, help="write the table as CSV")
    parser.add_argument("--markdown", type=Path, help="write the Markdown table here instead of stdout")
    parser.add_argument("--plot", type=Path, help="the PNG of the curves (default: <first DIR>/comparison.png)")
    args = parser.parse_args(argv)
    scalars = [tag.strip() for tag in (args.scalars or "").split(",") if tag.strip()]

    from bertlab.compare import NoRunsError, compare  # pandas and friends: not needed for --help

    try:
        result = compare(args.dirs, metric=args.metric, scalars=scalars or None, csv_path=args.csv,
                         markdown_path=args.markdown, plot_path=args.plot)
    except NoRunsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if args.markdown is None:
        print(result.markdown)
    for path in result.written:
        print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
