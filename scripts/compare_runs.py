"""Compare training runs: hyperparameters that differ, validation and test metrics, throughput, curves.

  python scripts/compare_runs.py [DIR...] [--experiment PATTERN] [--sort COLUMN [--ascending]]
                                 [--metric M] [--scalars a,b] [--csv P] [--markdown P] [--plot P]

Every directory under DIR (default: experiments) holding TensorBoard event files is a run.
Two tables: one row per run, and one per group of runs that differ only by their seed (mean
± sample std, n, the seeds; the group with the best mean dev score per task is marked *).
The Markdown tables go to stdout unless --markdown names a file; the plot is always written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bertlab.cli import exit_on_user_error


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dirs", nargs="*", type=Path, default=[Path("experiments")], metavar="DIR",
                        help="where to look for runs (default: experiments)")
    parser.add_argument("--experiment", metavar="PATTERN",
                        help="only runs whose experiment name (exp_manager.name) matches, e.g. 'ner*'")
    parser.add_argument("--sort", metavar="COLUMN", help="sort both tables by this column (descending)")
    parser.add_argument("--ascending", action="store_true", help="sort ascending instead")
    parser.add_argument("--metric", help="validation metric for the best/final columns "
                                         "(default: val_macro_f1 for text classification, val_entity_f1 for NER)")
    parser.add_argument("--scalars", help="comma-separated scalars to plot (default: train_loss and the metric)")
    parser.add_argument("--csv", type=Path, help="write the run table as CSV, and the seed groups beside it "
                                                 "(<name>.groups.csv)")
    parser.add_argument("--markdown", type=Path, help="write the Markdown table here instead of stdout")
    parser.add_argument("--plot", type=Path, help="the PNG of the curves (default: <first DIR>/comparison.png)")
    args = parser.parse_args(argv)
    scalars = [tag.strip() for tag in (args.scalars or "").split(",") if tag.strip()]

    from bertlab.compare import compare  # pandas and friends: not needed for --help

    result = compare(args.dirs, metric=args.metric, scalars=scalars or None, csv_path=args.csv,
                     markdown_path=args.markdown, plot_path=args.plot, experiment=args.experiment,
                     sort=args.sort, ascending=args.ascending)
    if args.markdown is None:
        print(result.markdown)
    for path in result.written:
        print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
