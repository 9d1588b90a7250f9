"""Stage: the leaderboard: one row per (model, layer, method), detection and steering side by side,
as markdown and CSV, plus plots of ROC AUC per method and of steering score against factor."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from interpflow.artifacts import atomic_path, read_parquet, write_text  # noqa: E402

KEYS = ["model", "layer", "method"]
DETECTION = {"roc_auc": "ROC AUC", "hard_negative_accuracy": "hard-neg acc", "f1": "F1", "imbalanced_f1": "imbalanced F1"}
STEERING = {"concept_score": "concept", "instruction_score": "instruction", "fluency_score": "fluency",
            "overall": "overall (HM)", "best_factor": "mean best factor", "perplexity": "perplexity"}


def _concat(paths: list[str]) -> pd.DataFrame:
    return pd.concat([read_parquet(p) for p in paths], ignore_index=True) if paths else pd.DataFrame(columns=KEYS)


def summary(detection: pd.DataFrame, steering: pd.DataFrame) -> pd.DataFrame:
    det = detection.groupby(KEYS)[list(DETECTION)].mean() if len(detection) else pd.DataFrame(columns=list(DETECTION))
    steer = steering.groupby(KEYS)[list(STEERING)].mean() if len(steering) else pd.DataFrame(columns=list(STEERING))
    table = det.join(steer, how="outer").reset_index()
    return table.sort_values(["model", "layer", "overall"], ascending=[True, True, False], na_position="last")


def _markdown(table: pd.DataFrame, usage: dict) -> str:
    shown = table.rename(columns={**DETECTION, **STEERING})
    shown = shown.astype(object).where(shown.notna(), None)  # tabulate writes "—" only for None
    text = shown.to_markdown(index=False, floatfmt=".3f", missingval="—")
    lines = [
        "# interpflow leaderboard", "",
        "Detection: mean over concepts of per-concept metrics on the latent evaluation split "
        "(ROC AUC positives vs negatives; hard-negative accuracy at the Youden threshold; best-threshold F1; "
        "imbalanced F1 against pooled negatives). Steering: test-split means at each concept's factor chosen on "
        "the select split; scores 0-2, overall = harmonic mean of the three. — : the method does not do this.",
        "", text, "",
        f"Judge calls: {usage.get('requests', 0)} requests ({usage.get('cached', 0)} from cache), "
        f"{usage.get('prompt_tokens', 0)} prompt + {usage.get('completion_tokens', 0)} completion tokens, "
        f"cost ${usage.get('cost_usd', 0.0):.4f}.", "",
    ]
    return "\n".join(lines)


def _sum_usage(paths: list[str]) -> dict:
    total: dict = {}
    for path in paths:
        for key, value in json.loads(Path(path).read_text()).items():
            if isinstance(value, (int, float)) and value == value:  # skip NaN costs
                total[key] = total.get(key, 0) + value
    return total


def _plot_detection(detection: pd.DataFrame, path: str) -> None:
    fig, ax = plt.subplots(figsize=(7, 3.5))
    if len(detection):
        labels = detection.assign(run=detection["model"] + " L" + detection["layer"].astype(str) + " " + detection["method"])
        groups = labels.groupby("run")["roc_auc"]
        ax.boxplot([g.dropna().to_numpy() for _, g in groups], tick_labels=list(groups.groups))
        ax.axhline(0.5, color="grey", lw=0.8, ls="--")
        ax.tick_params(axis="x", rotation=30)
    ax.set_ylabel("ROC AUC per concept")
    ax.set_title("Concept detection")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def _plot_factor_curves(curves: pd.DataFrame, path: str) -> None:
    fig, ax = plt.subplots(figsize=(7, 3.5))
    test = curves[curves["split"] == "test"] if len(curves) else curves
    for (model, layer, method), group in test.groupby(KEYS):
        label = f"{model} L{layer} {method}"
        if group["factor"].isna().all():  # no factor (prompting): a horizontal reference line
            ax.axhline(group["overall"].mean(), ls=":", lw=1, label=label, color="black")
        else:
            group = group.sort_values("factor")
            ax.plot(group["factor"], group["overall"], marker="o", label=label)
    ax.set_xlabel("steering factor (strength = factor x a_c)")
    ax.set_ylabel("overall score (test split)")
    ax.set_title("Steering score vs factor")
    if len(test):
        ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def leaderboard(detection: list[str], steering: list[str], curves: list[str], usage: list[str],
                out_md: str, out_csv: str, out_detection_plot: str, out_steering_plot: str) -> None:
    """Write the leaderboard (markdown, CSV) and its two plots from the evaluation tables."""
    detection_frame, steering_frame = _concat(detection), _concat(steering)
    table = summary(detection_frame, steering_frame)
    with atomic_path(out_csv) as tmp:
        table.to_csv(tmp, index=False)
    write_text(_markdown(table, _sum_usage(usage)), out_md)
    _plot_detection(detection_frame, out_detection_plot)
    _plot_factor_curves(_concat(curves), out_steering_plot)
