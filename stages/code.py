"""DVC stage `code`: data/code/<script>.json, the hashes of each stage script's import closure, and
data/code/backbones/<name>.json, the hashes of each `backbone:` entry's model implementation.

Every other stage depends on its script's fingerprint (and a backbone's stages on that backbone's) instead of
on each file it imports, which keeps `dvc.lock` small (DVC rewrites it after every stage) while editing a file
still reruns exactly the stages that import it.
"""

from pathlib import Path

import ur4rec.cli.dag as dag

if __name__ == "__main__":
    root = Path.cwd()  # DVC runs stages in the repository root: hash this checkout, not the installed one
    for path in dag.write_fingerprints(root):
        print(path.relative_to(root))
