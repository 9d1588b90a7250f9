"""The circuit benchmark's leaderboard: AUROC per (method, task) for nodes and edges, the Tracr and
SIIT models side by side, means per method, and one ROC plot per method.

Inputs are the score stage's files, `.../circuits/scores/{task}/{kind}/{method}.json` (AUROCs) and
the `.parquet` beside each (TPR/FPR per threshold).
"""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from interpflow.artifacts import atomic_path, read_json, read_parquet, write_text  # noqa: E402
from interpflow.circuits import RANKS_BY_SCORE  # noqa: E402
from interpflow.circuits.scoring import interpbench_curve  # noqa: E402
from interpflow.circuits.sweeps import SWEEPS  # noqa: E402

PATH = re.compile(r".*/circuits/scores/(?P<task>[^/]+)/(?P<kind>[^/]+)/(?P<method>[^/]+)\.json$")
# What InterpBench reports on its SIIT models (Gupta et al. 2024): ACDC ahead of node and edge SP and
# of EAP, with EAP-IG competitive with ACDC.
INTERPBENCH_FINDING = "ACDC ahead of SP (node and edge) and EAP, EAP-IG competitive with ACDC"
# A SIIT model "learned" its program when validation accuracy and IIA both reach this: below it the
# model does not implement the known circuit, and scoring discovery against that circuit means little.
LEARNED = 0.9


def read_scores(paths: list[str]) -> pd.DataFrame:
    rows = []
    for path in paths:
        match = PATH.match(str(Path(path).resolve()))
        if match is None:
            raise ValueError(f"{path} is not .../circuits/scores/<task>/<kind>/<method>.json")
        rows.append({**match.groupdict(), **read_json(path)})
    return pd.DataFrame(rows)


def circuit_table(scores: pd.DataFrame, rule: str = "") -> pd.DataFrame:
    """One row per (method, task): node and edge AUROC of each model kind, ``{kind}_{level}_auroc``
    by InterpBench's rule (``rule=""``, the headline) or ``..._auroc_trapezoid`` (``rule="_trapezoid"``)."""
    values = [f"{level}_auroc{rule}" for level in ("node", "edge")]
    wide = scores.pivot_table(index=["method", "task"], columns="kind", values=values, dropna=False)
    wide.columns = [f"{kind}_{metric}" for metric, kind in wide.columns]
    order = [f"{kind}_{level}_auroc{rule}" for level in ("node", "edge") for kind in ("tracr", "siit")]
    return wide[[c for c in order if c in wide.columns]].reset_index()


def siit_table(paths: list[str]) -> pd.DataFrame:
    """Per task, how well its SIIT model learned the Tracr program (validation set)."""
    rows = []
    for path in paths:
        meta = read_json(path)
        siit = meta["siit"]
        rows.append({"task": meta["task"], "accuracy": siit["accuracy"], "iia": siit["iia"],
                     "strict_accuracy": siit["strict_accuracy"],
                     "effect_in_circuit": siit.get("mean_effect_in_circuit"),
                     "effect_outside": siit.get("mean_effect_outside_circuit"),
                     "epochs": siit["epochs"], "reached_early_stop": siit["stopped_early"]})
    return pd.DataFrame(rows)


def learned_tasks(siit: pd.DataFrame) -> list[str]:
    if siit.empty:
        return []
    return siit.loc[(siit["accuracy"] >= LEARNED) & (siit["iia"] >= LEARNED), "task"].tolist()


def method_means(table: pd.DataFrame, learned: list[str] | None = None) -> pd.DataFrame:
    """Means over tasks per method; with `learned`, the SIIT columns also averaged over those tasks only."""
    means = table.drop(columns="task").groupby("method").mean()
    if learned and "siit_edge_auroc" in table:
        subset = table[table["task"].isin(learned)].groupby("method")
        for level in ("node", "edge"):
            means[f"siit_{level}_auroc_learned"] = subset[f"siit_{level}_auroc"].mean()
    edge_column = "siit_edge_auroc" if "siit_edge_auroc" in means else "tracr_edge_auroc"
    return means.reset_index().sort_values(edge_column, ascending=False).reset_index(drop=True)


def _learned_ranking(means: pd.DataFrame) -> str:
    if "siit_edge_auroc_learned" not in means:
        return ""
    order = means.sort_values("siit_edge_auroc_learned", ascending=False)["method"]
    return f"; on the SIIT models that learned their program: {' > '.join(order)}"


