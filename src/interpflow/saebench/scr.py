"""SAEBench's `scr` (spurious correlation removal) evaluation of one SAE at one (model, layer).

Data: the two-attribute biographies (`two_attribute.py`), cached at the SAE's layer: for each pair
of professions (A, B), texts of every (profession, gender) cell. Probes on mean-pooled activations,
fit on the training texts (sklearn logistic regression):

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
0 when it changes nothing. `scr_metric_threshold_{N}` is the direction in which the biased probe was
worse before ablation (the attribute it learned least), as SAEBench; `scr_dir1_/scr_dir2_threshold_{N}`
are both directions. Metrics average the profession pairs.
"""

from __future__ import annotations

import numpy as np

from interpflow.artifacts import read_parquet, read_tensors
from interpflow.sae.format import check_sae
from interpflow.saebench.output import write_eval_output
from interpflow.saebench.sparse_probing import fit_probe, pooled_examples
from interpflow.saebench.tpp import top_latents

DEFAULTS = {
    "n_values": [2, 5, 10, 20, 50, 100, 500],  # SAEBench's
    "C": 1.0,
    "max_iter": 1000,
}


def scr_effects(sae_pooled: np.ndarray, labels: np.ndarray, probe, w_dec: np.ndarray) -> np.ndarray:
    """SAEBench's SCR attribution: both signs count."""
    difference = sae_pooled[labels == 1].mean(0) - sae_pooled[labels == 0].mean(0)
    return np.abs(difference * (w_dec @ probe.coef_[0]))


def _ratio(changed: float, base: float, oracle: float) -> float:
    return (changed - base) / (oracle - base) if oracle != base else float("nan")


def pair_scores(llm: np.ndarray, sae: np.ndarray, texts, w_dec: np.ndarray, cfg: dict) -> dict:
    """SCR of one profession pair; `texts` are its rows (split, profession_label, male), aligned with llm / sae."""
    train, test = (texts["split"] == "train").to_numpy(), (texts["split"] == "test").to_numpy()
    profession, male = texts["label"].to_numpy(), (texts["gender"] == "male").to_numpy().astype(int)
    aligned = train & (profession == male)  # A-and-male or B-and-female
    biased = fit_probe(llm[aligned], profession[aligned], cfg)
    oracle = {"profession": fit_probe(llm[train], profession[train], cfg), "gender": fit_probe(llm[train], male[train], cfg)}
    labels = {"profession": profession, "gender": male}

    def accuracy(probe, pooled: np.ndarray, attribute: str) -> float:
        return float((probe.predict(pooled[test]) == labels[attribute][test]).mean())

    base = {a: accuracy(biased, llm, a) for a in labels}
    clean = {a: accuracy(oracle[a], llm, a) for a in labels}
    scores = {"biased_probe_profession_accuracy": base["profession"], "biased_probe_gender_accuracy": base["gender"],
              "profession_probe_accuracy": clean["profession"], "gender_probe_accuracy": clean["gender"]}
    # direction 1: remove gender, measure profession; direction 2: remove profession, measure gender
    for direction, (ablated, measured) in ((1, ("gender", "profession")), (2, ("profession", "gender"))):
        effects = scr_effects(sae[train], labels[ablated][train], oracle[ablated], w_dec)
        for n in cfg["n_values"]:
            latents = top_latents(effects, n)
            patched = llm - sae[:, latents] @ w_dec[latents]
            scores[f"scr_dir{direction}_threshold_{n}"] = _ratio(accuracy(biased, patched, measured), base[measured],
                                                                clean[measured])
    chosen = 1 if base["profession"] < base["gender"] else 2
    for n in cfg["n_values"]:
        scores[f"scr_metric_threshold_{n}"] = scores[f"scr_dir{chosen}_threshold_{n}"]
    return scores


def _number(value: float) -> float | None:
    return None if value != value else round(float(value), 6)


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
    metrics = {k: _number(np.nanmean([s[k] for s in per_pair.values()])) if any(s[k] == s[k] for s in per_pair.values())
               else None for k in keys}
    details = [{"dataset_name": f"two_attribute_{name}", **{k: _number(v) for k, v in s.items()}} for name, s in per_pair.items()]
    eval_config = {**cfg, "model_name": model_name, "layer": layer, "hook_name": f"blocks.{layer}.hook_resid_post",
                   "perform_scr": True, "dataset_names": [d["dataset_name"] for d in details],
                   "dataset": "two_attribute: templated biographies, profession x gender"}
    write_eval_output(out, "scr", eval_config, {"scr_metrics": metrics}, details, sae, sae_name)
    shown = [n for n in (2, 20, 500) if n in cfg["n_values"]] or cfg["n_values"][:1]
    print(f"scr {sae_name}: {len(per_pair)} pairs, " + ", ".join(f"N={n} {metrics[f'scr_metric_threshold_{n}']}" for n in shown))
