"""Length buckets and bucket padding (bertlab/batching.py), on synthetic rows."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, DistributedSampler

from bertlab.batching import BucketBatchSampler, LengthDataset, fast_loader, pad_to_multiple

WIDTH = 128


class Rows(torch.utils.data.Dataset):
    """NeMo-like NER items: (ids, segment ids, mask, ...) padded to the dataset's width."""

    def __init__(self, lengths):
        self.lengths = lengths

    def __len__(self):
        return len(self.lengths)

    def __getitem__(self, i):
        mask = torch.zeros(WIDTH, dtype=torch.long)
        mask[: self.lengths[i]] = 1
        return mask * (i + 1), torch.zeros(WIDTH, dtype=torch.long), mask, torch.tensor(i)


def _lengths(n=300, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(3, 120, (n,), generator=generator).tolist()


def test_buckets_cover_every_row_once_with_few_widths():
    lengths = _lengths()
    base = DataLoader(Rows(lengths), batch_size=8)
    loader = fast_loader(base, shuffle=True, multiple=16)
    seen, widths = [], set()
    for ids, _, mask, index in loader:
        seen.extend(index.tolist())
        widths.add(ids.shape[1])
        assert ids.shape[1] >= int(mask.sum(dim=1).max())
        assert ids.shape[1] - int(mask.sum(dim=1).max()) < 16
    assert sorted(seen) == list(range(len(lengths)))
    assert widths <= set(range(16, WIDTH + 1, 16))
    assert len(loader) == -(-len(lengths) // 8)


def test_batches_hold_similar_lengths_and_order_changes_per_epoch():
    lengths = _lengths()
    loader = fast_loader(DataLoader(Rows(lengths), batch_size=8), shuffle=True)
    torch.manual_seed(1)
    first = [index.tolist() for *_, index in loader]
    second = [index.tolist() for *_, index in loader]
    assert first != second
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in first) / len(first)
    assert spread < 10  # random batches of 8 from 3..120 spread ~90 tokens
    torch.manual_seed(1)
    assert [index.tolist() for *_, index in loader] == first  # seeded


def test_validation_order_is_sorted_and_deterministic():
    lengths = _lengths(50)
    loader = fast_loader(DataLoader(Rows(lengths), batch_size=8), shuffle=False)
    order = [i for *_, index in loader for i in index.tolist()]
    assert [lengths[i] for i in order] == sorted(lengths)
    assert order == [i for *_, index in loader for i in index.tolist()]


def test_pad_to_multiple_extends_dynamic_batches_with_the_pad_id():
    def collate(items):  # NeMo's text classification collate: padded to the batch's longest row
        longest = max(len(ids) for ids in items)
        ids = torch.tensor([row + [0] * (longest - len(row)) for row in items])
        return ids + 100 * (ids > 0), torch.zeros_like(ids), (ids > 0).long(), torch.zeros(len(items))

    batch = pad_to_multiple(collate, multiple=16, pad_id=7, max_width=256)([[1] * 5, [1] * 20])
    assert batch[0].shape == (2, 32) and batch[2].shape == (2, 32)
    assert batch[0][0, 5:].tolist() == [0] * 15 + [7] * 12  # collate's own padding, then ours
    assert int(batch[2].sum()) == 25 and batch[3].shape == (2,)


def test_lightning_can_inject_a_distributed_sampler():
    """Under DDP Lightning rebuilds the batch sampler with (sampler, batch_size, drop_last)."""
    loader = fast_loader(DataLoader(Rows(_lengths(100)), batch_size=8), shuffle=True)
    assert isinstance(loader.dataset, LengthDataset)
    halves = []
    for rank in (0, 1):
        sampler = DistributedSampler(loader.dataset, num_replicas=2, rank=rank, shuffle=True, seed=3)
        batch_sampler = type(loader.batch_sampler)(sampler, batch_size=8, drop_last=False)
        assert isinstance(batch_sampler, BucketBatchSampler) and batch_sampler.shuffle
        halves.append({i for batch in batch_sampler for i in batch})
    assert halves[0] | halves[1] == set(range(100)) and not halves[0] & halves[1]