def _markdown(table: pd.DataFrame, means: pd.DataFrame, siit: pd.DataFrame, learned: list[str],
              noise_floor: float | None, sweep: str, thresholds: dict[str, str]) -> str:
    ours = means["method"].tolist()
    lines = ["# Circuit benchmark", "",
             "AUROC of each discovery method's threshold sweep against the known circuit, for nodes and",
             "edges, on the compiled Tracr model and the SIIT-trained model of each task, by InterpBench's",
             "rules: q/k/v inputs scored as their head; undefined rates as 0; points sorted by FPR, a point",
             "whose TPR falls below the last one kept dropped, the ROC closed at (0, 0) and (1, 1), and the",
             "pessimistic staircase area (its `pessimistic_roc.py`).",
             f"Sweep `{sweep}` (`circuits.sweep`): {SWEEPS[sweep].summary}; circuits per method: "
             f"{', '.join(f'{m} {n}' for m, n in thresholds.items())}.",
             *([f"EAP and EAP-IG edge scores with |s| <= {noise_floor:g} x max|s| count as 0 first."]
               if noise_floor is not None else []),
             "The trapezoid-rule AUROCs of the same points are in `leaderboard.csv` (`*_auroc_trapezoid`).",
             f"`*_learned`: the SIIT columns over the tasks whose SIIT model learned its program (validation",
             f"accuracy and IIA >= {LEARNED}): {', '.join(learned) if learned else 'none'}.", "",
             "## Mean over tasks", "", means.round(3).to_markdown(index=False), "",
             f"Ranking by mean edge AUROC here: {' > '.join(ours)}{_learned_ranking(means)}. InterpBench "
             f"reports {INTERPBENCH_FINDING}.", "",
             "## Per task", "", table.round(3).to_markdown(index=False), ""]
    if len(siit):
        lines += ["## SIIT models", "", "Validation accuracy, interchange-intervention accuracy (IIA, mean over the",
                  "circuit's nodes) and strict accuracy (non-circuit nodes resampled, output unchanged); InterpBench's",
                  "`iit` check: the mean share of outputs that change when one node is resample-ablated, over the",
                  "circuit's nodes and over the others (each node's in `models/<task>/siit.json`).", "",
                  siit.round(3).to_markdown(index=False), ""]
    return "\n".join(lines)


def _noise_floor(frame: pd.DataFrame) -> float | None:
    """The floor the score-ranking methods used (None when none ran: the others record none)."""
    floors = frame["noise_floor"].dropna().unique() if "noise_floor" in frame else []
    if len(floors) == 0 and not frame["method"].isin(RANKS_BY_SCORE).any():
        return None
    if len(floors) != 1:
        raise ValueError(f"the score files disagree on (or lack) the noise floor: {list(floors)}; re-run circuit_discover")
    return float(floors[0])


def _sweep(frame: pd.DataFrame) -> tuple[str, dict[str, str]]:
    """The sweep every score file ran (one for the whole table) and each method's number of circuits."""
    names = frame["sweep"].dropna().unique() if "sweep" in frame else []
    if len(names) != 1 or frame["sweep"].isna().any():
        raise ValueError(f"the score files disagree on (or lack) the sweep: {list(names)}; re-run circuit_discover")
    counts = frame.groupby("method")["n_thresholds"].agg(lambda n: f"{n.min()}" if n.min() == n.max() else f"{n.min()}-{n.max()}")
    return str(names[0]), counts.to_dict()


def _plot_roc(method: str, sweeps: dict[tuple[str, str], pd.DataFrame], path: str) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    tasks = sorted({task for task, _ in sweeps})
    colours = {task: plt.get_cmap("tab20")(i % 20) for i, task in enumerate(tasks)}  # one colour per task
    for ax, level in zip(axes, ("node", "edge")):
        for (task, kind), sweep in sorted(sweeps.items()):
            x, y = interpbench_curve(sweep[f"{level}_fpr"], sweep[f"{level}_tpr"])
            ax.step(x, y, "-" if kind == "siit" else "--", where="post", marker=".", color=colours[task],
                    label=f"{task} ({kind})", alpha=0.8)
        ax.plot([0, 1], [0, 1], color="grey", lw=0.5)
        ax.set_xlabel("FPR")
        ax.set_ylabel("TPR")
        ax.set_title(f"{method}: {level}s")
    axes[1].legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.02, 1.0), ncol=1 if len(sweeps) <= 20 else 2)
    fig.suptitle("InterpBench's pessimistic ROC; solid: SIIT model, dashed: compiled Tracr model", fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def circuit_leaderboard(scores: list[str], out_md: str, out_csv: str, plots_dir: str, siit: list[str] | None = None) -> None:
    """The circuit table (markdown and CSV), the SIIT models' metrics, and `roc_<method>.png` in `plots_dir`."""
    frame = read_scores(scores)
    table = circuit_table(frame)
    siit_models = siit_table(siit or [])
    learned = learned_tasks(siit_models)
    means = method_means(table, learned)
    sweep, thresholds = _sweep(frame)
    write_text(_markdown(table, means, siit_models, learned, _noise_floor(frame), sweep, thresholds), out_md)
    with atomic_path(out_csv) as tmp:
        csv = table.merge(circuit_table(frame, "_trapezoid"), on=["method", "task"])
        csv.insert(2, "sweep", sweep)
        csv.to_csv(tmp, index=False)
    for method, group in frame.assign(path=scores).groupby("method"):
        sweeps = {(row.task, row.kind): read_parquet(Path(row.path).with_suffix(".parquet")) for row in group.itertuples()}
        _plot_roc(method, sweeps, str(Path(plots_dir) / f"roc_{method}.png"))
    print(means.round(3).to_string(index=False))
