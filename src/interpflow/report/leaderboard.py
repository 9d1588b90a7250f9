"""Stage: the leaderboard: one row per (model, layer, method), detection and steering side by side,
as markdown and CSV, plus plots of ROC AUC per method and of steering score against factor."""

from __future__ import annotations


import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from interpflow.artifacts import atomic_path, read_json, read_parquet, write_text  # noqa: E402

KEYS = ["model", "layer", "method"]
DETECTION = {"roc_auc": "ROC AUC", "hard_negative_accuracy": "hard-neg acc", "f1": "F1", "imbalanced_f1": "imbalanced F1"}
STEERING = {"concept_score": "concept", "instruction_score": "instruction", "fluency_score": "fluency",
            "overall": "overall (HM)", "best_factor": "mean best factor", "perplexity": "perplexity"}


def _concat(paths: list[str]) -> pd.DataFrame:
    return pd.concat([read_parquet(p) for p in paths], ignore_index=True) if paths else pd.DataFrame(columns=KEYS)


def _table(frame: pd.DataFrame, columns: dict, runs: pd.DataFrame, sort_by: str) -> pd.DataFrame:
    """Per-run means of `columns` and the number of concepts, one row for every run ("—" where it does not apply)."""
    if len(frame):
        means = frame.groupby(KEYS)[list(columns)].mean()
        means["concepts"] = frame.groupby(KEYS)["concept_id"].nunique()
        means = means.reset_index()
    else:
        means = pd.DataFrame(columns=[*KEYS, *columns, "concepts"])
    table = runs.merge(means, on=KEYS, how="left")
    return table.sort_values(["model", "layer", sort_by], ascending=[True, True, False], na_position="last")


