"""Convert CoNLL IOB files (or the original NCBI Disease corpus) to NeMo token classification files.

  python scripts/iob_to_nemo.py SRC OUT_DIR [--scheme auto|iob1|iob2|iobes] [--strict] [--max-words N]
  python scripts/iob_to_nemo.py --from-original NCBI_DIR OUT_DIR [--keep-types] [--max-words N]
  python scripts/iob_to_nemo.py --to-conll TEXT LABELS [PRED] OUT

Where the documents are known (``-DOCSTART-`` lines; the original corpus's abstracts),
``docs_{split}.txt`` names each sentence's document, for ``model.dataset.context=document``
and ``model.propagate_abbreviations``. An OUT_DIR that already holds a NeMo dataset is
refused unless --overwrite, which replaces
the whole set. Exit status: 0 done, 2 bad input or usage (one line ``error: ...``,
nothing written).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bertlab.cli import exit_on_user_error, positive_int
from bertlab.data import iob, ncbi_iob
from bertlab.data.download import ORIGINAL_FILENAMES
from bertlab.io import DataError, check_input_file


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", help="SRC OUT_DIR, or with --to-conll: TEXT LABELS [PRED] OUT")
    parser.add_argument("--scheme", choices=iob.SCHEMES, default="auto", help="tag scheme of the input")
    parser.add_argument("--strict", action="store_true", help="reject I- tags that start an entity")
    parser.add_argument("--max-words", type=positive_int, help="split longer sentences where no entity continues")
    parser.add_argument("--split", choices=iob.SPLIT_NAMES,
                        help="split name for a single SRC file (default: from its name)")
    parser.add_argument("--overwrite", action="store_true", help="replace the NeMo dataset already in OUT_DIR")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--from-original", action="store_true", help="SRC is the original NCBI corpus directory")
    mode.add_argument("--to-conll", action="store_true", help="NeMo text/labels (+ predictions) -> CoNLL")
    parser.add_argument("--keep-types", action="store_true", help="with --from-original: keep mention types")
    args = parser.parse_args(argv)
    expected = (3, 4) if args.to_conll else (2,)
    if len(args.paths) not in expected:
        parser.error(f"expected {' or '.join(map(str, expected))} paths, got {len(args.paths)}")
    return args


def report(stats: dict[str, iob.ConversionStats]) -> None:
    for split, counts in stats.items():
        print(f"{split}: {counts.sentences} sentences, {counts.tokens} tokens, {counts.mentions} mentions")
        if counts.split_sentences or counts.long_unsplit:
            print(f"  {counts.split_sentences} long sentences split, {counts.long_unsplit} kept over the limit")
        if isinstance(counts, ncbi_iob.NcbiStats):
            print(f"  {counts.abstracts} abstracts, {counts.split_tokens} mentions split a token at their edge")
            if counts.duplicate_pmids:
                print(f"  dropped repeated PMIDs: {', '.join(counts.duplicate_pmids)}")
    repaired = sum(counts.repaired_starts for counts in stats.values())
    if repaired:
        print(f"warning: repaired {repaired} I- tags that started an entity (--strict rejects them)", file=sys.stderr)


@exit_on_user_error
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.to_conll:
        *inputs, out = args.paths
        count = iob.nemo_to_conll(*inputs[:2], out, *inputs[2:])
        print(f"{out}: {count} sentences")
        return 0
    src, out_dir = map(Path, args.paths)
    if args.from_original:
        splits = ncbi_iob.original_splits(src, args.keep_types, args.max_words)
        sentences = {split: sentences for split, (sentences, _) in splits.items()}
        sources = {split: src / name for split, name in ORIGINAL_FILENAMES.items()}
        iob.check_splits(sentences, sources)
        iob.write_nemo_dataset(sentences, out_dir, sources.values(), args.overwrite)
        stats = {split: counts for split, (_, counts) in splits.items()}
    elif src.is_dir():
        stats = iob.convert_corpus_dir(src, out_dir, args.scheme, args.strict, args.max_words, args.overwrite)
    else:
        check_input_file(src)  # a missing file is "not found", not "cannot tell the split"
        if args.split is None and iob.split_name(src) is None:
            raise DataError(src, None, "cannot tell the split from the file name (train, dev, devel or test "
                                       f"ending in {', '.join(iob.INPUT_SUFFIXES)}); give --split")
        counts = iob.convert_file(src, out_dir, args.split, args.scheme, args.strict, args.max_words,
                                  args.overwrite)
        stats = {args.split or iob.split_name(src): counts}
    report(stats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
