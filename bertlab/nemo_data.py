"""The models' datasets, built in memory from bertlab's own readers.

Given file paths, NeMo 2.4's datasets pickle their features into the data directory (TC:
``cached_*.pkl`` even with ``use_cache: false``; NER: ``cached__*``, which DDP ranks > 0 then
unpickle) and the token classification model unpickles ``<labels>_weights.p`` from there
when one exists, besides writing ``label_ids.csv`` and label statistics next to the data.
A data directory is input: here nothing is written into it and nothing is unpickled from
it. Tokenization is NeMo's own (NER: its ``get_features``; classification: the same per-word
split, with a choice of how long texts are read), once per process, in memory.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from bertlab.data.iob import read_nemo
from bertlab.data.tsv import read_labeled_tsv

log = logging.getLogger(__name__)


class TextClassificationData(Dataset):
    """Classification features, one row per sequence the encoder reads (one per text, or
    one per chunk with ``sentence_chunks``): ``(input_ids, segment_ids, input_mask, label,
    text index, row index)``. The indices let validation average a text's chunks and
    drop the rows DDP's sampler repeats."""

    def __init__(self, rows: list[tuple[list[int], int, int]], pad_id: int):
        self.rows, self.pad_id = rows, pad_id

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index):
        ids, label, text = self.rows[index]
        ones = np.ones(len(ids), dtype=np.int64)
        return np.asarray(ids), np.zeros_like(ones), ones, label, text, index

    def collate_fn(self, items):
        width = max(len(item[0]) for item in items)
        ids = torch.full((len(items), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(items), width), dtype=torch.long)
        for row, item in enumerate(items):
            ids[row, :len(item[0])] = torch.from_numpy(item[0])
            mask[row, :len(item[0])] = 1
        columns = [torch.tensor([item[k] for item in items], dtype=torch.long) for k in (3, 4, 5)]
        return (ids, torch.zeros_like(ids), mask, *columns)


def text_classification_dataset(tokenizer, path: str | Path, max_seq_length: int, long_text: str = "head",
                                num_samples: int = -1) -> TextClassificationData:
    """The rows of a ``text<TAB>label`` file, tokenized as NeMo's TextClassificationDataset
    does (whitespace words, each on its own), long texts fitted by ``long_text``
    (:mod:`bertlab.long_text`); logs how many texts were longer than the budget."""
    from bertlab.long_text import WordEncoder, fit_to_length, kept_subtokens

    table = read_labeled_tsv(path).rows
    if num_samples > 0:
        table = table[:num_samples]
    encode, budget, rows, truncated = WordEncoder(tokenizer), max_seq_length - 2, [], 0
    for index, (text, label) in enumerate(table):
        words = text.split()
        word_ids = encode(words)
        truncated += sum(map(len, word_ids)) > budget
        pieces = fit_to_length(words, word_ids, budget, long_text)
        rows.extend(([tokenizer.cls_id, *piece, tokenizer.sep_id], label, index) for piece in pieces)
    log.info("%s: %d of %d texts longer than %d subtokens, read as %s (%d rows)", Path(path).name, truncated,
             len(table), budget, kept_subtokens(long_text, budget), len(rows))
    return TextClassificationData(rows, tokenizer.pad_id or 0)


def token_classification_dataset(tokenizer, text_path: str | Path, labels_path: str | Path, max_seq_length: int,
                                 label_ids: dict[str, int], pad_label: str, ignore_extra_tokens: bool,
                                 ignore_start_end: bool, num_samples: int = -1, context: str = "sentence",
                                 documents_path: str | Path | None = None):
    """NeMo's BertTokenClassificationDataset for a text/labels pair, tokenized in memory.

    ``context="document"``: a row is not one sentence but consecutive sentences of one
    document (``documents_path``, ``docs_*.txt``; None: the whole file is one document),
    as many as fit in ``max_seq_length``, so each is read beside its neighbours (an
    abbreviation defined two sentences earlier). Every word keeps its own label.
    """
    from nemo.collections.nlp.data.token_classification.token_classification_dataset import (
        BertTokenClassificationDataset,
        get_features,
    )

    sentences = read_nemo(text_path, labels_path, documents_path if context == "document" else None)
    if num_samples > 0:
        sentences = sentences[:num_samples]
    rows = [[sentence] for sentence in sentences]
    if context == "document":
        from bertlab.long_text import WordEncoder

        encode = WordEncoder(tokenizer)
        lengths = [sum(map(len, encode(s.words))) for s in sentences]
        rows = [[sentences[i] for i in group]
                for group in document_rows(lengths, [s.document for s in sentences], max_seq_length - 2)]
        log.info("%s: %d sentences read in %d rows of document context (up to %d subtokens)",
                 Path(text_path).name, len(sentences), len(rows), max_seq_length)
    features = get_features(queries=[" ".join(w for s in row for w in s.words) for row in rows],
                            max_seq_length=max_seq_length, tokenizer=tokenizer, pad_label=pad_label,
                            raw_labels=[[t for s in row for t in s.tags] for row in rows],
                            label_ids=dict(label_ids), ignore_extra_tokens=ignore_extra_tokens,
                            ignore_start_end=ignore_start_end)
    # NeMo's class for its __getitem__ and collate_fn; its __init__ is what reads and writes pickles.
    dataset = BertTokenClassificationDataset.__new__(BertTokenClassificationDataset)
    (dataset.all_input_ids, dataset.all_segment_ids, dataset.all_input_mask, dataset.all_subtokens_mask,
     dataset.all_loss_mask, dataset.all_labels) = features
    return dataset


def document_rows(lengths: Sequence[int], documents: Sequence[str | None], budget: int) -> list[range]:
    """Consecutive sentences of one document (``None``s all belong to one), greedily
    together while their subtokens (``lengths``) fit in ``budget``; a sentence over the
    budget on its own is a row of its own."""
    rows: list[range] = []
    start, total = 0, 0
    for index, length in enumerate(lengths):
        if index > start and (documents[index] != documents[start] or total + length > budget):
            rows.append(range(start, index))
            start, total = index, 0
        total += length
    if lengths:
        rows.append(range(start, len(lengths)))
    return rows


def label_ids_and_weights(labels_path: str | Path, pad_label: str, weighted: bool):
    """NeMo's label mapping for a training labels file (the pad label first, then sorted) and,
    for ``class_balancing: weighted_loss``, NeMo's class weights, computed from the counts."""
    counts = Counter(tag for line in Path(labels_path).read_text(encoding="utf-8").splitlines()
                     for tag in line.split())
    label_ids = {pad_label: 0}
    for label in sorted(set(counts) - {pad_label}):
        label_ids[label] = len(label_ids)
    if not weighted:
        return label_ids, None
    return label_ids, class_weights({label_ids[label]: count for label, count in counts.items()}, len(label_ids))


def class_weights(frequencies: Mapping[int, int], num_classes: int) -> list[float]:
    """The ``class_balancing: weighted_loss`` weights for label ``frequencies`` (id: count),
    NeMo's formula (``get_freq_weights``, ``fill_class_weights``) without importing NeMo, so
    the Hugging Face baseline computes the very same: n / (classes present x count), 1 for a
    class that does not occur."""
    total = sum(frequencies.values())
    return [total / (len(frequencies) * frequencies[label]) if frequencies.get(label) else 1.0
            for label in range(num_classes)]
