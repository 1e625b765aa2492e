"""`make data`: build data/ncbi_tc3 and data/ncbi_ner from the NCBI Disease corpus."""

from __future__ import annotations

from pathlib import Path

from bertlab.data.download import fetch_ncbi_disease
from bertlab.data.iob import check_splits, write_nemo_dataset
from bertlab.data.ncbi_iob import conll_splits, original_splits
from bertlab.data.ncbi_tc3 import build_tc3, format_class_counts
from bertlab.data.tsv import strip_tsv_headers


def prepare_tc3(data_dir: Path, local_dir: str | None) -> str:
    corpus = fetch_ncbi_disease(data_dir / "downloads" / "original", local_dir, kind="original")
    out_dir = data_dir / "ncbi_tc3"
    counts = build_tc3(corpus["train"].parent, out_dir)
    strip_tsv_headers([out_dir / f"{split}.tsv" for split in counts], num_classes=3)
    return f"{out_dir}: NCBI_tc-3 abstracts per class\n{format_class_counts(counts)}"


def prepare_ner(data_dir: Path, local_dir: str | None, from_original: bool = False) -> str:
    out_dir = data_dir / "ncbi_ner"
    # The original release names each sentence's abstract (docs_*.txt), for document context.
    original = fetch_ncbi_disease(data_dir / "downloads" / "original", local_dir, kind="original")
    if from_original:
        sources, splits = original, original_splits(original["train"].parent)
    else:
        sources = fetch_ncbi_disease(data_dir / "downloads" / "conll", local_dir, kind="conll")
        splits = conll_splits(sources, original)
    sentences = {split: sentences for split, (sentences, _) in splits.items()}
    check_splits(sentences, sources)
    # `make data` rebuilds: the whole old set is replaced, never merged into.
    write_nemo_dataset(sentences, out_dir, inputs=[*sources.values(), *original.values()], overwrite=True)
    stats = {split: s for split, (_, s) in splits.items()}
    rows = [f"{split:<6}{s.sentences:>10}{s.tokens:>10}{s.mentions:>10}" for split, s in stats.items()]
    source = "original release" if from_original else "CoNLL release"
    return "\n".join([f"{out_dir}: NER from the {source}", f"{'split':<6}{'sentences':>10}{'tokens':>10}"
                      f"{'mentions':>10}", *rows])
