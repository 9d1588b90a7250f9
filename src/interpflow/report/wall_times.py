"""`interpflow wall-times --run-dir results/full`: where a run's time went, from the Snakemake
benchmark file every job writes (`<run>/benchmarks/<rule>/...tsv`: wall seconds, peak memory).

One row per (model, layer, method) with its seconds in each per-method stage, summed over shards,
one row per shared stage (model conversion, data, activation caching, the SAE, ...), and one row per
SAE with its training and each SAEBench evaluation. Printed as markdown; `--out file.csv` also
writes the per-method rows.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from interpflow.artifacts import write_text
from interpflow.errors import InterpflowError

# rules whose benchmark path is <rule>/<model>/L<layer>/<method>[/<shard>].tsv, in pipeline order
METHOD_STAGES = ["train", "detect", "evaluate_detection", "steer", "judge", "evaluate_steering"]


def read_benchmarks(run_dir: str | Path) -> pd.DataFrame:
    """One row per job: rule, the rest of its benchmark path, wall seconds and peak RSS (MB).

    A job benchmarked with `repeat` has several lines; its mean is taken.
    """
    root = Path(run_dir) / "benchmarks"
    files = sorted(root.rglob("*.tsv"))
    if not files:
        raise InterpflowError(f"no Snakemake benchmark files under {root}: is {run_dir} a run's results "
                              f"folder (results/<run_name>) that has run at least one job?")
    rows = []
    for path in files:
        parts = path.relative_to(root).with_suffix("").parts
        bench = pd.read_csv(path, sep="\t")
        rows.append({"rule": parts[0], "path": "/".join(parts[1:]), "seconds": float(bench["s"].mean()),
                     "max_rss_mb": pd.to_numeric(bench["max_rss"], errors="coerce").max()})
    return pd.DataFrame(rows)


def per_method(jobs: pd.DataFrame) -> pd.DataFrame:
    """Seconds per (model, layer, method) and stage, summed over shards; total; peak RSS of any of its jobs."""
    jobs = jobs[jobs["rule"].isin(METHOD_STAGES)].copy()
    if jobs.empty:
        return pd.DataFrame(columns=["model", "layer", "method", *METHOD_STAGES, "total_s", "max_rss_mb", "jobs"])
    fields = jobs["path"].str.split("/", expand=True)
    jobs["model"], jobs["layer"], jobs["method"] = fields[0], fields[1], fields[2]
    keys = ["model", "layer", "method"]
    seconds = jobs.pivot_table(index=keys, columns="rule", values="seconds", aggfunc="sum")
    seconds = seconds.reindex(columns=[s for s in METHOD_STAGES if s in seconds.columns])
    table = seconds.assign(total_s=seconds.sum(axis=1),
                           max_rss_mb=jobs.groupby(keys)["max_rss_mb"].max(),
                           jobs=jobs.groupby(keys).size())
    return table.reset_index().sort_values("total_s", ascending=False, ignore_index=True)


def shared_stages(jobs: pd.DataFrame) -> pd.DataFrame:
    """Seconds per shared rule (by name), summed over its jobs."""
    jobs = jobs[~jobs["rule"].isin(METHOD_STAGES)]
    return (jobs.groupby("rule")
                .agg(jobs=("seconds", "size"), total_s=("seconds", "sum"), max_rss_mb=("max_rss_mb", "max"))
                .reset_index())


def per_sae(jobs: pd.DataFrame) -> pd.DataFrame:
    """Seconds per (model, layer, SAE): its training or loading and each SAEBench evaluation."""
    sae_jobs = jobs[jobs["rule"] == "sae"].copy()
    sae_jobs["evaluation"] = "train_or_load"
    evals = jobs[jobs["rule"] == "saebench"].copy()
    evals = evals[evals["path"].str.count("/") == 3]  # <model>/L<layer>/<sae>/<evaluation>; not the leaderboard
    evals["evaluation"] = evals["path"].str.rsplit("/", n=1).str[1]
    evals["path"] = evals["path"].str.rsplit("/", n=1).str[0]
    both = pd.concat([sae_jobs, evals], ignore_index=True)
    if both.empty:
        return pd.DataFrame(columns=["model", "layer", "sae", "total_s"])
    fields = both["path"].str.split("/", expand=True)
    both["model"], both["layer"], both["sae"] = fields[0], fields[1], fields[2]
    table = both.pivot_table(index=["model", "layer", "sae"], columns="evaluation", values="seconds", aggfunc="sum")
    order = ["train_or_load"] + sorted(c for c in table.columns if c != "train_or_load")
    table = table.reindex(columns=[c for c in order if c in table.columns])
    return table.assign(total_s=table.sum(axis=1)).reset_index().rename_axis(columns=None)


def _markdown(frame: pd.DataFrame) -> str:
    shown = frame.astype(object).where(frame.notna(), None)  # tabulate writes "—" only for None
    return shown.to_markdown(index=False, floatfmt=".0f", missingval="—")


def wall_times(run_dir: str, out: str | None = None) -> None:
    """Print where the run's time went (markdown); with --out, write the per-method rows as CSV."""
    jobs = read_benchmarks(run_dir)
    methods, shared = per_method(jobs), shared_stages(jobs)
    total = jobs["seconds"].sum()
    print(f"# Wall time of {run_dir}: {len(jobs)} jobs, {total:.0f} s summed over jobs ({total / 3600:.2f} h)\n")
    print("## Per method (seconds, summed over shards)\n")
    print(_markdown(methods) + "\n")
    print("## Shared stages\n")
    print(_markdown(shared))
    saes = per_sae(jobs)
    if not saes.empty:
        print("\n## Per SAE (seconds: training or loading it, and each SAEBench evaluation)\n")
        print(_markdown(saes))
    if out:
        write_text(methods.to_csv(index=False), out)
