"""Every input a rule reads is tracked: editing a user file named in the config, or a data file shipped in
the package, plans exactly the jobs that read it (and what depends on them); an untouched run plans nothing.

One small run (`user_files_run`) reads every kind of user file: a concept list,
an AxBench-format data folder, a steering instruction file, an unlearning question file, and a hub model
given as a local folder (also the model the unlearning questions run on). It runs only to the data
stages and the unlearning questions (the targets below), and each case dry-runs a copy of it with the
same targets, two at a time (the run and its nine dry runs: 2 min 5 s, 89 s of CPU, on 2 cores that
other work shared). The shipped-data cases dry-run the session's `tiny_run` with a copy of the package."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest

from runs import REPO, Run, copy_run, scheduled_jobs, snakemake, snakemake_command

pytestmark = pytest.mark.workflow

RUN_NAME = "inputs"
INPUTS = "user_inputs"  # the user's files, inside the run's folder and named relative to it
OVERRIDES = [
    "experiment=tiny",
    f"run_name={RUN_NAME}",
    "concepts.source=file",
    f"concepts.path={INPUTS}/concepts.txt",
    "generator.format=axbench",
    f"generator.path={INPUTS}/axbench",
    f"steering.instructions={INPUTS}/steering.txt",
    f"saebench.unlearning.forget_questions={INPUTS}/forget.jsonl",
    "+model@models.local_hub=hub",
    f"models.local_hub.id={INPUTS}/hub_model",
    "models.local_hub.layers=[2]",
    "models.local_hub.dtype=float32",
]
RESULTS = f"results/{RUN_NAME}"
TARGETS = [
    f"{RESULTS}/concepts.parquet",
    f"{RESULTS}/data/train/s0000.parquet",
    f"{RESULTS}/data/latent_eval/s0000.parquet",
    f"{RESULTS}/saebench/data/local_hub/unlearning_questions.parquet",
]
CONCEPTS = ["rain and storms", "cats", "planets"]


def write_axbench_folder(folder: Path) -> None:
    """A three-concept data set in AxBench's released layout (the columns its parquet files have)."""
    (folder / "generate").mkdir(parents=True)
    (folder / "inference").mkdir()
    meta = [{"concept_id": i, "concept": c, "ref": "", "concept_genres_map": {c: ["text"]}} for i, c in enumerate(CONCEPTS)]
    (folder / "generate/metadata.jsonl").write_text("".join(json.dumps(m) + "\n" for m in meta))

    def rows(split: str, categories: list[str]) -> pd.DataFrame:
        records = [{"input": f"{split} {category} question {k} on {c}?", "output": f"A {category} answer {k} on {c}.",
                    "concept_genre": "text", "category": category, "concept_id": i if category != "negative" else -1}
                   for i, c in enumerate(CONCEPTS) for category in categories for k in range(2)]
        return pd.DataFrame(records)

    rows("train", ["positive", "negative"]).to_parquet(folder / "generate/train_data.parquet")
    rows("eval", ["positive", "negative", "hard negative"]).to_parquet(folder / "inference/latent_eval_data.parquet")


def write_user_files(workdir: Path, model_dir: Path) -> None:
    inputs = workdir / INPUTS
    write_axbench_folder(inputs / "axbench")
    (inputs / "concepts.txt").write_text("rain and storms\ncats\n")
    (inputs / "steering.txt").write_text("".join(f"Write a short note number {k}.\n" for k in range(6)))
    question = {"question": "Which planet is closest to the Sun?", "choices": ["Mercury", "Venus", "Mars", "Saturn"],
                "answer": 0}
    (inputs / "forget.jsonl").write_text(json.dumps(question) + "\n")
    shutil.copytree(model_dir, inputs / "hub_model", ignore=shutil.ignore_patterns("interpflow_model.json"))


@pytest.fixture(scope="module")
def user_files_run(tmp_path_factory, tiny_model_dir) -> Run:
    workdir = tmp_path_factory.mktemp("user_files")
    write_user_files(workdir, tiny_model_dir)
    result = snakemake(workdir, OVERRIDES, *TARGETS)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return Run(workdir, OVERRIDES, workdir / RESULTS)


