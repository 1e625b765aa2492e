"""Predict with a trained model: load once, classify or tag many texts.

This is the one inference route of both tasks: the test pass after training, the
``scripts/evaluate_*.py`` reports, the sample printout and ``scripts/predict.py`` all call
:class:`Predictor`.

    from bertlab.predict import Predictor
    predictor = Predictor.load("ner.nemo")                 # GPU when there is one
    predictor.tag(["Familial breast cancer is inherited."])[0].spans
    Predictor.load("tc.nemo").classify(["An abstract ..."])[0].class_name

Tokenization is the training data's: classification splits text on whitespace (NeMo's
text classification dataset), NER splits raw text into CoNLL-style words (a run of letters
and digits, or one other character: the tokenizer of the NCBI CoNLL release,
:data:`bertlab.data.ncbi_iob.TOKEN`). Each word is cut into subtokens on its own and tagged
on its first subtoken, as NeMo's ``subtokens_mask`` does in training.

Inputs are sorted by length and batched with padding to each batch's longest row, under
``torch.inference_mode`` on the model's device. Longer inputs than the model's
``max_seq_length``: classification reads them as training did (``model.dataset.long_text``:
the first subtokens, head and tail, or sentence chunks whose logits are averaged) and flags
a cut text ``truncated``; NER tags overlapping windows of whole words and takes each
entity from one window (see :func:`merge_windows`), so every word gets a tag.
NeMo and torch are imported inside functions.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bertlab.data.iob import document_runs
from bertlab.data.ncbi_iob import TOKEN
from bertlab.long_text import WordEncoder, fit_to_length

DEFAULT_BATCH_SIZE = 64
# Rows x width per batch: 64 NER sentences of 128 subtokens, 16 abstracts of 512. Wider
# batches of long texts pay for padding in attention (quadratic in the width): on 2 CPU
# cores, 100 abstracts at 512 classify in 5.7 s in batches of 16 against 8.5 s in batches of 64.
DEFAULT_BATCH_TOKENS = 8192
# A longer "line" is more likely a wrong file (a binary, a whole book) than one text.
DEFAULT_MAX_CHARS = 200_000


@dataclass(frozen=True)
class Classification:
    """One text's class; ``label`` is None for an empty text or an input with an ``error``."""

    label: int | None
    class_name: str | None
    probabilities: tuple[float, ...] = ()  # by class id
    truncated: bool = False  # longer than max_seq_length: only part of its subtokens were read
    subtokens: int = 0  # without [CLS]/[SEP]
    chunks: int = 1  # > 1: read in sentence chunks (long_text: sentence_chunks)
    error: str | None = None


@dataclass(frozen=True)
class Span:
    start: int  # character offsets into the text: text[start:end] == self.text
    end: int
    label: str
    text: str


@dataclass(frozen=True)
class Tagged:
    """One text's words (with character offsets), their IOB tags and the entity spans."""

    text: str
    words: tuple[str, ...] = ()
    offsets: tuple[tuple[int, int], ...] = ()
    tags: tuple[str, ...] = ()
    spans: tuple[Span, ...] = ()
    windows: int = 1  # > 1: longer than max_seq_length, tagged in overlapping windows
    error: str | None = None


@dataclass
class _Window:
    item: int  # index of the input
    positions: list[int] = field(default_factory=list)  # subtoken position of each word's first subtoken


