"""SAEBench's `scr` (spurious correlation removal) evaluation of one SAE at one (model, layer).

Data: the two-attribute biographies (`two_attribute.py`), cached at the SAE's layer: for each pair
of professions (A, B), texts of every (profession, gender) cell. Probes on mean-pooled activations,
trained on the training texts as SAEBench trains them (`probe_training.py`; the epoch kept is
chosen on the set `probe_selection` names, by default SAEBench's: the probe's own test texts):

- the biased probe: A-and-male against B-and-female, so it can lean on either attribute;
- the profession probe (A vs B, both genders) and the gender probe (male vs female, both professions).

Direction 1 ablates the top-N latents for the gender probe and measures the biased probe on the
profession test labels; direction 2 ablates the top-N for the profession probe and measures it on
the gender labels. Latents are ranked by SAEBench's SCR attribution,
|(mean_pos(f) - mean_neg(f)) * (w . W_dec[f])| on the ablated probe's training texts, and ablated
with the SAE's error kept (as in TPP, on the pooled activations). Per direction,

    scr = (acc_ablated - acc_biased) / (acc_oracle - acc_biased)

where acc_biased is the biased probe before ablation and acc_oracle the accuracy of the probe
trained on the measured attribute itself: 1 when the ablation recovers all the oracle's accuracy,
0 when it changes nothing, and 0 when the oracle is less than 0.001 above the biased probe (SAEBench's
rule). `scr_metric_threshold_{N}` is the direction in which the biased probe was worse before
ablation (the attribute it learned least), as SAEBench; `scr_dir1_/scr_dir2_threshold_{N}` are both
directions. Metrics are plain means over the profession pairs.
"""

from __future__ import annotations

import numpy as np

from interpflow.artifacts import read_parquet, read_tensors
from interpflow.sae.format import check_sae
from interpflow.saebench.output import write_eval_output
from interpflow.saebench.probe_training import PROBE_DEFAULTS, LinearProbe, fit_probe
from interpflow.saebench.sparse_probing import pooled_examples
from interpflow.saebench.tpp import top_latents

DEFAULTS = {
    "n_values": [2, 5, 10, 20, 50, 100, 500],  # SAEBench's
    **PROBE_DEFAULTS,
    "seed": 0,
}
MIN_GAP = 0.001  # SAEBench's: an oracle less than this above the biased probe scores 0
DIRECTIONS = {1: ("gender", "profession"), 2: ("profession", "gender")}  # direction: (ablated, measured) attribute


def scr_effects(sae_pooled: np.ndarray, labels: np.ndarray, probe: LinearProbe, w_dec: np.ndarray) -> np.ndarray:
    """SAEBench's SCR attribution: both signs count."""
    difference = sae_pooled[labels == 1].mean(0) - sae_pooled[labels == 0].mean(0)
    return np.abs(difference * (w_dec @ probe.weight))


def scr_score(changed: float, biased: float, oracle: float) -> float:
    """SAEBench's: the share of the gap to the oracle that ablation recovers, 0 when the gap is under MIN_GAP."""
    return 0.0 if oracle - biased < MIN_GAP else (changed - biased) / (oracle - biased)


def scr_metrics(biased: dict[str, float], oracle: dict[str, float], ablated: dict[int, dict[int, float]]) -> dict[str, float]:
    """SAEBench's SCR scores of one pair from accuracies: `biased` and `oracle` {attribute: the
    biased / the attribute's own probe's accuracy on it}, `ablated` {direction: {N: the biased probe's
    accuracy on the measured attribute after ablation}}. `scr_metric_threshold_{N}` is the direction
    whose attribute the biased probe read worse (none on a tie, as SAEBench)."""
    scores = {}
    for direction, by_n in ablated.items():
        measured = DIRECTIONS[direction][1]
        for n, changed in by_n.items():
            scores[f"scr_dir{direction}_threshold_{n}"] = scr_score(changed, biased[measured], oracle[measured])
    if biased["profession"] != biased["gender"]:
        worse = 1 if biased["profession"] < biased["gender"] else 2  # direction 1 measures profession
        scores |= {f"scr_metric_threshold_{n}": scores[f"scr_dir{worse}_threshold_{n}"] for n in ablated[worse]}
    return scores


