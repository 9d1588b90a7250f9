"""SAEBench's `tpp` (targeted probe perturbation) evaluation of one SAE at one (model, layer).

The classes are the run's concepts. For each concept c a linear probe on the LLM's mean-pooled
activations separates c's positive examples from other concepts' positives (classes balanced),
fit on the `train` split. The SAE's latents are ranked for c by SAEBench's attribution,

    effect_f = max(mean_pos(f) - mean_neg(f), 0) * (w_c . W_dec[f])

(mean-pooled latent f on c's positives minus on its negatives, times how much f's decoder vector
moves probe c), and the top N are zero-ablated in the residual stream, keeping the SAE's error:
x' = x - sum_{f in top N} z_f W_dec[f]. On the `latent_eval` split:

    intended   = acc_c(clean) - acc_c(c's latents ablated)
    unintended = mean over j != c of acc_j(clean) - acc_j(c's latents ablated)
    tpp_threshold_{N}_total_metric = mean over c of (intended - unintended)

so an SAE scores high when a few latents carry one concept and nothing else. Mean pooling is
linear, so the ablated pooled activations are the clean ones minus the pooled ablated latents
times their decoder rows: the same numbers as ablating token by token. SAEBench fits its probes
by gradient descent with early stopping on the test set; we fit sklearn's L2 logistic regression
on the training examples alone (README, "The SAE benchmark").
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression

from interpflow.saebench.output import write_eval_output
from interpflow.saebench.sparse_probing import fit_probe, probe_inputs

DEFAULTS = {
    "n_values": [2, 5, 10, 20, 50, 100, 500],  # SAEBench's
    "max_examples_per_class": 1000,            # positives per concept and split (SAEBench: 4,000 train, 1,000 test)
    "min_examples_per_class": 4,
    "C": 1.0,
    "max_iter": 1000,
    "seed": 0,
}


def one_vs_rest_tasks(train, test, cfg: dict) -> tuple[dict[int, dict], list[int]]:
    """Per concept: row numbers and labels, per split, of its positives against as many positives
    of the other concepts (SAEBench's class-vs-rest probe data)."""
    rng = np.random.default_rng(cfg["seed"])
    frames = {"train": train, "test": test}
    positives = {split: {int(c): np.flatnonzero((f["label"] == 1) & (f["concept_id"] == c))
                         for c in sorted(set(f.loc[f["label"] == 1, "concept_id"]) - {-1})} for split, f in frames.items()}
    concepts = sorted(set(positives["train"]) & set(positives["test"]))
    kept = [c for c in concepts if min(len(positives[s][c]) for s in frames) >= cfg["min_examples_per_class"]]
    tasks = {}
    for concept in kept if len(kept) >= 3 else []:
        task = {}
        for split in frames:
            own = positives[split][concept]
            others = np.concatenate([positives[split][c] for c in kept if c != concept])
            n = min(len(own), len(others), cfg["max_examples_per_class"])
            rows = np.concatenate([rng.choice(own, n, replace=False), rng.choice(others, n, replace=False)])
            task[split] = (rows, np.r_[np.ones(n, dtype=int), np.zeros(n, dtype=int)])
        tasks[concept] = task
    return tasks, [c for c in concepts if c not in tasks]


def latent_effects(sae_pooled: np.ndarray, labels: np.ndarray, probe: LogisticRegression, w_dec: np.ndarray) -> np.ndarray:
    """SAEBench's TPP attribution of every latent to one probe (positive-class effects only)."""
    difference = np.clip(sae_pooled[labels == 1].mean(0) - sae_pooled[labels == 0].mean(0), 0.0, None)
    return difference * (w_dec @ probe.coef_[0])


def top_latents(effects: np.ndarray, n: int) -> np.ndarray:
    """The n latents of largest effect, only those with a non-zero effect (as SAEBench)."""
    order = np.argsort(-effects, kind="stable")[:n]
    return order[effects[order] != 0]


def tpp_table(llm: tuple[np.ndarray, np.ndarray], sae: tuple[np.ndarray, np.ndarray], w_dec: np.ndarray,
              tasks: dict[int, dict], cfg: dict) -> tuple[list[dict], dict[int, float]]:
    """Per (ablated concept, N): intended and unintended accuracy drops; and each probe's clean accuracy."""
    (llm_train, llm_test), (sae_train, sae_test) = llm, sae
    probes = {c: fit_probe(llm_train[t["train"][0]], t["train"][1], cfg) for c, t in tasks.items()}

    def accuracy(concept: int, pooled: np.ndarray) -> float:
        rows, labels = tasks[concept]["test"]
        return float((probes[concept].predict(pooled[rows]) == labels).mean())

    clean = {c: accuracy(c, llm_test) for c in tasks}
    rows = []
    for concept, task in tasks.items():
        train_rows, train_labels = task["train"]
        effects = latent_effects(sae_train[train_rows], train_labels, probes[concept], w_dec)
        for n in cfg["n_values"]:
            ablated = top_latents(effects, n)
            patched = llm_test - sae_test[:, ablated] @ w_dec[ablated]
            drops = {c: clean[c] - accuracy(c, patched) for c in tasks}
            intended = drops[concept]
            unintended = float(np.mean([d for c, d in drops.items() if c != concept]))
            rows.append({"concept_id": concept, "n": n, "n_ablated": len(ablated), "intended_diff": intended,
                         "unintended_diff": unintended, "total_metric": intended - unintended})
    return rows, clean


def tpp(sae: str, sae_name: str, train_acts: list[str], train_index: list[str], test_acts: list[str],
        test_index: list[str], model_name: str, layer: int, eval_cfg: dict, out: str) -> None:
    """SAEBench's TPP metrics of the SAE at `sae`, written as SAEBench's JSON to `out`."""
    cfg = {**DEFAULTS, **(eval_cfg or {})}
    tensors, llm, sae_features, tasks, skipped = probe_inputs(
        sae, (train_acts, train_index), (test_acts, test_index), lambda train, test: one_vs_rest_tasks(train, test, cfg),
        f"tpp: fewer than three concepts have {cfg['min_examples_per_class']} positives in both the train and the "
        "latent_eval split (with two, TPP is 0 by construction); run more concepts or lower saebench.tpp.min_examples_per_class")
    w_dec = tensors["W_dec"].float().numpy()
    rows, clean = tpp_table(llm, sae_features, w_dec, tasks, cfg)

    metrics = {}
    for n in cfg["n_values"]:
        at_n = [r for r in rows if r["n"] == n]
        metrics[f"tpp_threshold_{n}_total_metric"] = round(float(np.mean([r["total_metric"] for r in at_n])), 6)
        metrics[f"tpp_threshold_{n}_intended_diff_only"] = round(float(np.mean([r["intended_diff"] for r in at_n])), 6)
        metrics[f"tpp_threshold_{n}_unintended_diff_only"] = round(float(np.mean([r["unintended_diff"] for r in at_n])), 6)
    details = [{"dataset_name": f"concept_{c}", "llm_clean_accuracy": round(clean[c], 6),
                **{f"tpp_threshold_{r['n']}_{key}": round(r[column], 6) for r in rows if r["concept_id"] == c
                   for key, column in (("total_metric", "total_metric"), ("intended_diff_only", "intended_diff"),
                                       ("unintended_diff_only", "unintended_diff"))}}
               for c in tasks]
    eval_config = {**cfg, "model_name": model_name, "layer": layer, "hook_name": f"blocks.{layer}.hook_resid_post",
                   "perform_scr": False, "dataset_names": [d["dataset_name"] for d in details],
                   "dataset": "the run's concepts as classes: each concept's positives against other concepts' positives"}
    write_eval_output(out, "tpp", eval_config, {"tpp_metrics": metrics}, details, sae, sae_name,
                      unstructured={"concepts_left_out": skipped,
                                    "latents_ablated": {f"concept_{r['concept_id']}_n_{r['n']}": r["n_ablated"] for r in rows}})
    headline = [n for n in (2, 20, 500) if n in cfg["n_values"]] or cfg["n_values"][:1]
    print(f"tpp {sae_name}: {len(tasks)} concepts, " + ", ".join(
        f"N={n} {metrics[f'tpp_threshold_{n}_total_metric']:.3f}" for n in headline))
