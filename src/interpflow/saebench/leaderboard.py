"""Stage: the SAE leaderboard: one row per (model, layer, SAE) with SAEBench's headline metrics and,
beside them, the concept benchmark's scores of the same SAE (the `sae` and `sae_a` methods' rows of
the concept leaderboard), as markdown and CSV; plots of the sparsity frontier (L0 against loss
recovered) and of each metric against L0, per architecture. SAEBench's published results
(`saebench.published`, saebench/published.py) are extra rows, `source` published, drawn with their own
markers."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter  # noqa: E402
import pandas as pd  # noqa: E402

from interpflow.artifacts import atomic_path, read_json, write_text  # noqa: E402
from interpflow.errors import ConfigError  # noqa: E402
from interpflow.saebench.eval_results import RESULT_PATH  # noqa: E402
from interpflow.saebench.published import published_key, read_published  # noqa: E402

KEYS = ["model", "layer", "sae"]
SOURCES = {"run": "o", "published": "^"}  # row source -> its marker in the plots; run rows first
# (eval_type_id, metric category, metric) -> column
HEADLINE = {
    ("core", "sparsity", "l0"): "l0",
    ("core", "reconstruction_quality", "explained_variance"): "explained_variance",
    ("core", "model_performance_preservation", "ce_loss_score"): "loss_recovered",
    ("core", "model_behavior_preservation", "kl_div_score"): "kl_div_score",
    ("core", "reconstruction_quality", "cossim"): "cossim",
    ("core", "misc_metrics", "frac_alive"): "frac_alive",
    ("sparse_probing", "sae", "sae_top_1_test_accuracy"): "sparse_probing_top_1",
    ("sparse_probing", "sae", "sae_test_accuracy"): "sparse_probing_all_latents",
    ("sparse_probing", "llm", "llm_test_accuracy"): "sparse_probing_llm",
    ("tpp", "tpp_metrics", "tpp_threshold_20_total_metric"): "tpp_n20",
    ("scr", "scr_metrics", "scr_metric_threshold_20"): "scr_n20",
    ("absorption_first_letter", "mean", "mean_absorption_fraction_score"): "absorption_fraction",
    ("absorption_first_letter", "mean", "mean_full_absorption_score"): "full_absorption",
    ("ravel", "ravel", "disentanglement_score"): "ravel_disentanglement",
    ("unlearning", "unlearning", "unlearning_score"): "unlearning_score",
    ("autointerp", "autointerp", "autointerp_score"): "autointerp_score",
}
# the concept leaderboard's columns; an offline (proxy) judge's steering score keeps its own column
CONCEPT = {"roc_auc": "concept_roc_auc", "overall": "concept_steering", "proxy_overall": "concept_steering_proxy"}


def architecture(sae_cfg: dict) -> str:
    return str(sae_cfg.get("trained_architecture") or sae_cfg.get("architecture") or "unknown")


def _add_metrics(row: dict, result: dict) -> None:
    row["architecture"] = architecture(result.get("sae_cfg_dict") or {})
    for (eval_type, category, metric), column in HEADLINE.items():
        if result["eval_type_id"] == eval_type:
            row[column] = result["eval_result_metrics"].get(category, {}).get(metric)


def read_results(paths: list[str]) -> pd.DataFrame:
    """One row per (model, layer, SAE) of the run: its architecture, width and headline metrics."""
    rows: dict[tuple, dict] = {}
    for path in paths:
        match = RESULT_PATH.match(str(Path(path).resolve()))
        if match is None:
            raise ConfigError(f"{path} is not results/<run>/saebench/<model>/L<layer>/<sae>/<eval>.json")
        result = read_json(path)
        key = (match["model"], int(match["layer"]), match["sae"])
        row = rows.setdefault(key, {**dict(zip(KEYS, key)), "source": "run"})
        _add_metrics(row, result)
        if result["eval_type_id"] == "core":
            row["n_latents"] = len(result["eval_result_details"])
    return pd.DataFrame(list(rows.values()))


def read_published_results(paths: list[str]) -> pd.DataFrame:
    """One row per published SAE (saebench.published): the same columns, its width from `d_sae`."""
    rows: dict[tuple, dict] = {}
    for path in paths:
        result = read_published(path)
        key = published_key(result)
        row = rows.setdefault(key, {**dict(zip(KEYS, key)), "source": "published"})
        _add_metrics(row, result)
        if result["sae_cfg_dict"].get("d_sae") is not None:
            row["n_latents"] = int(result["sae_cfg_dict"]["d_sae"])
    return pd.DataFrame(list(rows.values()))


def concept_columns(concept_csv: str | None, saes: pd.DataFrame) -> pd.DataFrame:
    """Each SAE's concept-benchmark scores: method rows named <method>-<sae> (config.expand_sae_methods)."""
    if not concept_csv or saes.empty:
        return saes
    board = pd.read_csv(concept_csv)
    for _, row in board.iterrows():
        method, _, sae = str(row["method"]).rpartition("-")
        hit = ((saes["source"] == "run") & (saes["model"] == row["model"]) & (saes["layer"] == int(row["layer"]))
               & (saes["sae"] == sae))
        if method and hit.any():
            for source, column in CONCEPT.items():
                if source in row and pd.notna(row[source]):
                    saes.loc[hit, f"{method}_{column}"] = row[source]
    return saes


