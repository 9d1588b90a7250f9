"""Stage: the leaderboard: one row per (model, layer, method), detection and steering side by side,
as markdown and CSV, plus plots of ROC AUC per method and of steering score against factor."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from interpflow.artifacts import atomic_path, open_tensors, read_json, read_parquet, write_text  # noqa: E402

KEYS = ["model", "layer", "method"]
DETECTION = {"roc_auc": "ROC AUC", "hard_negative_accuracy": "hard-neg acc", "f1": "F1", "imbalanced_f1": "imbalanced F1"}
STEERING = {"concept_score": "concept", "instruction_score": "instruction", "fluency_score": "fluency",
            "overall": "overall (HM)", "best_factor": "mean best factor", "perplexity": "perplexity"}
# The judge's scores: a stand-in judge's (the offline one) go to columns of their own, never beside an LLM's.
SCORES = ("concept_score", "instruction_score", "fluency_score", "overall")
PROXY = "proxy_"
PROXY_HEADERS = {"concept_score": "concept (proxy)", "instruction_score": "instruction (proxy)",
                 "fluency_score": "fluency (proxy)", "overall": "overall (HM, proxy)"}
JUDGE = {"judge": "judge", "unparsed_share": "unread ratings"}
POOL = {"pool_ratio": "imbalance pool"}
LATENT_CHOICE = {"latent_choice": "latent choice"}
CHOICE_NAMES = {"ref": "ref", "labels": "labels", "best_training_auc": "best training AUC (supervised)"}
ARTIFACT = re.compile(r"methods/(?P<model>[^/]+)/L(?P<layer>\d+)/(?P<method>[^/]+)/[^/]+\.safetensors$")


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


def _ratio_text(low: float, high: float) -> str | None:
    """'1:100', or '1:8.0–1:10.0' where a run's concepts differ; None where no pool was scored."""
    if not high > 0:
        return None
    text = lambda r: f"1:{r:.0f}" if r == round(r) else f"1:{r:.1f}"  # noqa: E731
    return text(low) if low == high else f"{text(low)}–{text(high)}"


def _pool_ratios(detection: pd.DataFrame) -> pd.DataFrame:
    """Per run: its concepts' imbalance-pool ratios (positives : pool negatives) and the reason of the
    first concept whose pool fell below detection.imbalance_ratio ("" where none did)."""
    if not len(detection) or "pool_ratio" not in detection:
        return pd.DataFrame(columns=[*KEYS, "pool_ratio", "short_pool"])
    scored = detection[detection["n_pool"] > 0]
    short = scored[scored["imbalanced_note"] != ""]
    grouped = scored.groupby(KEYS)["pool_ratio"]
    ratios = pd.DataFrame({"pool_ratio": [_ratio_text(low, high) for low, high in zip(grouped.min(), grouped.max())]},
                          index=grouped.min().index)
    ratios["short_pool"] = short.groupby(KEYS)["imbalanced_note"].first()
    return ratios.fillna({"short_pool": ""}).reset_index()


