"""NeMo's datasets, built in memory from bertlab's own readers.

Given file paths, NeMo 2.4's datasets pickle their features into the data directory (TC:
``cached_*.pkl`` even with ``use_cache: false``; NER: ``cached__*``, which DDP ranks > 0 then
unpickle) and the token classification model unpickles ``<labels>_weights.p`` from there
when one exists, besides writing ``label_ids.csv`` and label statistics next to the data.
A data directory is input: here nothing is written into it and nothing is unpickled from
it. Tokenization is NeMo's own (``get_features``), once per process, in memory.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from bertlab.data.iob import read_nemo
from bertlab.data.tsv import read_labeled_tsv


def text_classification_dataset(tokenizer, path: str | Path, max_seq_length: int, num_samples: int = -1):
    """NeMo's TextClassificationDataset for a ``text<TAB>label`` file, tokenized in memory."""
    from nemo.collections.nlp.data.text_classification import TextClassificationDataset

    rows = read_labeled_tsv(path).rows
    if num_samples > 0:
        rows = rows[:num_samples]
    # The query path tokenizes exactly as the file path does (whitespace split), without a cache.
    dataset = TextClassificationDataset(tokenizer=tokenizer, queries=[text for text, _ in rows],
                                        max_seq_length=max_seq_length)
    for features, (_, label) in zip(dataset.features, rows):
        features[3] = label
    return dataset


def token_classification_dataset(tokenizer, text_path: str | Path, labels_path: str | Path, max_seq_length: int,
                                 label_ids: dict[str, int], pad_label: str, ignore_extra_tokens: bool,
                                 ignore_start_end: bool, num_samples: int = -1):
    """NeMo's BertTokenClassificationDataset for a text/labels pair, tokenized in memory."""
    from nemo.collections.nlp.data.token_classification.token_classification_dataset import (
        BertTokenClassificationDataset,
        get_features,
    )

    sentences = read_nemo(text_path, labels_path)
    if num_samples > 0:
        sentences = sentences[:num_samples]
    features = get_features(queries=[" ".join(s.words) for s in sentences], max_seq_length=max_seq_length,
                            tokenizer=tokenizer, pad_label=pad_label, raw_labels=[list(s.tags) for s in sentences],
                            label_ids=dict(label_ids), ignore_extra_tokens=ignore_extra_tokens,
                            ignore_start_end=ignore_start_end)
    # NeMo's class for its __getitem__ and collate_fn; its __init__ is what reads and writes pickles.
    dataset = BertTokenClassificationDataset.__new__(BertTokenClassificationDataset)
    (dataset.all_input_ids, dataset.all_segment_ids, dataset.all_input_mask, dataset.all_subtokens_mask,
     dataset.all_loss_mask, dataset.all_labels) = features
    return dataset


def label_ids_and_weights(labels_path: str | Path, pad_label: str, weighted: bool):
    """NeMo's label mapping for a training labels file (the pad label first, then sorted) and,
    for ``class_balancing: weighted_loss``, NeMo's class weights, computed from the counts."""
    from nemo.collections.nlp.data.data_utils.data_preprocessing import fill_class_weights, get_freq_weights

    counts = Counter(tag for line in Path(labels_path).read_text(encoding="utf-8").splitlines()
                     for tag in line.split())
    label_ids = {pad_label: 0}
    for label in sorted(set(counts) - {pad_label}):
        label_ids[label] = len(label_ids)
    if not weighted:
        return label_ids, None
    frequencies = {label_ids[label]: count for label, count in counts.items()}
    return label_ids, fill_class_weights(get_freq_weights(frequencies), max(label_ids.values()))