def dry_run(run: Run, overrides: list[str], targets: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    """A dry run (without Snakemake's lock: the shipped-data cases dry-run one folder side by side)."""
    command, default_env = snakemake_command(run.workdir, overrides, "-n", "--nolock", *targets)
    return subprocess.run(command, capture_output=True, text=True, env={**default_env, **(env or {})}, timeout=600)


def planned(result: subprocess.CompletedProcess) -> set[tuple]:
    """(rule, model) of every job a dry run plans."""
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    if "Nothing to be done" in result.stdout + result.stderr:
        return set()
    return {(rule, w.get("model")) for rule, w in scheduled_jobs(result.stdout)}


def two_at_a_time(function, cases: list[str], folders: list[Path]) -> dict:
    """`function(case, folder)` for every case, two dry runs at once (each is one process parsing the workflow)."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(cases, pool.map(function, cases, folders)))


def rewrite_parquet(path: Path) -> None:
    """Change one row's text (Snakemake 9 compares the content of small files, not only their time)."""
    frame = pd.read_parquet(path)
    frame.loc[0, "output"] += " Edited."
    frame.to_parquet(path)


def append_line(text: str):
    return lambda path: path.write_text(path.read_text() + text)


DATA_JOBS = {("train_data", None), ("eval_data", None)}
MODEL_JOBS = {("prepare_model", "local_hub"), ("unlearning_questions", "local_hub")}
# (file under the user's inputs, how it is edited, the jobs then planned)
EDITS = {
    "concept list": ("concepts.txt", lambda p: p.write_text("rain and storms\nplanets\n"), {("concepts", None), *DATA_JOBS}),
    "steering instructions": ("steering.txt", append_line("Write a haiku.\n"), DATA_JOBS),
    "axbench concepts": ("axbench/generate/metadata.jsonl", append_line("\n"), {("concepts", None), *DATA_JOBS}),
    "axbench training data": ("axbench/generate/train_data.parquet", rewrite_parquet, {("train_data", None)}),
    "axbench evaluation data": ("axbench/inference/latent_eval_data.parquet", rewrite_parquet, {("eval_data", None)}),
    "unlearning questions": ("forget.jsonl", append_line("\n"), {("unlearning_questions", "local_hub")}),
    "local hub model": ("hub_model/config.json", append_line("\n"), MODEL_JOBS),
}


REVISION = [*OVERRIDES, "models.local_hub.revision=0123abcd"]


@pytest.fixture(scope="module")
def user_file_plans(user_files_run, tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    """Each case's dry run, on its own copy of the run: untouched, each edit of EDITS, a new revision."""

    def plan(case: str, folder: Path) -> subprocess.CompletedProcess:
        run = copy_run(user_files_run, folder)
        if case in EDITS:
            name, edit, _ = EDITS[case]
            edit(run.workdir / INPUTS / name)
        return dry_run(run, REVISION if case == "revision" else OVERRIDES, TARGETS)

    cases = ["untouched", *EDITS, "revision"]
    return two_at_a_time(plan, cases, [tmp_path_factory.mktemp("edited") for _ in cases])


def test_an_untouched_run_plans_nothing(user_file_plans):
    assert planned(user_file_plans["untouched"]) == set()


@pytest.mark.parametrize("case", list(EDITS))
def test_editing_a_user_file_plans_exactly_the_jobs_that_read_it(user_file_plans, case):
    assert planned(user_file_plans[case]) == EDITS[case][2]


def test_a_new_hub_revision_prepares_the_model_again(user_files_run, user_file_plans):
    manifest = json.loads((user_files_run.workdir / "results/models/local_hub/interpflow_model.json").read_text())
    assert manifest["source"] == "hub" and manifest["revision"] is None  # a local folder has no revision
    assert planned(user_file_plans["revision"]) == MODEL_JOBS


SHIPPED_DATA_JOBS = {"train_data", "eval_data"}
# shipped file -> the first job its edit plans in the tiny run (which reads the demo data set and instructions)
SHIPPED_EDITS = {
    "data/demo/concepts/food.json": "concepts",
    "data/demo/steering_instructions.json": "train_data",
    "data/demo/instructions.json": None,  # read by generated data only: nothing
}


@pytest.fixture(scope="module")
def shipped_plans(tiny_run, tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    """Each case's dry run of the tiny run with its own copy of the package (the Snakefile and the jobs
    import the package on PYTHONPATH), one shipped file edited: same data, other bytes."""

    def plan(name: str, folder: Path) -> subprocess.CompletedProcess:
        src = folder / "src"
        shutil.copytree(REPO / "src", src, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        path = src / "interpflow" / name
        path.write_text(path.read_text().rstrip() + "\n\n")
        env = {"PYTHONPATH": f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        return dry_run(tiny_run, tiny_run.overrides, [], env)

    return two_at_a_time(plan, list(SHIPPED_EDITS), [tmp_path_factory.mktemp("package") for _ in SHIPPED_EDITS])


@pytest.mark.parametrize("name", list(SHIPPED_EDITS))
def test_editing_shipped_data_plans_exactly_the_jobs_that_read_it(shipped_plans, name):
    rules = {rule for rule, _ in planned(shipped_plans[name])}
    first_job = SHIPPED_EDITS[name]
    if first_job is None:
        assert rules == set()  # also shows that a copy of the package alone changes nothing
        return
    assert first_job in rules and rules >= SHIPPED_DATA_JOBS
    assert "prepare_model" not in rules
    assert ("concepts" in rules) == (first_job == "concepts")
