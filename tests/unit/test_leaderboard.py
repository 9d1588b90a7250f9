"""The leaderboard's aggregation against tables computed by hand: per-run means over concepts, the
concept counts, "—" where a method does not apply, the order, and the API usage totals."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from interpflow.report.leaderboard import (DETECTION, STEERING, _markdown, _markdown_table, _sum_usage, _table, latent_choices,
                                          parse_runs, steering_table, summary, usage_table)

RUNS = parse_runs(["m:3:diffmean", "m:3:probe", "m:3:prompt", "m:3:bow", "m:5:diffmean"])


def detection_rows() -> pd.DataFrame:
    rows = [  # model, layer, method, concept, roc_auc, hard-negative accuracy, f1, imbalanced f1
        ("m", 3, "diffmean", 0, 0.90, 0.50, 0.80, 0.40),
        ("m", 3, "diffmean", 1, 0.70, 1.00, 0.60, 0.20),
        ("m", 3, "probe", 0, 1.00, 1.00, 0.90, 0.60),
        ("m", 3, "probe", 1, 0.90, 0.25, 0.70, 0.00),
        ("m", 3, "probe", 2, 0.50, 0.25, 0.20, 0.00),
        ("m", 3, "bow", 0, 0.55, 0.00, 0.40, 0.10),
        ("m", 5, "diffmean", 0, 0.60, 0.50, 0.50, 0.50),
    ]
    return pd.DataFrame(rows, columns=["model", "layer", "method", "concept_id", *DETECTION])


def steering_rows() -> pd.DataFrame:
    rows = [  # model, layer, method, concept, concept, instruction, fluency, overall, best factor, perplexity
        ("m", 3, "diffmean", 0, 1.0, 2.0, 2.0, 1.5, 0.5, 10.0),
        ("m", 3, "diffmean", 1, 0.0, 1.0, 1.0, 0.0, 1.5, 30.0),
        ("m", 3, "probe", 0, 2.0, 2.0, 2.0, 2.0, 1.0, 20.0),
        ("m", 3, "probe", 1, 1.0, 1.0, 1.0, 1.0, 2.0, 40.0),
        ("m", 3, "prompt", 0, 2.0, 1.0, 1.0, 1.2, float("nan"), 12.0),
        ("m", 3, "prompt", 1, 1.0, 1.0, 2.0, 1.2, float("nan"), 8.0),
        ("m", 5, "diffmean", 0, 0.5, 0.5, 0.5, 0.5, 4.0, 50.0),
    ]
    frame = pd.DataFrame(rows, columns=["model", "layer", "method", "concept_id", *STEERING])
    # an LLM judge; per concept its ratings (3 per generation) and how many could not be read
    return frame.assign(judge_id="openai:gpt-4o-mini", judge_proxy=False, unparsed_ratings=0, ratings=12)


def test_summary_is_the_per_run_mean_over_concepts_in_leaderboard_order():
    table = summary(detection_rows(), steering_rows(), RUNS)
    # layer 3 by overall (probe 1.5, prompt 1.2, diffmean 0.75, bow none), then layer 5
    assert list(zip(table["layer"], table["method"])) == [
        (3, "probe"), (3, "prompt"), (3, "diffmean"), (3, "bow"), (5, "diffmean")]
    rows = table.set_index(["layer", "method"])
    expected = {
        (3, "probe"): dict(roc_auc=0.8, hard_negative_accuracy=0.5, f1=0.6, imbalanced_f1=0.2, detection_concepts=3,
                           concept_score=1.5, instruction_score=1.5, fluency_score=1.5, overall=1.5, best_factor=1.5,
                           perplexity=30.0, steering_concepts=2),
        (3, "diffmean"): dict(roc_auc=0.8, hard_negative_accuracy=0.75, f1=0.7, imbalanced_f1=0.3, detection_concepts=2,
                              concept_score=0.5, instruction_score=1.5, fluency_score=1.5, overall=0.75,
                              best_factor=1.0, perplexity=20.0, steering_concepts=2),
        (3, "prompt"): dict(roc_auc=math.nan, detection_concepts=math.nan, concept_score=1.5, instruction_score=1.0,
                            fluency_score=1.5, overall=1.2, best_factor=math.nan, perplexity=10.0, steering_concepts=2),
        (3, "bow"): dict(roc_auc=0.55, f1=0.4, detection_concepts=1, overall=math.nan, steering_concepts=math.nan),
        (5, "diffmean"): dict(roc_auc=0.6, overall=0.5, best_factor=4.0, detection_concepts=1, steering_concepts=1),
    }
    for run, values in expected.items():
        for column, value in values.items():
            got = float(rows.loc[run, column])
            assert (math.isnan(got) if math.isnan(value) else got == pytest.approx(value)), (run, column, got)


def test_markdown_writes_a_dash_where_a_method_does_not_apply():
    steering = _table(steering_rows(), STEERING, RUNS, "overall")
    lines = _markdown_table(steering, STEERING).splitlines()
    bow = next(line for line in lines if "| bow " in line)
    cells = [cell.strip() for cell in bow.strip("|").split("|")]
    assert cells[:3] == ["m", "3", "bow"] and set(cells[3:]) == {"—"}
    prompt = [cell.strip() for cell in next(line for line in lines if "| prompt " in line).strip("|").split("|")]
    assert prompt == ["m", "3", "prompt", "1.500", "1.000", "1.500", "1.200", "—", "10.000", "2"]


def test_usage_totals_count_known_values_and_cost_only_where_priced(tmp_path):
    files = []
    for n, usage in enumerate([{"requests": 3, "cached": 1, "prompt_tokens": 100, "cost_usd": 0.25},
                               {"requests": 2, "cached": 0, "prompt_tokens": 50, "cost_usd": float("nan")}]):
        files.append(tmp_path / f"u{n}.json")
        files[-1].write_text(json.dumps(usage))
    judging = _sum_usage([str(f) for f in files])
    assert judging == {"requests": 5, "cached": 1, "prompt_tokens": 150, "cost_usd": 0.25}
    table = usage_table({}, judging)
    assert table.loc["data generation"].isna().all()
    assert table.loc["total", "requests sent"] == 5 and table.loc["total", "cost (USD)"] == 0.25
    assert pd.isna(table.loc["total", "retries"])  # nobody reported retries: unknown, not 0


def test_a_proxy_judges_scores_get_columns_of_their_own_and_the_tables_name_the_judge():
    steering = steering_rows()
    offline = steering["layer"] == 5
    steering.loc[offline, "judge_id"], steering.loc[offline, "judge_proxy"] = "offline:all-MiniLM-L6-v2", True
    table = summary(detection_rows(), steering, RUNS).set_index(["layer", "method"])
    assert pd.isna(table.loc[(5, "diffmean"), "overall"]) and table.loc[(5, "diffmean"), "proxy_overall"] == 0.5
    assert table.loc[(3, "probe"), "overall"] == 1.5 and pd.isna(table.loc[(3, "probe"), "proxy_overall"])
    assert table.loc[(5, "diffmean"), "judge"] == "offline:all-MiniLM-L6-v2"
    assert table.loc[(3, "probe"), "judge"] == "openai:gpt-4o-mini" and pd.isna(table.loc[(3, "bow"), "judge"])
    text = _markdown(_table(detection_rows(), DETECTION, RUNS, "roc_auc"), steering_table(steering, RUNS), usage_table({}, {}))
    header = [c.strip() for c in next(line for line in text.splitlines() if "mean best factor" in line).strip("|").split("|")]
    assert header[3:] == ["concept", "instruction", "fluency", "overall (HM)", "concept (proxy)", "instruction (proxy)",
                          "fluency (proxy)", "overall (HM, proxy)", "mean best factor", "perplexity", "judge",
                          "unread ratings", "concepts"]
    row = [c.strip() for c in next(line for line in text.splitlines() if "offline" in line and line.startswith("|"))
           .strip("|").split("|")]
    assert row[:3] == ["m", "5", "diffmean"]
    assert row[3:7] == ["—"] * 4 and row[7:11] == ["0.500"] * 4  # in the proxy columns only
    only_llm = _markdown(_table(detection_rows(), DETECTION, RUNS, "roc_auc"), steering_table(steering_rows(), RUNS),
                         usage_table({}, {}))
    assert "(HM, proxy)" not in only_llm


def test_a_run_scored_by_both_kinds_of_judge_is_refused():
    steering = steering_rows()
    steering.loc[steering.index[0], "judge_proxy"] = True
    with pytest.raises(ValueError, match="LLM judge and a proxy judge"):
        steering_table(steering, RUNS)


def test_unread_ratings_are_a_share_of_every_rating_of_the_run():
    steering = steering_rows()
    probe = steering["method"] == "probe"
    steering.loc[probe, "unparsed_ratings"] = [3, 0]
    steering.loc[probe, "ratings"] = [12, 18]
    table = summary(detection_rows(), steering, RUNS).set_index(["layer", "method"])
    assert table.loc[(3, "probe"), "unparsed_share"] == pytest.approx(3 / 30)
    assert table.loc[(3, "diffmean"), "unparsed_share"] == 0.0 and pd.isna(table.loc[(3, "bow"), "unparsed_share"])


def test_latent_choices_name_how_each_sae_run_picked_its_latents(tmp_path):
    import torch
    from safetensors.torch import save_file

    from interpflow.methods.sae import CHOICES

    def artifact(method: str, shard: str, choices: list[str]) -> str:
        path = tmp_path / f"results/run/methods/m/L3/{method}/{shard}.safetensors"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({"latent_choice": torch.tensor([[CHOICES.index(c)] for c in choices])}, str(path))
        return str(path)

    paths = [artifact("sae-topk", "s0000", ["best_training_auc"] * 2), artifact("sae-topk", "s0001", ["best_training_auc"]),
             artifact("sae-gemma", "s0000", ["ref", "ref", "best_training_auc"])]
    choices = latent_choices(paths).set_index("method")["latent_choice"]
    assert choices["sae-topk"] == "best training AUC (supervised)"
    assert choices["sae-gemma"] == "best training AUC (supervised) ×1, ref ×2"
    runs = parse_runs(["m:3:sae-topk", "m:3:sae-gemma", "m:3:diffmean"])
    table = summary(pd.DataFrame(columns=["model", "layer", "method", "concept_id", *DETECTION]),
                    pd.DataFrame(columns=["model", "layer", "method", "concept_id", *STEERING]), runs,
                    latent_choices(paths)).set_index("method")
    assert table.loc["sae-topk", "latent_choice"] == "best training AUC (supervised)"
    assert pd.isna(table.loc["diffmean", "latent_choice"])


def test_the_imbalance_pool_ratio_and_why_it_fell_short():
    """Per run the positives : pool negatives of its concepts (a range where they differ), and the rows whose
    pool fell below detection.imbalance_ratio named with the reason: NaN ones and ones scored anyway apart."""
    from interpflow.report.leaderboard import detection_summary

    note = "pool of 144 negatives for 18 positives (1:8.0, below 1:100)"
    rows = detection_rows().assign(n_pool=3600, pool_ratio=100.0, imbalanced_note="")
    rows.loc[rows["method"] == "probe", ["pool_ratio", "imbalanced_note", "imbalanced_f1"]] = [8.0, note, math.nan]
    rows.loc[(rows["method"] == "diffmean") & (rows["layer"] == 3), "pool_ratio"] = [100.0, 120.0]
    rows.loc[rows["method"] == "bow", ["pool_ratio", "imbalanced_note"]] = [10.0, note.replace("(1:8.0", "(1:10.0")]
    table = detection_summary(rows, RUNS).set_index(["layer", "method"])
    assert table.loc[(3, "probe"), "pool_ratio"] == "1:8" and table.loc[(3, "probe"), "short_pool"] == note
    assert table.loc[(3, "diffmean"), "pool_ratio"] == "1:100–1:120" and table.loc[(3, "diffmean"), "short_pool"] == ""
    assert pd.isna(table.loc[(3, "prompt"), "pool_ratio"])  # no detection
    text = _markdown(detection_summary(rows, RUNS), steering_table(steering_rows(), RUNS), usage_table({}, {}))
    assert "| imbalance pool" in text and "1:100–1:120" in text
    assert "m L3 probe: imbalanced F1 — (NaN" in text and "m L3 bow: imbalanced F1 at the ratio shown" in text