def _markdown(table: pd.DataFrame) -> str:
    lines = ["# SAE benchmark", "",
             "One row per SAE: SAEBench's core metrics (loss recovered = ce_loss_score), its sparse-probing",
             "test accuracies (top-1 latent, all latents, and the LLM's own activations as the baseline), TPP with",
             "20 latents ablated per concept (own probe's accuracy drop minus the other probes'), SCR with 20",
             "latents ablated (share of the oracle probe's accuracy the biased probe recovers), first-letter",
             "absorption (mean absorption fraction and full-absorption rate; lower is better; — where too few",
             "letters have a reliable probe), RAVEL's disentanglement (mean of cause and isolation), the unlearning",
             "score (1 - forget accuracy at the best setting that keeps retain accuracy), the autointerp",
             "score (share of examples an LLM classes right from its own explanation of the latent) and,",
             "where the SAE's methods ran, the concept benchmark's mean ROC AUC and steering score (harmonic mean;",
             "`*_concept_steering_proxy` where the offline judge, a stand-in for an LLM judge, scored it).",
             "`source` is run for this run's SAEs, published for SAEBench's published results (saebench.published).",
             ""]
    shown = table.round(4).astype(object).where(table.notna(), "—")
    lines.append("| " + " | ".join(shown.columns) + " |")
    lines.append("|" + "---|" * len(shown.columns))
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in shown.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def _log_l0_axis(ax) -> None:
    """L0 on a log axis labelled 10, 20, 50, ... rather than 2x10^1 (minor labels overlap)."""
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())


def _scatter(ax, table: pd.DataFrame, metric: str) -> None:
    """`metric` against L0: a colour per architecture, a marker per source (the run's SAEs filled
    circles, published ones hollow triangles labelled "(published)")."""
    colours = {arch: f"C{i}" for i, arch in enumerate(sorted(table["architecture"].unique()))}
    for (source, arch), group in table.groupby(["source", "architecture"], sort=False):
        published = source == "published"
        ax.plot(group["l0"], group[metric], SOURCES[source], color=colours[arch], mfc="none" if published else colours[arch],
                label=f"{arch} (published)" if published else arch)


def _plot_frontier(table: pd.DataFrame, path: str) -> None:
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    if not {"l0", "loss_recovered"} <= set(table.columns):
        ax.text(0.5, 0.5, "the sparsity frontier needs the core evaluation (saebench.evals)", ha="center", va="center")
        table = table.iloc[:0].assign(l0=[], loss_recovered=[])
    _scatter(ax, table, "loss_recovered")
    for _, row in table[table["source"] == "run"].iterrows():  # published releases are many, their names long
        ax.annotate(row["sae"], (row["l0"], row["loss_recovered"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    _log_l0_axis(ax)
    ax.set_xlabel("L0 (active latents per token)")
    ax.set_ylabel("loss recovered (CE score)")
    ax.set_title("Sparsity frontier")
    ax.legend(title="architecture", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def _plot_metrics(table: pd.DataFrame, path: str) -> None:
    metrics = [c for c in table.columns if c not in (*KEYS, "source", "architecture", "n_latents", "l0") and table[c].notna().any()
               and not c.endswith("_llm")]  # the LLM's own probe is a baseline, the same for every SAE
    if "l0" not in table.columns:  # every metric is drawn against core's L0
        metrics, table = [], table.assign(l0=float("nan"))
    columns = 3
    rows = max(1, -(-len(metrics) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3.2 * rows), squeeze=False)
    for ax, metric in zip(axes.flat, metrics):
        _scatter(ax, table, metric)
        _log_l0_axis(ax)
        ax.set_xlabel("L0")
        ax.set_title(metric, fontsize=9)
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    if metrics:
        axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def saebench_leaderboard(results: list[str], out_md: str, out_csv: str, out_frontier_plot: str, out_metrics_plot: str,
                         concept_leaderboard: str | None = None, published: list[str] | None = None) -> None:
    """The SAE leaderboard of every SAEBench result JSON, with the concept benchmark's columns beside it
    and, below the run's SAEs, SAEBench's published results (`published`: their *_eval_results.json)."""
    run = concept_columns(concept_leaderboard, read_results(results)).sort_values(KEYS)
    others = read_published_results(published or [])
    table = pd.concat([run, others.sort_values(KEYS) if not others.empty else others], ignore_index=True)
    first = [*KEYS, "source", "architecture", "n_latents", *HEADLINE.values()]
    table = table[[c for c in first if c in table.columns] + [c for c in table.columns if c not in first]]
    with atomic_path(out_csv) as tmp:
        table.to_csv(tmp, index=False)
    write_text(_markdown(table), out_md)
    _plot_frontier(table, out_frontier_plot)
    _plot_metrics(table, out_metrics_plot)
    print(f"SAE leaderboard: {len(run)} SAEs of the run, {len(others)} published")
