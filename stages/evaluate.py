"""DVC stage `evaluate@<dataset>-<backbone>`: the Base run's best checkpoint -> test metrics in .../base/eval/."""

import sys

from ur4rec.config import load_params
from ur4rec.eval.run import evaluate_base

if __name__ == "__main__":
    evaluate_base(sys.argv[1], sys.argv[2], load_params())
