"""DVC stages `evaluate@<dataset>-<backbone>` (Base) and `evaluate_aug@<dataset>-<backbone>-<variant>`:
a run's best checkpoint -> test metrics in data/<ds>/runs/<backbone>/<variant>/eval/."""

import sys

from ur4rec.config import load_params
from ur4rec.eval.run import evaluate_any

if __name__ == "__main__":
    evaluate_any(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "base", load_params())
