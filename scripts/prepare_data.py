"""Build the datasets from the NCBI Disease corpus: data/ncbi_tc3 and data/ncbi_ner.

  python scripts/prepare_data.py [--local-dir DIR] [--ner-from-original] [--only tc|ner]

Downloads the corpus unless --local-dir (or $NCBI_DISEASE_DIR) names a copy of it.
Exit status: 0 done, 2 bad input or a failed download (one line ``error: ...``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from bertlab.cli import exit_on_user_error
from bertlab.data.prepare import prepare_ner, prepare_tc3


@exit_on_user_error  # DataError, DownloadError: one line, exit 2
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=Path("data"), help="output root (default: data)")
    parser.add_argument("--local-dir", help="a local copy of the corpus (original/ and conll/ inside)")
    parser.add_argument("--ner-from-original", action="store_true",
                        help="build the NER data from the original release instead of the CoNLL files")
    parser.add_argument("--only", choices=("tc", "ner"), help="build one dataset")
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(levelname)s: %(message)s")  # e.g. the corpus's repeated PMID
    if args.only in (None, "tc"):
        print(prepare_tc3(args.data_dir, args.local_dir))
    if args.only in (None, "ner"):
        print(prepare_ner(args.data_dir, args.local_dir, args.ner_from_original))
    return 0


if __name__ == "__main__":
    sys.exit(main())
