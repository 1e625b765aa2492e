"""Batching that pays for real tokens, not padding.

NeMo's token classification dataset pads every sentence to the longest one in the whole
dataset (up to ``max_seq_length``); NCBI sentences average ~40 subtokens, so most of each
batch would be padding. :func:`trim_padding` cuts each batch to its own longest row.
"""

from __future__ import annotations

from collections.abc import Callable

from torch.utils.data import DataLoader, default_collate


def trim_padding(collate: Callable = default_collate, mask_index: int = 2) -> Callable:
    """Wrap a collate function so every [batch, time] tensor is cut to the batch's longest
    row, measured on the attention mask at ``mask_index`` of the batch tuple."""

    def collate_trimmed(items):
        batch = collate(items)
        mask = batch[mask_index]
        length = int(mask.sum(dim=1).max()) if mask.numel() else mask.shape[1]
        return tuple(t[:, :length] if t.dim() == 2 and t.shape[1] == mask.shape[1] else t for t in batch)

    return collate_trimmed


def with_dynamic_padding(loader: DataLoader, shuffle: bool) -> DataLoader:
    """The same loader, but batches trimmed to their longest row."""
    return DataLoader(
        loader.dataset,
        batch_size=loader.batch_size,
        shuffle=shuffle,
        num_workers=loader.num_workers,
        pin_memory=loader.pin_memory,
        drop_last=loader.drop_last,
        collate_fn=trim_padding(loader.collate_fn),
    )