def detection_summary(detection: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Per-run detection means, with the imbalance pool's ratio and why it fell short (if it did)."""
    return _table(detection, DETECTION, runs, "roc_auc").merge(_pool_ratios(detection), on=KEYS, how="left")


def _judges(steering: pd.DataFrame) -> pd.DataFrame:
    """Per run: the judge that scored it, whether it is a proxy, and the share of its unreadable ratings."""
    if not len(steering):
        return pd.DataFrame(columns=[*KEYS, "judge", "judge_proxy", "unparsed_share"])
    grouped = steering.groupby(KEYS)
    judges = grouped.agg(judge=("judge_id", lambda ids: ", ".join(sorted(set(ids)))),
                         judge_proxy=("judge_proxy", "all"), any_proxy=("judge_proxy", "any"),
                         unparsed=("unparsed_ratings", "sum"), ratings=("ratings", "sum")).reset_index()
    mixed = judges[judges["judge_proxy"] != judges["any_proxy"]]
    if len(mixed):
        raise ValueError(f"steering of {mixed.iloc[0][KEYS].tolist()} was scored by an LLM judge and a proxy judge "
                         f"({mixed.iloc[0]['judge']}); their scores cannot share a row")
    judges["unparsed_share"] = judges["unparsed"] / judges["ratings"]
    return judges[[*KEYS, "judge", "judge_proxy", "unparsed_share"]]


def steering_table(steering: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Per-run steering means, the judge's scores under their own names (proxy_<score> for a proxy judge),
    the judge and the share of unreadable ratings."""
    table = _table(steering, STEERING, runs, "overall").merge(_judges(steering), on=KEYS, how="left")
    proxy = table["judge_proxy"].eq(True)
    for column in SCORES:
        table[PROXY + column] = table[column].where(proxy)
        table[column] = table[column].where(~proxy)
    return table


def latent_choices(paths: list[str]) -> pd.DataFrame:
    """Per run of a method that picks one SAE latent per concept (its artifacts' `latent_choice`): how
    the latents were chosen, e.g. "best training AUC (supervised)" or "ref ×8, best training AUC
    (supervised) ×2" when concepts differ."""
    from interpflow.methods.sae import CHOICES

    rows = []
    for path in paths:
        match = ARTIFACT.search(Path(path).as_posix())
        if match is None:
            raise ValueError(f"{path} is not results/<run>/methods/<model>/L<layer>/<method>/<shard>.safetensors")
        with open_tensors(path) as tensors:
            codes = tensors.get_tensor("latent_choice").flatten().tolist() if "latent_choice" in tensors.keys() else []
        rows += [(match["model"], int(match["layer"]), match["method"], CHOICE_NAMES[CHOICES[int(c)]]) for c in codes]
    frame = pd.DataFrame(rows, columns=[*KEYS, "choice"])
    if not len(frame):
        return pd.DataFrame(columns=[*KEYS, "latent_choice"])

    def describe(choices: pd.Series) -> str:
        counts = choices.value_counts(sort=False).sort_index()
        return counts.index[0] if len(counts) == 1 else ", ".join(f"{name} ×{n}" for name, n in counts.items())

    return frame.groupby(KEYS)["choice"].agg(describe).rename("latent_choice").reset_index()


def summary(detection: pd.DataFrame, steering: pd.DataFrame, runs: pd.DataFrame,
            choices: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per run, detection and steering columns side by side, and the latent choice (the CSV)."""
    det = detection_summary(detection, runs).rename(columns={"concepts": "detection_concepts"})
    steer = steering_table(steering, runs).rename(columns={"concepts": "steering_concepts"})
    choices = choices if choices is not None else pd.DataFrame(columns=[*KEYS, "latent_choice"])
    table = det.merge(steer, on=KEYS).merge(choices, on=KEYS, how="left").drop(columns="judge_proxy")
    rank = table["overall"].fillna(table[PROXY + "overall"])
    return (table.assign(rank=rank).sort_values(["model", "layer", "rank", "roc_auc"], ascending=[True, True, False, False],
                                                na_position="last").drop(columns="rank"))


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


def _steering_columns(steering: pd.DataFrame) -> dict:
    """The steering table's columns: the LLM judge's scores and/or the proxy's, whichever scored a row."""
    proxy = steering["judge_proxy"].eq(True)
    llm = steering["judge_proxy"].eq(False)
    columns = {}
    if llm.any() or not proxy.any():
        columns.update({column: STEERING[column] for column in SCORES})
    if proxy.any():
        columns.update({PROXY + column: PROXY_HEADERS[column] for column in SCORES})
    return {**columns, "best_factor": STEERING["best_factor"], "perplexity": STEERING["perplexity"], **JUDGE}


def _with_choices(table: pd.DataFrame, choices: pd.DataFrame, columns: dict) -> tuple[pd.DataFrame, dict]:
    """The table with a latent-choice column, where some run chose SAE latents."""
    if not len(choices):
        return table, columns
    return table.merge(choices, on=KEYS, how="left"), {**columns, **LATENT_CHOICE}


def _markdown(detection: pd.DataFrame, steering: pd.DataFrame, usage: pd.DataFrame,
              choices: pd.DataFrame | None = None) -> str:
    shown = usage.apply(lambda column: [_usage_cell(column.name, v) for v in column])
    choices = choices if choices is not None else pd.DataFrame(columns=[*KEYS, "latent_choice"])
    pool_columns = POOL if "pool_ratio" in detection else {}
    detection, detection_columns = _with_choices(detection, choices, {**DETECTION, **pool_columns})
    steering, steering_columns = _with_choices(steering, choices, _steering_columns(steering))
    lines = [
        "# interpflow leaderboard", "",
        "— : the method does not do this. `concepts`: how many concepts the row averages over."
        + (" `latent choice`: how an SAE method picked each concept's latent: `ref`, the latent the concept "
           "names (AxBench's SAE baseline); `labels`, by the latent's label; `best training AUC (supervised)`, the "
           "latent that best separates the concept's training examples (a supervised choice, not AxBench's SAE "
           "baseline)." if len(choices) else ""), "",
        "## Concept detection", "",
        "Mean over concepts of per-concept metrics on the latent evaluation split: ROC AUC positives vs "
        "negatives; hard-negative accuracy as AxBench computes it (at the Youden threshold, the mean of the "
        "positives' and the hard negatives' accuracies); best-threshold F1; imbalanced F1 of the positives "
        "against the run's imbalance pool: plain negatives drawn once per run as AxBench draws them "
        "(detection.imbalance_ratio x the positives per concept, from a data set's whole evaluation file or the "
        "run's generated evaluation data). `imbalance pool`: positives : pool negatives of the row's concepts "
        "(AxBench: 1:100)." + _short_pool_text(detection), "",
        _markdown_table(detection, detection_columns), "",
        "## Steering", "",
        "Test-split means at each concept's factor chosen on the select split (methods without a factor: "
        "their one setting); scores 0-2, overall = harmonic mean of the three. `judge`: what scored the row: "
        "`openai:<model>`, an LLM grading AxBench's three rubrics; `offline:<embedding model>`, the offline "
        "stand-in (sentence-embedding similarity, perplexity, repetition), whose scores stand in the columns "
        "marked (proxy), not comparable with an LLM judge's. `unread ratings`: the share of the row's ratings "
        "(three per generation, every split and factor) whose reply held no readable rating and counted 0.", "",
        _markdown_table(steering, steering_columns), "",
        "## LLM API usage", "",
        "Calls this run sent to the generator and judge endpoints (answers from the on-disk cache cost nothing); "
        "tokens and cost cover the sent calls, cost only where a price table is configured. — : none.", "",
        shown.to_markdown(stralign="right"), "",
    ]
    return "\n".join(lines)


def _short_pool_text(detection: pd.DataFrame) -> str:
    """A sentence on the rows whose pool fell below detection.imbalance_ratio ("" where none did)."""
    short = detection[detection["short_pool"].fillna("") != ""] if "short_pool" in detection else detection.iloc[:0]
    if not len(short):
        return ""
    scored = short["imbalanced_f1"].notna()
    names = lambda rows: ", ".join(f"{r.model} L{r.layer} {r.method}" for r in rows.itertuples())  # noqa: E731
    text = f" Below the configured ratio ({short['short_pool'].iloc[0]}):"
    if (~scored).any():
        text += f" {names(short[~scored])}: imbalanced F1 — (NaN; detection.short_pool: score computes it at the ratio shown)."
    if scored.any():
        text += f" {names(short[scored])}: imbalanced F1 at the ratio shown (detection.short_pool: score)."
    return text


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
                out_steering_plot: str, latent_artifacts: list[str] | None = None) -> None:
    """Write the leaderboard (markdown, CSV) and its two plots from the evaluation tables; `latent_artifacts`:
    the artifacts of the SAE methods, whose `latent_choice` names how each concept's latent was picked."""
    every_run = parse_runs(runs)
    detection_frame, steering_frame = _concat(detection), _concat(steering)
    choices = latent_choices(latent_artifacts or [])
    with atomic_path(out_csv) as tmp:
        summary(detection_frame, steering_frame, every_run, choices).to_csv(tmp, index=False)
    text = _markdown(detection_summary(detection_frame, every_run),
                     steering_table(steering_frame, every_run),
                     usage_table(_sum_usage(generation_usage), _sum_usage(usage)), choices)
    write_text(text, out_md)
    _plot_detection(detection_frame, out_detection_plot)
    _plot_factor_curves(_concat(curves), out_steering_plot)
