"""One training of a tiny reranker on the loop, as one process or as a rank under torchrun.

`python -m tests.models.ddp_worker PREPARED OUT` (one process) and
`python -m torch.distributed.run --standalone --nproc-per-node=2 -m tests.models.ddp_worker PREPARED OUT`
train the same model on the same global batches; rank 0 writes OUT/fit.json (per-epoch losses and validation)
and OUT/model.safetensors.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ur4rec.models import build
from ur4rec.train.batch import RerankData
from ur4rec.train.catalog import read_catalog
from ur4rec.train.config import DistributedConfig, TrainConfig
from ur4rec.train.determinism import make_repeatable
from ur4rec.train.loop import fit
from ur4rec.train.rerank import RerankTask

# 326 training lists in batches of 25: slices of 12 and 13 rows, and a last batch of one row (an empty slice).
BATCH_SIZE = 25
CFG = TrainConfig(seed=3, batch_size=BATCH_SIZE, epochs=4, patience=4, lr=3e-3, progress=False, threads=1,
                  distributed=DistributedConfig(backend="gloo"))


def main(prepared: Path, out: Path) -> None:
    make_repeatable(CFG.seed, CFG.threads, CFG.deterministic)
    catalog = read_catalog(prepared / "items.parquet")
    # dropout 0: each rank draws its own dropout masks, so only a dropout-free model can match exactly
    model = build("dlcm", {"dim": 16, "dropout": 0.0, "user_history": True}, catalog)
    train, valid = (RerankData.from_parquet(prepared / f"{s}.parquet", model.history_len, catalog.n_items)
                    for s in ("train", "valid"))
    fit(model, RerankTask(train, valid), CFG, out)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