def pair_scores(llm: np.ndarray, sae: np.ndarray, texts, w_dec: np.ndarray, cfg: dict) -> dict:
    """SCR of one profession pair; `texts` are its rows (split, profession_label, male), aligned with llm / sae."""
    train, test = (texts["split"] == "train").to_numpy(), (texts["split"] == "test").to_numpy()
    labels = {"profession": texts["label"].to_numpy(), "gender": (texts["gender"] == "male").to_numpy().astype(int)}
    aligned = labels["profession"] == labels["gender"]  # A-and-male or B-and-female

    def probe(rows: np.ndarray, selection_rows: np.ndarray, attribute: str) -> LinearProbe:
        return fit_probe(llm[rows], labels[attribute][rows], llm[selection_rows], labels[attribute][selection_rows], cfg,
                         cfg["seed"])

    # SAEBench's biased probe is chosen on the biased test texts; either attribute labels them alike
    biased = probe(train & aligned, test & aligned, "profession")
    oracle = {a: probe(train, test, a) for a in labels}

    def accuracy(probe: LinearProbe, pooled: np.ndarray, attribute: str) -> float:
        return probe.accuracy(pooled[test], labels[attribute][test])

    base = {a: accuracy(biased, llm, a) for a in labels}
    clean = {a: accuracy(oracle[a], llm, a) for a in labels}
    ablated = {}
    for direction, (removed, measured) in DIRECTIONS.items():
        effects = scr_effects(sae[train], labels[removed][train], oracle[removed], w_dec)
        ablated[direction] = {}
        for n in cfg["n_values"]:
            latents = top_latents(effects, n)
            ablated[direction][n] = accuracy(biased, llm - sae[:, latents] @ w_dec[latents], measured)
    return {"biased_probe_profession_accuracy": base["profession"], "biased_probe_gender_accuracy": base["gender"],
            "profession_probe_accuracy": clean["profession"], "gender_probe_accuracy": clean["gender"],
            **scr_metrics(base, clean, ablated)}


def pairs_mean(pairs, key: str) -> float | None:
    """SAEBench's average over the pairs that have the score (a pair whose biased probe read both
    attributes equally has no scr_metric); None when none has it."""
    values = [scores[key] for scores in pairs if key in scores]
    return float(np.mean(values)) if values else None


def scr(sae: str, sae_name: str, acts: str, index: str, texts: str, model_name: str, layer: int, eval_cfg: dict,
        out: str) -> None:
    """SAEBench's SCR metrics of the SAE at `sae` on the two-attribute texts, written as SAEBench's JSON to `out`."""
    cfg = {**DEFAULTS, **(eval_cfg or {})}
    tensors = read_tensors(sae)
    check_sae(tensors)
    llm, cached = pooled_examples([acts], [index])
    sae_pooled, _ = pooled_examples([acts], [index], tensors)
    frame = read_parquet(texts).set_index("example_id").loc[cached["example_id"]].reset_index()
    w_dec = tensors["W_dec"].float().numpy()
    per_pair = {}
    for pair, rows in frame.groupby("pair").groups.items():
        rows = np.asarray(list(rows))
        texts_of_pair = frame.loc[rows].reset_index(drop=True)
        name = "/".join(texts_of_pair.sort_values("label", ascending=False)["profession"].unique())
        per_pair[name] = pair_scores(llm[rows], sae_pooled[rows], texts_of_pair, w_dec, cfg)
    keys = [f"scr_{kind}_threshold_{n}" for kind in ("metric", "dir1", "dir2") for n in cfg["n_values"]]
    metrics = {k: pairs_mean(per_pair.values(), k) for k in keys}
    details = [{"dataset_name": f"two_attribute_{name}", **scores} for name, scores in per_pair.items()]
    eval_config = {**cfg, "model_name": model_name, "layer": layer, "hook_name": f"blocks.{layer}.hook_resid_post",
                   "perform_scr": True, "dataset_names": [d["dataset_name"] for d in details],
                   "dataset": "two_attribute: templated biographies, profession x gender"}
    write_eval_output(out, "scr", eval_config, {"scr_metrics": metrics}, details, sae, sae_name)
    shown = [n for n in (2, 20, 500) if n in cfg["n_values"]] or cfg["n_values"][:1]
    print(f"scr {sae_name}: {len(per_pair)} pairs, " + ", ".join(f"N={n} {metrics[f'scr_metric_threshold_{n}']}" for n in shown))
