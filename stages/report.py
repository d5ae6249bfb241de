"""DVC stage `report@<dataset>`: tables, paired t-tests and plots over every evaluated run.

Reads params: `backbones`, `variants`, `report`.
"""

import sys

from ur4rec.config import load_params
from ur4rec.report.build import build_report

if __name__ == "__main__":
    dataset = sys.argv[1]
    build_report(dataset, load_params())
    print(f"report written to data/report/{dataset}/results.md")