def summary(detection: pd.DataFrame, steering: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """One row per run, detection and steering columns side by side (the CSV)."""
    det = _table(detection, DETECTION, runs, "roc_auc").rename(columns={"concepts": "detection_concepts"})
    steer = _table(steering, STEERING, runs, "overall").rename(columns={"concepts": "steering_concepts"})
    table = det.merge(steer, on=KEYS)
    return table.sort_values(["model", "layer", "overall", "roc_auc"], ascending=[True, True, False, False],
                             na_position="last")


def _markdown_table(table: pd.DataFrame, columns: dict) -> str:
    shown = table[[*KEYS, *columns, "concepts"]].rename(columns=columns)
    shown = shown.astype(object).where(shown.notna(), None)  # tabulate writes "—" only for None
    shown["concepts"] = pd.Series([None if n is None else int(n) for n in shown["concepts"]], index=shown.index, dtype=object)
    return shown.to_markdown(index=False, floatfmt=".3f", missingval="—")


USAGE = {"requests": "requests sent", "cached": "from cache", "retries": "retries", "empty_replies": "empty replies",
         "prompt_tokens": "prompt tokens", "completion_tokens": "completion tokens", "cost_usd": "cost (USD)"}


def _sum_usage(paths: list[str]) -> dict:
    """Totals over usage JSON files; cost only over files that priced their calls (NaN/absent: unknown)."""
    total: dict = {}
    for path in paths:
        for key, value in read_json(path).items():
            if isinstance(value, (int, float)) and value == value:
                total[key] = total.get(key, 0) + value
    return total


def usage_table(generation: dict, judging: dict) -> pd.DataFrame:
    rows = {"data generation": generation, "judging": judging}
    table = pd.DataFrame([{column: usage.get(key) for key, column in USAGE.items()} for usage in rows.values()],
                         index=list(rows), dtype=object)
    table.loc["total"] = [_total(table[column]) for column in table.columns]
    return table


def _total(column: pd.Series):
    known = [v for v in column if v is not None]
    return sum(known) if known else None


def _usage_cell(column: str, value) -> str:
    if value is None or value != value:
        return "—"
    return f"{value:.4f}" if column == USAGE["cost_usd"] else f"{int(value):,}"


def _markdown(detection: pd.DataFrame, steering: pd.DataFrame, usage: pd.DataFrame) -> str:
    shown = usage.apply(lambda column: [_usage_cell(column.name, v) for v in column])
    lines = [
        "# interpflow leaderboard", "",
        "— : the method does not do this. `concepts`: how many concepts the row averages over.", "",
        "## Concept detection", "",
        "Mean over concepts of per-concept metrics on the latent evaluation split: ROC AUC positives vs "
        "negatives; hard-negative accuracy as AxBench computes it (at the Youden threshold, the mean of the "
        "positives' and the hard negatives' accuracies); best-threshold F1; imbalanced F1 of the positives "
        "against detection.imbalance_ratio times as many plain negatives from the run's imbalance pool (fewer "
        "where the run has fewer).", "",
        _markdown_table(detection, DETECTION), "",
        "## Steering", "",
        "Test-split means at each concept's factor chosen on the select split (methods without a factor: "
        "their one setting); scores 0-2, overall = harmonic mean of the three.", "",
        _markdown_table(steering, STEERING), "",
        "## LLM API usage", "",
        "Calls this run sent to the generator and judge endpoints (answers from the on-disk cache cost nothing); "
        "tokens and cost cover the sent calls, cost only where a price table is configured. — : none.", "",
        shown.to_markdown(stralign="right"), "",
    ]
    return "\n".join(lines)


def _plot_detection(detection: pd.DataFrame, path: str) -> None:
    n_runs = detection.groupby(KEYS).ngroups if len(detection) else 0
    fig, ax = plt.subplots(figsize=(max(7, 0.8 * n_runs), 4))
    if len(detection):
        labels = detection.assign(run=detection["model"] + " L" + detection["layer"].astype(str) + " " + detection["method"])
        groups = labels.groupby("run")["roc_auc"]
        ax.boxplot([g.dropna().to_numpy() for _, g in groups], tick_labels=list(groups.groups))
        ax.axhline(0.5, color="grey", lw=0.8, ls="--")
        plt.setp(ax.get_xticklabels(), rotation=30, ha="right", rotation_mode="anchor")  # label ends at its tick
    ax.set_ylabel("ROC AUC per concept")
    ax.set_title("Concept detection")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def _plot_factor_curves(curves: pd.DataFrame, path: str) -> None:
    fig, ax = plt.subplots(figsize=(9, 4.5))
    test = curves[curves["split"] == "test"] if len(curves) else curves
    groups = list(test.groupby(KEYS))
    colours = plt.get_cmap("tab20")  # 20 distinguishable colours: the default cycle repeats after 10
    for n, ((model, layer, method), group) in enumerate(groups):
        style = {"label": f"{model} L{layer} {method}", "color": colours(n % 20)}
        if group["factor"].isna().all():  # no factor (LoRA, prompting, ...): a horizontal reference line
            ax.axhline(group["overall"].mean(), ls=":", lw=1.2, **style)
        else:
            group = group.sort_values("factor")
            ax.plot(group["factor"], group["overall"], marker="o", **style)
    # factor grids span 0.1 (the demo's) to 16 (RePS's): log-like, and linear near 0 where a grid has 0
    ax.set_xscale("symlog", linthresh=0.1)
    ax.set_xlabel("steering factor (symmetric log scale)")
    ax.set_ylabel("overall score (test split)")
    ax.set_title("Steering score vs factor")
    if len(test):
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def parse_runs(runs: list[str]) -> pd.DataFrame:
    """"model:layer:method" strings -> a frame of KEYS."""
    rows = [run.split(":") for run in runs]
    return pd.DataFrame({"model": [r[0] for r in rows], "layer": [int(r[1]) for r in rows], "method": [r[2] for r in rows]})


def leaderboard(runs: list[str], detection: list[str], steering: list[str], curves: list[str], usage: list[str],
                generation_usage: list[str], out_md: str, out_csv: str, out_detection_plot: str,
                out_steering_plot: str) -> None:
    """Write the leaderboard (markdown, CSV) and its two plots from the evaluation tables."""
    every_run = parse_runs(runs)
    detection_frame, steering_frame = _concat(detection), _concat(steering)
    with atomic_path(out_csv) as tmp:
        summary(detection_frame, steering_frame, every_run).to_csv(tmp, index=False)
    text = _markdown(_table(detection_frame, DETECTION, every_run, "roc_auc"),
                     _table(steering_frame, STEERING, every_run, "overall"),
                     usage_table(_sum_usage(generation_usage), _sum_usage(usage)))
    write_text(text, out_md)
    _plot_detection(detection_frame, out_detection_plot)
    _plot_factor_curves(_concat(curves), out_steering_plot)
