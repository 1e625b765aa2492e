"""Write ``<stem>_nemo_format.tsv`` for each ``text<TAB>label`` TSV: header row removed, rows checked.

  python scripts/strip_tsv_header.py data/ncbi_tc3/*.tsv --num-classes 3 [--out-dir DIR]

Exit status: 0 done, 2 bad input (one line ``error: FILE:LINE: reason``, nothing written).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bertlab.cli import exit_on_user_error, positive_int
from bertlab.data.tsv import strip_tsv_headers


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", type=Path, help="TSV files with text<TAB>label rows")
    parser.add_argument("--num-classes", type=positive_int, help="labels must be in [0, N)")
    parser.add_argument("--out-dir", type=Path, help="where to write (default: beside each input)")
    args = parser.parse_args(argv)
    results = strip_tsv_headers(args.inputs, args.out_dir, args.num_classes)
    for result in results:
        header = "header removed" if result.header_removed else "no header"
        print(f"{result.output_path}: {result.rows_written} rows ({header})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
