"""SAEBench's `tpp` (targeted probe perturbation) evaluation of one SAE at one (model, layer).

The classes are the run's concepts. For each concept c a linear probe on the LLM's mean-pooled
activations separates c's positive examples from other concepts' positives (classes balanced),
trained on the `train` split. The SAE's latents are ranked for c by SAEBench's attribution,

    effect_f = max(mean_pos(f) - mean_neg(f), 0) * (w_c . W_dec[f])

(mean-pooled latent f on c's positives minus on its negatives, times how much f's decoder vector
moves probe c), and the top N (`top_latents`) are zero-ablated in the residual stream, keeping
the SAE's error: x' = x - sum_{f in top N} z_f W_dec[f]. On the `latent_eval` split:

    intended   = acc_c(clean) - acc_c(c's latents ablated)
    unintended = mean over j != c of acc_j(clean) - acc_j(c's latents ablated)
    tpp_threshold_{N}_total_metric = mean over c of (intended - unintended)

so an SAE scores high when a few latents carry one concept and nothing else. Mean pooling is
linear, so the ablated pooled activations are the clean ones minus the pooled ablated latents
times their decoder rows: the same numbers as ablating token by token. The probes are trained as
SAEBench trains them (`probe_training.py`: AdamW with an L1 penalty, the epoch kept chosen on the
set `probe_selection` names: by default SAEBench's, the test split).
"""

from __future__ import annotations

import numpy as np

from interpflow.saebench.output import write_eval_output
from interpflow.saebench.probe_training import PROBE_DEFAULTS, LinearProbe, fit_probe
from interpflow.saebench.sparse_probing import probe_inputs

DEFAULTS = {
    "n_values": [2, 5, 10, 20, 50, 100, 500],  # SAEBench's
    "max_examples_per_class": 1000,            # positives per concept and split (SAEBench: 4,000 train, 1,000 test)
    "min_examples_per_class": 4,
    **PROBE_DEFAULTS,
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


def latent_effects(sae_pooled: np.ndarray, labels: np.ndarray, probe: LinearProbe, w_dec: np.ndarray) -> np.ndarray:
    """SAEBench's TPP attribution of every latent to one probe (positive-class effects only)."""
    difference = np.clip(sae_pooled[labels == 1].mean(0) - sae_pooled[labels == 0].mean(0), 0.0, None)
    return difference * (w_dec @ probe.weight)


def top_latents(effects: np.ndarray, n: int) -> np.ndarray:
    """SAEBench's choice of latents to ablate: the k of largest effect, k = min(n, number of non-zero
    effects) (so a latent of zero or negative effect is taken when fewer than n are positive)."""
    k = min(n, int(np.count_nonzero(effects)))
    return np.argsort(-effects, kind="stable")[:k]


def ablated_accuracies(llm: tuple[np.ndarray, np.ndarray], sae: tuple[np.ndarray, np.ndarray], w_dec: np.ndarray,
                       tasks: dict[int, dict], cfg: dict) -> tuple[dict[int, float], dict, dict]:
    """Every probe's clean test accuracy {concept: acc}; with each concept's top-N latents ablated,
    every probe's accuracy {ablated concept: {N: {concept: acc}}}; and how many latents each ablation took."""
    (llm_train, llm_test), (sae_train, sae_test) = llm, sae
    probes = {c: fit_probe(llm_train[t["train"][0]], t["train"][1], llm_test[t["test"][0]], t["test"][1], cfg, cfg["seed"])
              for c, t in tasks.items()}

    def accuracies(pooled: np.ndarray) -> dict[int, float]:
        return {c: probes[c].accuracy(pooled[t["test"][0]], t["test"][1]) for c, t in tasks.items()}

    ablated, n_ablated = {}, {}
    for concept, task in tasks.items():
        train_rows, train_labels = task["train"]
        effects = latent_effects(sae_train[train_rows], train_labels, probes[concept], w_dec)
        ablated[concept] = {}
        for n in cfg["n_values"]:
            latents = top_latents(effects, n)
            ablated[concept][n] = accuracies(llm_test - sae_test[:, latents] @ w_dec[latents])
            n_ablated[f"concept_{concept}_n_{n}"] = len(latents)
    return accuracies(llm_test), ablated, n_ablated


def tpp_metrics(clean: dict, ablated: dict) -> tuple[dict[str, float], dict]:
    """SAEBench's TPP scores from probe accuracies: per ablated class and N, the intended drop (its own
    probe), the mean unintended drop (every other probe) and their difference; and their means over
    the classes. Returns (means, {class: scores})."""
    per_class = {}
    for concept, by_n in ablated.items():
        scores = {}
        for n, after in by_n.items():
            intended = clean[concept] - after[concept]
            unintended = float(np.mean([clean[c] - after[c] for c in clean if c != concept]))
            scores |= {f"tpp_threshold_{n}_total_metric": intended - unintended,
                       f"tpp_threshold_{n}_intended_diff_only": intended,
                       f"tpp_threshold_{n}_unintended_diff_only": unintended}
        per_class[concept] = scores
    keys = next(iter(per_class.values()))
    return {k: float(np.mean([scores[k] for scores in per_class.values()])) for k in keys}, per_class


def tpp(sae: str, sae_name: str, train_acts: list[str], train_index: list[str], test_acts: list[str],
        test_index: list[str], model_name: str, layer: int, eval_cfg: dict, out: str) -> None:
    """SAEBench's TPP metrics of the SAE at `sae`, written as SAEBench's JSON to `out`."""
    cfg = {**DEFAULTS, **(eval_cfg or {})}
    tensors, llm, sae_features, tasks, skipped = probe_inputs(
        sae, (train_acts, train_index), (test_acts, test_index), lambda train, test: one_vs_rest_tasks(train, test, cfg),
        f"tpp: fewer than three concepts have {cfg['min_examples_per_class']} positives in both the train and the "
        "latent_eval split (with two, TPP is 0 by construction); run more concepts or lower saebench.tpp.min_examples_per_class")
    clean, ablated, n_ablated = ablated_accuracies(llm, sae_features, tensors["W_dec"].float().numpy(), tasks, cfg)
    metrics, per_class = tpp_metrics(clean, ablated)
    details = [{"dataset_name": f"concept_{c}", "llm_clean_accuracy": clean[c], **scores} for c, scores in per_class.items()]
    eval_config = {**cfg, "model_name": model_name, "layer": layer, "hook_name": f"blocks.{layer}.hook_resid_post",
                   "perform_scr": False, "dataset_names": [d["dataset_name"] for d in details],
                   "dataset": "the run's concepts as classes: each concept's positives against other concepts' positives"}
    write_eval_output(out, "tpp", eval_config, {"tpp_metrics": metrics}, details, sae, sae_name,
                      unstructured={"concepts_left_out": skipped, "latents_ablated": n_ablated})
    headline = [n for n in (2, 20, 500) if n in cfg["n_values"]] or cfg["n_values"][:1]
    print(f"tpp {sae_name}: {len(tasks)} concepts, " + ", ".join(
        f"N={n} {metrics[f'tpp_threshold_{n}_total_metric']:.3f}" for n in headline))
