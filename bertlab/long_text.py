"""Texts longer than the encoder reads at once: how a classifier sees a long abstract.

``model.dataset.long_text`` picks one of three ways, used alike by training, validation,
the test pass and :class:`bertlab.predict.Predictor`:

- ``head``: the first ``max_seq_length - 2`` subtokens (NeMo's truncation);
- ``head_tail``: the first quarter of the budget and the last three quarters (Sun et al.
  2019, "How to fine-tune BERT for text classification": the 128 + 382 split was best
  for 512-token IMDb reviews; an abstract's conclusion is at its end);
- ``sentence_chunks``: whole sentences packed into chunks of at most the budget; every
  chunk trains with its text's label, and a text's logits are the mean of its chunks'
  (nothing is cut).

Tokenization is NeMo's text classification dataset's: whitespace words, each cut into
subtokens on its own.
"""

from __future__ import annotations

from collections.abc import Sequence

STRATEGIES = ("head", "head_tail", "sentence_chunks")
_SENTENCE_END = (".", "?", "!")
_CLOSERS = "\"')]}"


def check_strategy(name: str) -> str:
    from bertlab.config import check_choice

    check_choice("model.dataset.long_text", name, STRATEGIES)
    return name


class WordEncoder:
    """Subtoken ids of whitespace words, each tokenized on its own as NeMo's datasets do,
    with a cache (abstracts repeat most of their words). A word the tokenizer drops
    entirely (a lone combining mark) becomes [UNK], so it still counts as a word."""

    def __init__(self, tokenizer, cache_limit: int = 500_000):
        self.tokenizer, self.cache_limit = tokenizer, cache_limit
        self.cache: dict[str, list[int]] = {}

    def __call__(self, words: Sequence[str]) -> list[list[int]]:
        cache = self.cache
        new = [word for word in dict.fromkeys(words) if word not in cache]
        if new:
            if len(cache) > self.cache_limit:
                cache.clear()
            tokenizer = self.tokenizer
            hf = getattr(tokenizer, "tokenizer", None)
            if callable(hf):  # the fast HF tokenizer under NeMo's wrapper: one batched call
                encoded = hf(new, add_special_tokens=False)["input_ids"]
            else:
                encoded = [tokenizer.tokens_to_ids(tokenizer.text_to_tokens(word)) for word in new]
            cache.update((word, ids or [tokenizer.unk_id]) for word, ids in zip(new, encoded))
        return [cache[word] for word in words]


def head_tail_split(budget: int) -> tuple[int, int]:
    """``head_tail``'s subtokens kept from the start and from the end: a quarter, three quarters."""
    head = budget // 4
    return head, budget - head


def kept_subtokens(strategy: str, budget: int) -> str:
    """What a text longer than ``budget`` subtokens is read as, for reports."""
    head, tail = head_tail_split(budget)
    return {"head": f"their first {budget} subtokens",
            "head_tail": f"their first {head} and last {tail} subtokens",
            "sentence_chunks": "sentence chunks (mean of the chunks' logits)"}[strategy]


def sentence_groups(words: Sequence[str]) -> list[range]:
    """Word ranges of the sentences of whitespace-split text: a sentence ends at a word
    ending in . ? or ! (before closing quotes or brackets)."""
    groups, start = [], 0
    for index, word in enumerate(words):
        if word.rstrip(_CLOSERS).endswith(_SENTENCE_END):
            groups.append(range(start, index + 1))
            start = index + 1
    if start < len(words):
        groups.append(range(start, len(words)))
    return groups


def fit_to_length(words: Sequence[str], word_ids: Sequence[Sequence[int]], budget: int,
                  strategy: str) -> list[list[int]]:
    """The subtoken id sequences (without [CLS]/[SEP], each at most ``budget`` long) that
    stand for one text under ``strategy``: one sequence, or one per chunk."""
    ids = [i for word in word_ids for i in word]
    if len(ids) <= budget:
        return [ids]
    if strategy == "head":
        return [ids[:budget]]
    if strategy == "head_tail":
        head, tail = head_tail_split(budget)
        return [ids[:head] + ids[len(ids) - tail:]]
    chunks: list[list[int]] = []
    current: list[int] = []
    for sentence in sentence_groups(words):
        sentence_ids = [i for index in sentence for i in word_ids[index]]
        if len(current) + len(sentence_ids) <= budget:
            current.extend(sentence_ids)
            continue
        if current:
            chunks.append(current)
        # A sentence longer than the budget is cut into budget-sized pieces.
        pieces = [sentence_ids[i:i + budget] for i in range(0, len(sentence_ids), budget)]
        chunks.extend(pieces[:-1])
        current = list(pieces[-1])
    if current:
        chunks.append(current)
    return chunks