def word_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the CoNLL-style words of raw text (the NCBI release's tokenizer)."""
    return [match.span() for match in TOKEN.finditer(text)]


def joined_offsets(words: Sequence[str]) -> tuple[str, list[tuple[int, int]]]:
    """Pre-tokenized words as one text joined by single spaces, and each word's span in it."""
    offsets, position = [], 0
    for word in words:
        offsets.append((position, position + len(word)))
        position += len(word) + 1
    return " ".join(words), offsets


def spans_from_tags(text: str, offsets: Sequence[tuple[int, int]], tags: Sequence[str],
                    outside: str = "O") -> list[Span]:
    """Entities of IOB tags as character spans. An ``I-`` that does not continue an entity
    of its type starts one (as conlleval reads it); a tag without a prefix is ``I-``."""
    spans: list[Span] = []
    current: list = []  # [label, first word, last word]

    def close():
        if current:
            start, end = offsets[current[1]][0], offsets[current[2]][1]
            spans.append(Span(start, end, current[0], text[start:end]))
            current.clear()

    for index, tag in enumerate(tags):
        prefix, _, label = tag.partition("-") if "-" in tag else ("I", "", tag)
        if tag == outside or prefix not in ("B", "I"):
            close()
        elif prefix == "B" or not current or current[0] != label:
            close()
            current.extend([label, index, index])
        else:
            current[2] = index
    close()
    return spans


def word_windows(lengths: Sequence[int], budget: int) -> list[tuple[int, int]]:
    """Word ranges ``[start, end)`` of at most ``budget`` subtokens each (``lengths`` are
    per word, each <= budget) covering all words; consecutive windows overlap by about
    half a window so every word is also seen with context on both sides."""
    windows, start, count = [], 0, len(lengths)
    while True:
        end, total = start, 0
        while end < count and total + lengths[end] <= budget:
            total += lengths[end]
            end += 1
        windows.append((start, end))
        if end >= count:
            return windows
        # Next window starts after the first half of this one (at least one word on).
        following, skipped = start, 0
        while following < end - 1 and skipped + lengths[following] <= total // 2:
            skipped += lengths[following]
            following += 1
        start = max(following, start + 1)
        while sum(lengths[start:end + 1]) > budget:  # the next window must reach past this one
            start += 1


def merge_windows(windows: Sequence[tuple[int, int]], tags: Sequence[Sequence[str]]) -> list[str]:
    """One tag per word from overlapping windows (``tags[k]`` covers ``windows[k]``).

    Words before a switch point come from the earlier window, the rest from the later
    one. The switch is placed in the overlap where neither window continues an entity
    (no ``I-`` there), nearest the overlap's middle, so each entity is decided by a
    single window; only an entity longer than the whole overlap can be cut.
    """
    merged = list(tags[0])
    floor = 0
    for k in range(1, len(windows)):
        (prev_start, prev_end), (start, _) = windows[k - 1], windows[k]
        low, high = max(start, floor), prev_end
        # A switch before word p is clean when neither window has p continuing an entity.
        clean = [p for p in range(low, high + 1)
                 if not _continues(tags[k - 1], p - prev_start) and not _continues(tags[k], p - start)]
        middle = (low + high) / 2
        point = min(clean, key=lambda p: abs(p - middle)) if clean else int(middle)
        merged = merged[:point] + list(tags[k][point - start:])
        floor = point
    return merged


def _continues(tags: Sequence[str], index: int) -> bool:
    return 0 <= index < len(tags) and tags[index].startswith("I-")


def _default_device():
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast_dtype(precision: str | int | None, device) -> object | None:
    """Training's precision rules for inference: ``None`` means 16-mixed on a GPU, 32 on CPU;
    fp16 asked for on CPU becomes bf16 (bertlab.trainer.trainer_kwargs). Returns the
    autocast dtype, or None for full precision."""
    import torch
    from omegaconf import OmegaConf

    from bertlab.trainer import trainer_kwargs

    on_gpu = device.type == "cuda"
    if precision is None:
        precision = "16-mixed" if on_gpu else "32"
    resolved = str(trainer_kwargs(OmegaConf.create(
        {"accelerator": "gpu" if on_gpu else "cpu", "devices": 1, "precision": precision}))["precision"])
    if "bf16" in resolved:
        return torch.bfloat16
    if resolved.startswith("16"):
        return torch.float16
    return None


class Predictor:
    """A restored (or just trained) model with its tokenization, batching and device."""

    def __init__(self, model, device=None, precision: str | int | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
                 batch_tokens: int = DEFAULT_BATCH_TOKENS,
                 max_seq_length: int | None = None, max_chars: int = DEFAULT_MAX_CHARS, progress: bool | None = False):
        import torch

        from bertlab.tasks import spec_for_model

        self.model = model
        self.spec = spec_for_model(model)
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        if next(model.parameters()).device != self.device:
            model.to(self.device)
        self.dtype = autocast_dtype(precision, self.device)
        if hasattr(model, "use_unpadded"):  # restored without a trainer: training's rule, for this device
            model.use_unpadded(self.device.type == "cuda")
        self.batch_size = batch_size
        self.batch_tokens = batch_tokens
        self.max_seq_length = self._sequence_limit(max_seq_length)
        self.max_chars = max_chars
        self.progress = progress
        self._word_ids = WordEncoder(model.tokenizer)  # each word's subtoken ids, as the training data's
        self._word_cache = self._word_ids.cache
        tokenizer = model.tokenizer
        self._cls, self._sep = tokenizer.cls_id, tokenizer.sep_id
        self._pad = tokenizer.pad_id

    @classmethod
    def load(cls, path: str | Path, device=None, **kwargs) -> Predictor:
        """Restore a ``.nemo`` (offline) onto ``device`` (default: a GPU if present, else CPU)."""
        from bertlab.restore import model_spec, restore_model

        model_spec(path)  # a file that is no bertlab model fails here, before the torch import
        import torch

        device = torch.device(device) if device is not None else _default_device()
        return cls(restore_model(path, map_location=device), device=device, **kwargs)

    @property
    def task(self) -> str:
        return self.spec.name

    @property
    def long_text(self) -> str:
        """How a classifier reads texts longer than max_seq_length (bertlab.long_text)."""
        return self.model.cfg.dataset.get("long_text", "head")

    @property
    def class_names(self) -> list[str]:
        return list(self.model.class_names)

    def predict(self, inputs: Sequence) -> list:
        """:meth:`classify` or :meth:`tag`, whichever the model's task does."""
        return getattr(self, self.spec.predict)(inputs)

    # --- the two tasks -------------------------------------------------------------------

    def classify(self, texts: Sequence[str]) -> list[Classification]:
        """Class id, name and every class's probability for each text; a text longer than
        the model reads at once is read as it was in training (``model.dataset.long_text``)."""
        import torch

        budget, strategy = self.max_seq_length - 2, self.long_text
        results: list[Classification | None] = [None] * len(texts)
        sequences, owners = [], []  # one sequence per chunk; owners: (text index, subtokens, chunks)
        for index, text in enumerate(texts):
            error = self._check(text)
            words = text.split() if error is None else []
            if not words:
                results[index] = Classification(None, None, error=error)
                continue
            word_ids = self._word_ids(words)
            pieces = fit_to_length(words, word_ids, budget, strategy)
            sequences.extend([self._cls, *piece, self._sep] for piece in pieces)
            owners.append((index, sum(map(len, word_ids)), len(pieces)))
        names, logits, first = self.class_names, self._logits(sequences), 0
        for index, length, chunks in owners:
            mean = torch.stack(logits[first:first + chunks]).mean(dim=0)  # chunks: the mean of their logits
            first += chunks
            label = int(mean.argmax())
            results[index] = Classification(label, names[label], tuple(torch.softmax(mean, dim=-1).tolist()),
                                            length > budget and strategy != "sentence_chunks", length, chunks)
        return results  # type: ignore[return-value]

    def tag(self, inputs: Sequence[str | Sequence[str]], documents: Sequence[str | None] | None = None
            ) -> list[Tagged]:
        """IOB tags and entity spans. A string is raw text, split into words here; a list
        of strings is a pre-tokenized sentence (its text is the words joined by spaces).

        With ``documents`` (one name per input) and a model trained with document context
        (:attr:`context`), consecutive inputs of one document are read together, each beside
        its neighbours, as in training; otherwise each input is read alone. A model with
        :attr:`propagates_abbreviations` then tags the short forms each document defines
        wherever they recur in it (a text is a document; so is each input without ``documents``).
        """
        if documents is not None and len(documents) != len(inputs):
            raise ValueError(f"{len(documents)} document names for {len(inputs)} inputs")
        budget = self.max_seq_length - 2
        prepared, input_words, word_ids = [], [], []
        for item in inputs:
            if isinstance(item, str):
                text, offsets = item, word_spans(item)
            else:
                text, offsets = joined_offsets(list(item))
            error = self._check(text)
            words = [text[s:e] for s, e in offsets] if error is None else []
            prepared.append((text, offsets if words else [], error))
            input_words.append(words)
            word_ids.append([ids[:budget] for ids in self._word_ids(words)])
        taggable = [bool(offsets) for _, offsets, _ in prepared]
        groups = document_runs(documents if self.context == "document" else None, len(prepared), taggable)
        tags_of = self._tag_groups(groups, word_ids, budget)
        if self.propagates_abbreviations:
            from bertlab.abbreviations import propagate_in_documents

            tagged = propagate_in_documents(input_words, [tags_of.get(i, ([], 0))[0] for i in range(len(prepared))],
                                            documents, self._outside_label())
            tags_of = {index: (tagged[index], count) for index, (_, count) in tags_of.items()}
        results = []
        for index, (text, offsets, error) in enumerate(prepared):
            if not offsets:
                results.append(Tagged(text, error=error))
                continue
            tags, window_count = tags_of[index]
            results.append(Tagged(text, tuple(text[s:e] for s, e in offsets), tuple(offsets), tuple(tags),
                                  tuple(spans_from_tags(text, offsets, tags, self._outside_label())), window_count))
        return results

    def _tag_groups(self, groups: list[list[int]], word_ids: list, budget: int) -> dict[int, tuple[list[str], int]]:
        """Each grouped input's tags and its group's window count: a group's words are read as
        one text, in overlapping windows of ``budget`` subtokens where they do not fit in one."""
        names = self.model.id_to_label
        sequences, windows, group_spans = [], [], []
        for number, group in enumerate(groups):
            ids_of_words = [ids for index in group for ids in word_ids[index]]
            spans = word_windows([len(ids) for ids in ids_of_words], budget)
            group_spans.append(spans)
            for start, end in spans:
                window, sequence = _Window(number), [self._cls]
                for ids in ids_of_words[start:end]:
                    window.positions.append(len(sequence))
                    sequence.extend(ids)
                sequence.append(self._sep)
                sequences.append(sequence)
                windows.append(window)
        window_tags: list[list[list[str]]] = [[] for _ in groups]
        for window, logits in zip(windows, self._logits(sequences)):
            best = logits.argmax(dim=-1).tolist()
            window_tags[window.item].append([names[best[p]] for p in window.positions])
        tags_of: dict[int, tuple[list[str], int]] = {}  # input -> its tags, its group's windows
        for group, spans, per_window in zip(groups, group_spans, window_tags):
            tags = merge_windows(spans, per_window) if len(spans) > 1 else per_window[0]
            for index in group:  # the group's tags, back to its inputs
                tags_of[index], tags = (tags[:len(word_ids[index])], len(spans)), tags[len(word_ids[index]):]
        return tags_of

    @property
    def context(self) -> str:
        """What a token classifier read beside each sentence in training: ``sentence`` (nothing)
        or ``document`` (its neighbours, see bertlab.nemo_data.token_classification_dataset)."""
        return self.model.cfg.dataset.get("context", "sentence")

    @property
    def propagates_abbreviations(self) -> bool:
        """Whether a short form defined after a tagged entity is tagged wherever it recurs in
        its document (``model.propagate_abbreviations``, bertlab.abbreviations)."""
        return bool(self.model.cfg.get("propagate_abbreviations", False))

    # --- shared machinery ----------------------------------------------------------------

    def _outside_label(self) -> str:
        return self.model.cfg.dataset.get("pad_label", "O")

    def _sequence_limit(self, requested: int | None) -> int:
        """Subtokens per sequence, [CLS] and [SEP] included: the model's max_seq_length
        (what it was trained with), never over the encoder's position embeddings."""
        limit = requested or self.model.cfg.dataset.get("max_seq_length") or -1
        config = getattr(getattr(self.model, "bert_model", None), "config", None)
        positions = getattr(config, "max_position_embeddings", 512)
        limit = positions if limit <= 0 else min(limit, positions)
        if limit < 3:
            raise ValueError(f"max_seq_length must leave room for one subtoken, got {limit}")
        return limit

    def _check(self, text: str) -> str | None:
        if len(text) > self.max_chars:
            return f"{len(text)} characters, over the limit of {self.max_chars} (max_chars)"
        return None

    def _batches(self, lengths: Sequence[int]) -> list[tuple[int, int]]:
        """(first, rows) of each batch over ``lengths`` sorted longest first: at most
        ``batch_size`` rows and ``batch_tokens`` positions (rows x the first row's width)."""
        batches, first = [], 0
        while first < len(lengths):
            rows = max(1, min(self.batch_size, self.batch_tokens // max(lengths[first], 1)))
            batches.append((first, min(rows, len(lengths) - first)))
            first += rows
        return batches

    def _logits(self, sequences: list[list[int]]) -> list:
        """The model's logits for each id sequence (float32, on CPU), in input order: longest
        first in batches padded to their longest row (see :meth:`_batches`)."""
        import torch
        from tqdm.auto import tqdm

        order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i]))
        results: list = [None] * len(sequences)
        batches = self._batches([len(sequences[i]) for i in order])
        # tqdm's disable=None: shown only on a terminal; auto mode also skips short jobs.
        disable = not self.progress if self.progress is not None else (None if len(batches) >= 10 else True)
        was_training = self.model.training
        self.model.eval()
        autocast = (torch.autocast(self.device.type, dtype=self.dtype) if self.dtype is not None
                    else contextlib.nullcontext())
        try:
            with torch.inference_mode(), autocast, tqdm(total=len(order), unit="seq", disable=disable,
                                                         leave=False) as bar:
                for first, rows in batches:
                    chunk = order[first:first + rows]
                    width = len(sequences[chunk[0]])
                    ids = torch.full((len(chunk), width), self._pad, dtype=torch.long)
                    mask = torch.zeros((len(chunk), width), dtype=torch.long)
                    for row, index in enumerate(chunk):
                        ids[row, :len(sequences[index])] = torch.tensor(sequences[index])
                        mask[row, :len(sequences[index])] = 1
                    ids, mask = ids.to(self.device), mask.to(self.device)
                    logits = self.model(input_ids=ids, token_type_ids=torch.zeros_like(ids), attention_mask=mask)
                    logits = logits.float().cpu()
                    for row, index in enumerate(chunk):
                        results[index] = logits[row] if logits.dim() == 2 else logits[row, :len(sequences[index])]
                    bar.update(len(chunk))
        finally:
            self.model.train(was_training)
        return results
