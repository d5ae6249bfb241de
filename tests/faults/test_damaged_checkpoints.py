"""A checkpoint records the digest of its tensors: a flipped bit or a truncated file is one `error:` line
naming the file, never a silent evaluation; a damaged resume state is set aside and training starts afresh."""

from __future__ import annotations

import pytest
import torch

from tests.models.conftest import N_CATEGORIES, N_ITEMS, TINY
from ur4rec.models import build
from ur4rec.models.catalog import ItemCatalog
from ur4rec.train.checkpoint import CheckpointError, load_weights, read_checkpoint, save_weights
from ur4rec.train.config import TrainConfig
from ur4rec.train.resume import LoopState, fingerprint, load_state, save_state


def model():
    torch.manual_seed(0)
    categories = torch.randint(0, N_CATEGORIES + 1, (N_ITEMS + 1, 3), generator=torch.Generator().manual_seed(0))
    return build("sasrec", TINY["sasrec"], ItemCatalog(N_ITEMS, N_CATEGORIES, categories))


def test_a_flipped_bit_or_a_cut_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "model.safetensors"
    save_weights(model(), path)
    good = path.read_bytes()
    assert set(read_checkpoint(path)) == set(model().state_dict())
    load_weights(model(), path)
    flipped = bytearray(good)
    flipped[-100] ^= 0x10  # inside the last tensor's bytes
    path.write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match=rf"{path}: checkpoint damaged.*dvc repro -f"):
        load_weights(model(), path)
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(CheckpointError, match=rf"{path}: not a readable checkpoint"):
        load_weights(model(), path)
    assert "\n" not in str(pytest.raises(CheckpointError, read_checkpoint, path).value)


def test_a_damaged_resume_state_is_set_aside_and_the_start_weights_kept(tmp_path, capsys):
    net = model()
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)
    key = fingerprint(TrainConfig(), net, [])
    save_state(tmp_path / "state", LoopState(epoch=1, fingerprint=key), net, optimizer,
               {k: v.clone() for k, v in net.state_dict().items()})
    (tmp_path / "state" / "optimizer.safetensors").write_bytes(b"not a safetensors file")
    with torch.no_grad():  # the state's weights differ from the fresh model's
        for p in net.parameters():
            p.add_(1.0)
    start = {k: v.clone() for k, v in net.state_dict().items()}
    assert load_state(tmp_path / "state", key, net, optimizer) is None
    assert "damaged" in capsys.readouterr().out
    assert all(torch.equal(start[k], v) for k, v in net.state_dict().items())  # not half-restored
    assert load_state(tmp_path / "state", "another run", net, optimizer) is None
    assert "other settings or inputs" in capsys.readouterr().out


def test_a_flipped_byte_in_a_prepared_split_is_refused_not_read(tmp_path):
    """Prepared tables carry page checksums (written by `write_parquet`), and the training readers verify
    them: a flipped byte fails the read instead of becoming another list."""
    import numpy as np
    import pyarrow as pa

    from ur4rec.io import write_parquet
    from ur4rec.train.batch import RerankData

    n = 400
    rng = np.random.default_rng(0)
    candidates = [list(rng.permutation(np.arange(1, 51))[:20]) for _ in range(n)]
    table = pa.table({"sample_id": np.arange(n), "user_id": np.arange(n) % 40 + 1,
                      "target": [c[0] for c in candidates],
                      "history": [list(rng.integers(1, 50, 8)) for _ in range(n)],
                      "candidates": candidates, "target_pos": np.zeros(n, dtype=np.int64)})
    path = tmp_path / "train.parquet"
    write_parquet(path, table, compression="none", use_dictionary=False)
    assert len(RerankData.from_parquet(path, history_len=8)) == n
    damaged = bytearray(path.read_bytes())
    damaged[len(damaged) // 3] ^= 0x01
    path.write_bytes(bytes(damaged))
    with pytest.raises(OSError, match="CRC|checksum") as raised:
        RerankData.from_parquet(path, history_len=8)
    from ur4rec.cli.boundary import damaged_artifact

    assert damaged_artifact(raised.value).startswith(f"{path} is damaged or cut short")
