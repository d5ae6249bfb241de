"""Two clones of one project share results through the shipped team remote (docs/sharing.md): what A ran,
B pulls and does not rerun; what B changes, A pulls. Real git, a real local DVC remote, real `dvc repro`.

Layout, as on a team machine: <tmp>/project (clone A), <tmp>/b (clone B), <tmp>/origin.git (the git server),
<tmp>/shared/data (the raw-data mirror both clones read) and <tmp>/shared/dvc-remote (the DVC remote that
`.dvc/config` names, relative to each checkout). Generation is committed from fixture outputs (its own
tests run the LLM); everything else runs for real.
"""

from __future__ import annotations

import csv
import hashlib
import io
import shutil
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, DvcProject
from tests.fixtures.raw import write_ml100k
from tests.retriever.test_dvc_stages import write_llm_outputs

pytestmark = pytest.mark.slow

TINY = [
    "datasets=[ml-100k]", "backbones=[dlcm]", "variants=[control]", "fetch.mirrors=[../shared/data]",
    "prepare.n_candidates=20", "prepare.eval_samples_per_user=2", "prepare.train_samples_per_user=3",
    "prepare.llm_history_len=5", "train.epochs=1", "train.progress=false", "evaluate.progress=false",
    "backbone.dlcm.dim=16", "retriever.joint.epochs=1",
]
RUN = "data/ml-100k/runs/dlcm/seed0"
EVERY_RUN_STAGE = ["evaluate@ml-100k-dlcm-0", "pretrain@ml-100k-dlcm-0", "train@ml-100k-dlcm-0",
                   "train_aug@ml-100k-dlcm-0"]


def share(project: DvcProject, verb: str, check: bool = True):
    return project.run("python", "-m", "ur4rec", "share", verb, check=check)


