"""Batching that pays for real tokens, not padding, and gives the GPU a handful of shapes.

NeMo's token classification dataset pads every sentence to the longest one in the whole
dataset (up to ``max_seq_length``); NCBI sentences average ~40 subtokens, so most of each
batch would be padding. Its text classification dataset pads each batch to its own longest
row, so every batch has a new width. Both are wrong for a GPU: padding is wasted work, and
every new shape costs kernel selection and allocator churn (the first epoch of a run sees
them all).

:class:`BucketBatchSampler` groups sentences of similar length into batches ("sortish":
sorted within pools of 50 batches, batch order shuffled), and :func:`pad_to_multiple` cuts
or pads each batch to its longest row rounded up to a multiple of 16, so a run sees at most
``max_seq_length / 16`` widths. Tokenization stays where NeMo does it: once, when the
dataset is built.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler, Sampler, SequentialSampler, default_collate


class LengthDataset(Dataset):
    """A dataset with the token count of each item (``lengths``) for :class:`BucketBatchSampler`."""

    def __init__(self, dataset: Dataset, mask_index: int = 2):
        self.dataset = dataset
        self.lengths = [int(sum(dataset[i][mask_index])) for i in range(len(dataset))]

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index):
        return self.dataset[index]


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of similar length: the indices of ``sampler`` (random, sequential or
    Lightning's ``DistributedSampler``, which it injects through the same three arguments)
    are cut into pools of ``pool`` batches, each pool is sorted by length and cut into
    batches, and the batch order is shuffled when the sampler shuffles."""

    def __init__(self, sampler: Sampler, batch_size: int, drop_last: bool, pool: int = 50):
        super().__init__()
        self.sampler, self.batch_size, self.drop_last, self.pool = sampler, batch_size, drop_last, pool
        dataset = getattr(sampler, "dataset", None)  # DistributedSampler
        dataset = dataset if dataset is not None else getattr(sampler, "data_source", None)
        if not isinstance(dataset, LengthDataset):
            raise TypeError("BucketBatchSampler needs a sampler over a LengthDataset")
        self.lengths: Sequence[int] = dataset.lengths
        self.shuffle = not isinstance(sampler, SequentialSampler) and getattr(sampler, "shuffle", True)

    def __iter__(self):
        order = list(self.sampler)
        size = self.batch_size * self.pool
        batches = []
        for start in range(0, len(order), size):
            chunk = sorted(order[start : start + size], key=self.lengths.__getitem__)
            batches.extend(chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size))
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        if self.shuffle:
            # Seeded from torch's global RNG, like RandomSampler: a new order every epoch,
            # reproducible under seed_everything.
            generator = torch.Generator().manual_seed(int(torch.empty((), dtype=torch.int64).random_().item()))
            batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
        yield from batches

    @property
    def micro_batch_size(self) -> int:
        """Where NeMo's LR scheduler looks for the batch size of a loader with a batch sampler."""
        return self.batch_size

    def __len__(self) -> int:
        count = len(self.sampler)
        return count // self.batch_size if self.drop_last else -(-count // self.batch_size)


def pad_to_multiple(collate: Callable = default_collate, multiple: int = 16, mask_index: int = 2,
                    pad_id: int = 0, max_width: int = 0) -> Callable:
    """Wrap a collate function so every [batch, time] tensor is cut (or padded: token ids
    with ``pad_id``, masks and the rest with 0) to the batch's longest row, measured on the
    attention mask at ``mask_index``, rounded up to ``multiple`` (at most
    ``max(max_width, collated width)``). ``multiple=1`` cuts to the longest row exactly."""

    def collate_padded(items):
        batch = collate(items)
        mask = batch[mask_index]
        width = mask.shape[1]
        longest = int(mask.sum(dim=1).max()) if mask.numel() else width
        target = min(-(-longest // multiple) * multiple, max(width, max_width))
        if target == width:
            return tuple(batch)
        out = []
        for index, tensor in enumerate(batch):
            if tensor.dim() == 2 and tensor.shape[1] == width:
                if target < width:
                    tensor = tensor[:, :target]
                else:
                    pad = torch.full((tensor.shape[0], target - width), pad_id if index == 0 else 0,
                                     dtype=tensor.dtype)
                    tensor = torch.cat([tensor, pad], dim=1)
            out.append(tensor)
        return tuple(out)

    return collate_padded


def fast_loader(loader: DataLoader, shuffle: bool, *, multiple: int = 16, buckets: bool = True,
                pin_memory: bool = False, pad_id: int = 0, max_width: int = 0) -> DataLoader:
    """The same data as ``loader`` (NeMo's), in length buckets padded to multiples of
    ``multiple``; ``pin_memory`` lets Lightning copy batches to the GPU without blocking."""
    collate = pad_to_multiple(loader.collate_fn, multiple=multiple, pad_id=pad_id, max_width=max_width)
    if not buckets:
        return DataLoader(loader.dataset, batch_size=loader.batch_size, shuffle=shuffle, drop_last=loader.drop_last,
                          num_workers=loader.num_workers, pin_memory=pin_memory, collate_fn=collate)
    dataset = LengthDataset(loader.dataset)
    sampler = RandomSampler(dataset) if shuffle else SequentialSampler(dataset)
    return DataLoader(dataset, batch_sampler=BucketBatchSampler(sampler, loader.batch_size, loader.drop_last),
                      num_workers=loader.num_workers, pin_memory=pin_memory, collate_fn=collate)
