"""Packing: rows share a packed sequence without attending to each other."""

from __future__ import annotations

import itertools

import pytest
import torch

from distill.train.run import make_trainer, prepare


def first_batch(config, min_rows: int = 3):
    """The first training batch that packs at least `min_rows` conversations."""
    p = prepare(config)
    trainer = make_trainer(p)
    for batch in trainer.get_train_dataloader():
        if "position_ids" not in batch or int((batch["position_ids"] == 0).sum()) >= min_rows:
            return p, trainer, batch
    raise AssertionError("no batch packs enough rows")


def test_packed_batches_restart_positions_at_each_row(tiny_config):
    p, trainer, batch = first_batch(tiny_config(per_device_batch_size=2))
    assert trainer.args.padding_free and trainer.args.packing_strategy == "bfd"
    assert "attention_mask" not in batch  # the mask comes from position_ids (no padding at all)
    pos, labels, ids = batch["position_ids"][0], batch["labels"][0], batch["input_ids"][0]
    assert pos.shape == ids.shape and batch["input_ids"].shape[0] == 1  # flattened
    starts = (pos == 0).nonzero().flatten().tolist()
    assert len(starts) > 2  # several conversations in the batch
    bounds = [*starts, len(pos)]
    lengths = [b - a for a, b in itertools.pairwise(bounds)]
    for start, length in zip(starts, lengths, strict=True):
        assert pos[start : start + length].tolist() == list(range(length))
        assert labels[start] == -100  # never predict a row's first token from the previous row
    # Every row in the batch is one of our tokenized conversations, whole.
    rows = {tuple(r) for r in p.dataset["input_ids"]}
    for start, length in zip(starts, lengths, strict=True):
        assert tuple(ids[start : start + length].tolist()) in rows
    assert torch.equal(batch["cu_seq_lens_q"], torch.tensor(bounds, dtype=torch.int32))
    # Packed rows fit max_length.
    assert all(sum(r) <= 512 for r in trainer.train_dataset["seq_lengths"])


@pytest.mark.parametrize("attn", [None, "sdpa", "eager"])
def test_packed_logits_equal_each_row_alone(tiny_config, attn):
    """Ours (sdpa_packed, the CPU default) and transformers' mask-from-position-ids path (sdpa, eager)."""
    _, trainer, batch = first_batch(tiny_config(attn_implementation=attn), min_rows=2)
    model = trainer.model.eval()
    assert model.config._attn_implementation == (attn or "sdpa_packed")
    pos, ids = batch["position_ids"], batch["input_ids"]
    inputs = {k: v for k, v in batch.items() if k != "labels"}  # what the trainer passes the model
    with torch.no_grad():
        packed = model(**inputs).logits[0]
        starts = [*(pos[0] == 0).nonzero().flatten().tolist(), ids.shape[1]]
        assert len(starts) > 2
        for a, b in itertools.pairwise(starts):
            alone = model(input_ids=ids[:, a:b]).logits[0]
            torch.testing.assert_close(packed[a:b], alone, atol=1e-4, rtol=1e-4)
    # Without the boundaries the rows would see each other: the check above is not vacuous.
    with torch.no_grad():
        leaky = model(input_ids=ids).logits[0]
    a, b = starts[1], starts[2]
    assert not torch.allclose(leaky[a:b], model(input_ids=ids[:, a:b]).logits[0], atol=1e-4)


def test_without_packing_batches_are_padded(tiny_config):
    _, trainer, batch = first_batch(tiny_config(packing=False, per_device_batch_size=2))
    assert not trainer.args.padding_free
    mask = batch["attention_mask"]
    assert mask.shape == batch["input_ids"].shape and mask.shape[0] == 2
    assert (batch["labels"][mask == 0] == -100).all()
