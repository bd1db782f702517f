"""`train oracle --init`: a long run done in chunks, each continuing the last one's weights."""

from __future__ import annotations

import pytest
import torch

import faceedit
from faceedit.data.avatars import load_arrays, write_dataset
from faceedit.errors import FaceeditError
from faceedit.train.oracle import OracleTrainConfig, default_oracle_config, train_oracle


def test_a_chunk_starts_where_the_last_one_ended(tmp_path) -> None:
    data = tmp_path / "data"
    write_dataset(data, n=100, size=16, seed=3, workers=1, progress=False)
    model_config = default_oracle_config(load_arrays(data, "train"), channels=(8, 16), hidden=16)
    cfg = dict(epochs=2, batch_size=16, seed=2, augment="heavy", role="judge")
    first = train_oracle(data, tmp_path / "a", OracleTrainConfig(**cfg), model_config, False)
    again = train_oracle(
        data, tmp_path / "b", OracleTrainConfig(**cfg, init=str(first.out_dir)), model_config, False
    )
    # the second chunk's first batches are those of the first run: a trained start has a lower loss
    assert again.losses[0] < first.losses[0]
    start = faceedit.load(first.out_dir).state_dict()
    end = faceedit.load(again.out_dir).state_dict()
    assert any(not torch.equal(start[k], end[k]) for k in start)  # and it trained further

    other = default_oracle_config(load_arrays(data, "train"), channels=(8, 8), hidden=16)
    with pytest.raises(FaceeditError, match="differently shaped"):
        train_oracle(
            data, tmp_path / "c", OracleTrainConfig(**cfg, init=str(first.out_dir)), other, False
        )
    assert not (tmp_path / "c").exists()
