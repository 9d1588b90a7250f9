"""The SAE benchmark inside the shared tiny-full run: both SAEs (our TopK trainer, sae_lens's ReLU/L1)
get SAEBench's core, sparse-probing, SCR, absorption, RAVEL and unlearning JSON (TPP needs three
concepts; tiny_full has two) and a row of the SAE leaderboard beside their concept-benchmark scores,
and adding an SAE schedules only that SAE's jobs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pandas as pd
import pytest

from runs import copy_run, scheduled_jobs, snakemake

pytestmark = pytest.mark.workflow

SAES = ["relu", "topk"]
# sae-bench 0.6.0's eval_output_schema_*.json (see their SOURCE.md)
SCHEMAS = Path(__file__).resolve().parents[1] / "conformance" / "fixtures" / "saebench_schemas"


def test_every_sae_has_its_core_json(tiny_full_run):
    for sae in SAES:
        result = json.loads((tiny_full_run.results / f"saebench/tiny_llama/L2/{sae}/core.json").read_text())
        assert result["eval_type_id"] == "core" and len(result["eval_result_details"]) == 256
        metrics = result["eval_result_metrics"]
        assert 0 < metrics["sparsity"]["l0"] < 256, sae
        # trained on this model's activations: most of the variance and of the loss come back
        assert metrics["reconstruction_quality"]["explained_variance"] > 0.5, (sae, metrics)
        assert metrics["model_performance_preservation"]["ce_loss_score"] > 0.5, (sae, metrics)
        assert result["sae_cfg_dict"]["source"] == "train"


def test_every_sae_has_its_sparse_probing_json(tiny_full_run):
    results = {sae: json.loads((tiny_full_run.results / f"saebench/tiny_llama/L2/{sae}/sparse_probing.json").read_text())
               for sae in SAES}
    for sae, result in results.items():
        assert result["eval_type_id"] == "sparse_probing"
        assert [d["dataset_name"] for d in result["eval_result_details"]] == result["eval_config"]["dataset_names"]
        assert len(result["eval_result_details"]) >= 2, result["eval_result_unstructured"]
        sae_metrics = result["eval_result_metrics"]["sae"]
        assert set(sae_metrics) == {"sae_test_accuracy", "sae_top_1_test_accuracy", "sae_top_2_test_accuracy",
                                    "sae_top_5_test_accuracy"}
        for detail in result["eval_result_details"]:
            assert detail["n_train"] >= 8 and detail["n_test"] >= 8 and detail["n_train"] % 2 == 0
    # the LLM's probes read the same activations and tasks whichever SAE is scored
    assert results["relu"]["eval_result_metrics"]["llm"] == results["topk"]["eval_result_metrics"]["llm"]
    # measured 0.78 on the tiny random model's activations of the two concepts' data
    assert results["relu"]["eval_result_metrics"]["llm"]["llm_test_accuracy"] >= 0.65


def test_every_sae_has_its_scr_json_on_the_templated_biographies(tiny_full_run):
    texts = pd.read_parquet(tiny_full_run.results / "saebench/data/two_attribute.parquet")
    assert set(texts["profession"]) == {"professor", "nurse", "architect", "journalist"}
    for sae in SAES:
        result = json.loads((tiny_full_run.results / f"saebench/tiny_llama/L2/{sae}/scr.json").read_text())
        assert result["eval_type_id"] == "scr"
        assert [d["dataset_name"] for d in result["eval_result_details"]] == [
            "two_attribute_professor/nurse", "two_attribute_architect/journalist"]
        for detail in result["eval_result_details"]:
            # the oracle probes read their own attribute off the tiny model's activations
            assert detail["profession_probe_accuracy"] > 0.6 and detail["gender_probe_accuracy"] > 0.6, detail
        assert set(result["eval_result_metrics"]["scr_metrics"]) >= {"scr_metric_threshold_20", "scr_dir1_threshold_20"}


def test_absorption_and_ravel_say_why_the_random_model_gets_no_score(tiny_full_run):
    words = pd.read_parquet(tiny_full_run.results / "acts/tiny_llama/L2/saebench/first_letter.index.parquet")
    assert len(words) == 600 and set(words["split"]) == {"train", "test"}
    prompts = pd.read_parquet(tiny_full_run.results / "saebench/data/tiny_llama/ravel_prompts.parquet")
    assert set(prompts["attribute"]) == {"Country", "Continent", "Language"} and (prompts["entity_pos"] > 0).all()
    for sae in SAES:
        absorption = json.loads((tiny_full_run.results / f"saebench/tiny_llama/L2/{sae}/absorption.json").read_text())
        assert absorption["eval_type_id"] == "absorption_first_letter"
        # one row per letter some training word starts with
        assert len(absorption["eval_result_unstructured"]["k_sparse_probing"]) == words.loc[words["split"] == "train", "letter"].nunique()
        # a random model's activations do not encode first letters: no letter passes the probe threshold
        assert "too few reliable first-letter features" in absorption["eval_result_unstructured"]["not_evaluated"]
        assert absorption["eval_result_metrics"]["mean"]["mean_absorption_fraction_score"] is None
        ravel = json.loads((tiny_full_run.results / f"saebench/tiny_llama/L2/{sae}/ravel.json").read_text())
        assert ravel["eval_type_id"] == "ravel" and ravel["eval_config"]["known_prompts"] == int(prompts["known"].sum())
        assert set(ravel["eval_result_unstructured"]["city_results"]) == {"Country", "Continent", "Language"}


def test_unlearning_sweeps_the_known_questions_of_the_tiny_model(tiny_full_run):
    questions = pd.read_parquet(tiny_full_run.results / "saebench/data/tiny_llama/unlearning_questions.parquet")
    known = questions[questions["known"]].groupby("topic").size().to_dict()
    for sae in SAES:
        result = json.loads((tiny_full_run.results / f"saebench/tiny_llama/L2/{sae}/unlearning.json").read_text())
        assert result["eval_type_id"] == "unlearning"
        assert result["eval_result_unstructured"]["known_questions"] == known
        # every (retain threshold, n features, multiplier) of the sweep has its row
        assert len(result["eval_result_details"]) == 2 * 2 * 4
        for row in result["eval_result_details"]:
            assert row["passes_retain_filter"] == (row["retain_accuracy"] >= 0.99)
        score = result["eval_result_metrics"]["unlearning"]["unlearning_score"]
        passing = [r["forget_accuracy"] for r in result["eval_result_details"] if r["passes_retain_filter"]]
        assert score == pytest.approx(1 - min(passing) if passing else 0.0)


def test_sae_leaderboard_puts_saebench_and_concept_scores_side_by_side(tiny_full_run):
    board = pd.read_csv(tiny_full_run.results / "saebench/leaderboard.csv").set_index("sae")
    assert sorted(board.index) == SAES
    assert board.loc["relu", "architecture"] == "standard" and board.loc["topk", "architecture"] == "topk"
    for column in ("l0", "explained_variance", "loss_recovered", "sparse_probing_top_1", "sparse_probing_llm",
                   "unlearning_score", "sae_concept_roc_auc", "sae_a_concept_roc_auc", "sae_concept_steering_proxy"):
        assert board[column].notna().all(), column
    concept = pd.read_csv(tiny_full_run.results / "leaderboard.csv").set_index("method")
    assert board.loc["relu", "sae_a_concept_roc_auc"] == pytest.approx(concept.loc["sae_a-relu", "roc_auc"])
    for plot in ("sparsity_frontier", "metrics_vs_l0"):
        assert (tiny_full_run.results / f"saebench/plots/{plot}.png").stat().st_size > 10_000


def test_adding_an_sae_schedules_only_its_own_jobs(tiny_full_run, tmp_path):
    run = copy_run(tiny_full_run, tmp_path / "tiny_full")  # parsing rewrites the run's config.yaml
    extra = ["+sae@saes.extra=topk", "saes.extra.n_latents=64", "saes.extra.k=4"]
    result = snakemake(run.workdir, [*run.overrides, *extra], "-n")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    jobs = scheduled_jobs(result.stdout)
    assert jobs, result.stdout[-2000:]
    summaries = {"leaderboard", "saebench_leaderboard", "saebench_eval_results", "all", "run_config"}
    for rule, wildcards in jobs:
        if rule not in summaries:
            assert wildcards.get("sae") == "extra" or wildcards.get("method", "").endswith("-extra"), (rule, wildcards)
    assert {rule for rule, _ in jobs} >= {"sae", "saebench_core", "saebench_probe", "train", "detect", "steer",
                                          "saebench_leaderboard"}
    assert {w["probe_eval"] for rule, w in jobs if rule == "saebench_probe"} == {"sparse_probing"}
    assert "saebench_scr" in {rule for rule, _ in jobs} and "cache_saebench_texts" not in {rule for rule, _ in jobs}
    # the activations and prompts every SAE shares are not recomputed for a new one
    assert {"saebench_absorption", "saebench_ravel", "saebench_unlearning"} <= {rule for rule, _ in jobs}
    assert not {"cache_first_letter", "ravel_prompts", "unlearning_questions", "cache_unlearning_corpus"} & {
        rule for rule, _ in jobs}


def schema_errors(result: dict) -> list[str]:
    schema = json.loads((SCHEMAS / f"eval_output_schema_{result['eval_type_id']}.json").read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:200]}" for e in validator.iter_errors(result)]


def test_every_saebench_json_validates_against_saebench_schemas(tiny_full_run):
    """Every field SAEBench's schema requires, of its type; a metric the random model gets no score for is null
    (its schema wants a number), and the SAEBench layout leaves that result out."""
    written = sorted((tiny_full_run.results / "saebench").glob("*/L*/*/*.json"))
    exported = sorted((tiny_full_run.results / "saebench" / "eval_results").glob("*/*_eval_results.json"))
    evals = {path.stem for path in written}
    assert len(written) == len(SAES) * len(evals) >= 12, written  # the run's JSON (its SAEs x its evaluations)
    unscored = set()
    for path in written + exported:
        result = json.loads(path.read_text())
        errors = schema_errors(result)
        if errors:
            unscored.add(path)
            assert all(re.fullmatch(r"eval_result_metrics/\w+/\w+: None is not of type 'number'", e) for e in errors), (path, errors)
        assert result["sae_bench_commit_hash"].startswith("interpflow implementation of the sae-bench 0.6.0 protocol")
        config = result["sae_cfg_dict"]
        assert config["d_sae"] == 256 and config["d_in"] == 64, config
        assert config["training_tokens"] > 0, config
    # the tiny random model: absorption finds no reliable first-letter probe, RAVEL no known prompt
    assert {(p.parent.name, p.stem) for p in unscored} == {(sae, e) for sae in SAES for e in ("absorption", "ravel")}
    # the layout sae_bench_utils/graphing_utils.py reads: eval_results/<eval>/<release>_<sae_id>_eval_results.json,
    # the evaluation told apart by its folder, the SAE by its file name (a trained SAE: interpflow_<model>_L<layer>_<sae>)
    copies = {tiny_full_run.results / f"saebench/eval_results/{path.stem}/interpflow_tiny_llama_L2_{path.parent.name}"
              "_eval_results.json": path for path in written if path not in unscored}
    assert set(exported) == set(copies)
    for copy, original in copies.items():
        result = json.loads(copy.read_text())
        sae = original.parent.name
        names = {"sae_lens_release_id": "interpflow", "sae_lens_id": f"tiny_llama_L2_{sae}"}
        assert result == {**json.loads(original.read_text()), **names}
        assert result["sae_cfg_dict"]["architecture"] == {"topk": "topk", "relu": "standard"}[sae]
