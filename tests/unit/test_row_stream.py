"""RowStream: a safetensors file filled block by block, in any order, that reads back like save_file's."""

from __future__ import annotations

import pytest
import torch
from safetensors import safe_open

from interpflow.artifacts import RowStream, read_tensors


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_blocks_in_any_order_read_back_whole(tmp_path, dtype):
    acts, offsets = torch.randn(10, 6), torch.tensor([0, 3, 7, 10])
    path = tmp_path / "acts.safetensors"
    with open(path, "w+b") as file:
        stream = RowStream(file, "acts", 10, 6, dtype, {"offsets": offsets})
        for start, end in [(7, 10), (0, 3), (3, 7)]:
            stream.write(start, acts[start:end])
        stream.close({"layer": 2, "tokens_per_s": 12.5})
    tensors = read_tensors(path)
    assert torch.equal(tensors["acts"], acts.to(dtype)) and torch.equal(tensors["offsets"], offsets)
    with safe_open(str(path), "pt") as f:
        assert f.metadata() == {"layer": "2", "tokens_per_s": "12.5"}


def test_a_block_of_the_wrong_width_is_refused(tmp_path):
    with open(tmp_path / "x.safetensors", "w+b") as file:
        stream = RowStream(file, "acts", 4, 6, torch.float32, {})
        with pytest.raises(ValueError, match="width"):
            stream.write(0, torch.zeros(2, 5))