def md5s(folder: Path) -> set[str]:
    return {hashlib.md5(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}


def remote_objects(remote: Path) -> set[str]:
    return {p.parent.name + p.name for p in (remote / "files" / "md5").rglob("*") if p.is_file()}


def up_to_date(project: DvcProject) -> bool:
    return "Data and pipelines are up to date" in project.run("dvc", "status").stdout


def make_clone_a(dvc_project, shared: Path) -> DvcProject:
    """The project with the shipped `.dvc/config` (team remote) and a bare git server to push to."""
    a = dvc_project(*TINY)
    shutil.copy2(REPO_ROOT / ".dvc" / "config", a.root / ".dvc" / "config")
    a.run("dvc", "config", "core.autostage", "false")
    with open(a.root / ".gitignore", "a") as ignore:
        ignore.write("__pycache__/\n")
    a.run("git", "commit", "-qam", "team remote")
    a.run("git", "init", "-q", "--bare", str(shared.parent / "origin.git"))
    a.run("git", "remote", "add", "origin", str(shared.parent / "origin.git"))
    a.run("git", "push", "-q", "-u", "origin", "HEAD")
    return a


def test_a_pushes_b_reruns_nothing_b_changes_a_pulls(dvc_project, tmp_path):
    shared = tmp_path / "shared"
    raw = write_ml100k(shared / "data" / "ml-100k")
    a = make_clone_a(dvc_project, shared)
    assert a.run("dvc", "remote", "default").stdout.strip() == "team"

    # 1. A runs the pipeline (generation outputs committed from fixtures) and shares it.
    a.repro("prepare@ml-100k")
    write_llm_outputs(a.root, "ml-100k")
    a.run("dvc", "commit", "-f", "generate@ml-100k")
    ran = a.ran_stages(a.repro())
    assert ran == sorted(["encode@ml-100k", "reference@ml-100k", "report@ml-100k", *EVERY_RUN_STAGE]), ran
    a.run("git", "add", "-A")
    a.run("git", "commit", "-qm", "results")
    refused = share(a, "push", check=False)  # the team store does not exist yet: one clear line, nothing written
    assert refused.returncode == 1 and "does not exist here" in refused.stderr and "mkdir -p" in refused.stderr
    (shared / "dvc-remote").mkdir()
    pushed = share(a, "push")
    assert "dvc.lock is committed" in pushed.stdout, pushed.stdout
    a.run("git", "push", "-q")
    objects = remote_objects(shared / "dvc-remote")
    assert not md5s(raw) & objects, "raw files went to the remote"
    assert md5s(a.root / RUN / "arms" / "control" / "train") <= objects
    assert any((shared / "dvc-remote" / "runs").rglob("*")), "run-cache not pushed"

    # 2. B clones and pulls: the raw files come from its own mirror, everything else from the remote.
    a.run("git", "clone", "-q", str(tmp_path / "origin.git"), str(tmp_path / "b"))
    b = DvcProject(tmp_path / "b")
    b.run("git", "config", "user.email", "b@example.invalid")
    b.run("git", "config", "user.name", "b")
    pulled = share(b, "pull")
    assert b.ran_stages(pulled) == ["fetch@ml-100k"], pulled.stdout
    assert "differ from the team's" not in pulled.stderr
    assert b.ran_stages(b.repro()) == []                     # 0 prompts, 0 encodes, 0 trainings
    assert up_to_date(b)
    metrics = RUN + "/eval/control/metrics.json"
    first_metrics = (a.root / metrics).read_text()
    assert (b.root / metrics).read_text() == first_metrics

    # 3. A change in B reruns only what reads it; B shares the new results.
    b.set_params("retriever.joint.epochs=2")                 # the augmented arms' training only
    assert b.ran_stages(b.repro()) == ["evaluate@ml-100k-dlcm-0", "report@ml-100k", "train_aug@ml-100k-dlcm-0"]
    told = share(b, "push")
    assert "git add dvc.lock params.yaml" in told.stdout, told.stdout
    b.run("git", "commit", "-qam", "two joint epochs")
    b.run("git", "push", "-q")

    # 4. A pulls B's commit and results: up to date, nothing to run.
    a.run("git", "pull", "-q")
    assert a.ran_stages(share(a, "pull")) == []
    assert up_to_date(a)
    assert a.ran_stages(a.repro()) == []
    assert (a.root / metrics).read_text() == (b.root / metrics).read_text()

    # 5. A grid as a DVC experiment: only the new arm's stages run, one tidy row per experiment, shared by
    # `dvc exp push` (git ref to origin, outputs to the DVC remote).
    grid = a.run("dvc", "exp", "run", "--temp", "-n", "grid", "-S", "variants=[control,llm]")
    assert a.ran_stages(grid) == ["evaluate@ml-100k-dlcm-0", "pretrain@ml-100k-dlcm-0", "report@ml-100k",
                                  "train_aug@ml-100k-dlcm-0"]
    assert up_to_date(a)                                      # a --temp experiment leaves the workspace alone
    a.run("dvc", "exp", "push", "origin", "grid")
    b.run("dvc", "exp", "pull", "origin", "grid")
    header, *rows = csv.reader(io.StringIO(b.run("python", "-m", "ur4rec", "exp", "show", "--csv").stdout))
    assert sorted(header) == sorted(["Experiment", "datasets", "backbones", "variants", "seeds",
                                     *(f"runs.dlcm/{arm}.ndcg@10" for arm in ("base", "control", "llm"))])
    row = dict(zip(header, next(r for r in rows if r[0] == "grid")))
    assert row["variants"] == "['control', 'llm']" and 0.0 <= float(row["runs.dlcm/llm.ndcg@10"]) <= 1.0

    # 6. Back to A's value in B. The joint-training output persists (a variant with unchanged inputs keeps its
    # folder), and DVC's run-cache never restores a stage with a persistent output: the control is trained
    # again, to the same numbers, and the stages downstream run again.
    b.set_params("retriever.joint.epochs=1")
    again = b.repro()
    assert b.ran_stages(again) == ["evaluate@ml-100k-dlcm-0", "report@ml-100k", "train_aug@ml-100k-dlcm-0"]
    assert "is cached - skipping run" not in again.stdout
    assert (b.root / metrics).read_text() == first_metrics
    # A committed state comes back from git and the DVC cache, with nothing run.
    b.run("git", "checkout", "-q", "HEAD~1", "--", "params.yaml", "dvc.lock")
    b.run("dvc", "checkout", "-q")
    assert up_to_date(b)
