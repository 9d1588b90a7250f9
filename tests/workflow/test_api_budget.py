"""The API requests a run may send, worked out before any job, against counts found another way: the
steered generations of real runs (three judge requests each), the requests a real HTTP server gets
when the data stages run, the autointerp jobs of a dry run; and the caps that stop a run."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess

import pandas as pd
import pytest

from interpflow.api_budget import UNCAPPED_JUDGE_REPLY_TOKENS, check_budget, plan_api_requests
from interpflow.config import compose, validate
from interpflow.errors import ConfigError
from interpflow.preflight import preflight
from interpflow.providers.stub_server import StubChatServer
from runs import REPO, scheduled_jobs, snakemake, snakemake_command

pytestmark = pytest.mark.workflow
KEY_ENV = "INTERPFLOW_LLM_KEY"  # the key variable of experiment=tiny_llm_server


@pytest.fixture(autouse=True)
def _keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (KEY_ENV, "OPENAI_API_KEY"):
        monkeypatch.setenv(name, "local")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


def planned(overrides: list[str]) -> tuple[dict, pd.DataFrame, dict[str, int]]:
    """The composed config, its concepts and the requests planned per API section, as the Snakefile does."""
    cfg = compose(REPO / "config", overrides)
    validate(cfg, REPO / "workflow/schemas/config.schema.yaml")
    concepts = preflight(cfg)
    return cfg, concepts, {plan.section: plan.requests for plan in plan_api_requests(cfg, concepts)}


@pytest.mark.parametrize("run_name", ["tiny_run", "tiny_full_run"])
def test_judge_requests_are_three_per_steered_generation_of_the_real_run(run_name, request, tmp_path):
    """experiment=tiny (3 concepts in 2 shards, factors, prompting) and tiny_full (every method): the
    same runs with an API judge would send three rubric requests per row their steer jobs wrote."""
    run = request.getfixturevalue(run_name)
    generations = sum(len(pd.read_parquet(path)) for path in (run.results / "steering").rglob("*.parquet"))
    assert generations > 0
    _, _, requests = planned([*run.overrides, "judge=openai", f"results_dir={tmp_path}"])
    assert requests == {"judge": 3 * generations}


def most_demanding_answer(messages: list[dict]) -> str:
    """Answers that make the generator ask everything it can: enough related words, each confirmed
    unrelated (so each gets its hard negative), and a distinct text for every other prompt."""
    prompt = messages[-1]["content"]
    if prompt.startswith("Name up to"):
        n = int(re.search(r"Name up to (\d+)", prompt).group(1))
        return "\n".join(f"word{i}: meaning {i}" for i in range(n))
    if prompt.startswith("Does the meaning"):
        return "No."
    if prompt.startswith("Which kind of text"):
        return "text"
    return "Answer " + hashlib.sha256(prompt.encode()).hexdigest()[:12]


GENERATOR_CASES = {
    "genre asked, hard negatives": ["experiment=tiny_llm_server"],
    "three concepts in two shards, no hard negatives": [
        "experiment=tiny_llm_server", "concepts.genre=given", "concepts.names=[rivers,music,Python loops]",
        "generator.n_hard_negative=0", "generator.n_train_positive=4",
    ],
}


@pytest.mark.parametrize("overrides", GENERATOR_CASES.values(), ids=GENERATOR_CASES.keys())
def test_generator_requests_are_what_the_data_stages_ask_a_real_server(overrides, tmp_path):
    from interpflow.stages import data

    with StubChatServer(reply=most_demanding_answer) as server:
        cfg, concepts, requests = planned([*overrides, f"results_dir={tmp_path}", f"generator.base_url={server.base_url}"])
        assert server.requests == 0  # the plan asks nothing
        data.concepts(cfg, str(tmp_path / "concepts.parquet"), str(tmp_path / "concepts.json"))
        for shard in sorted(concepts["shard"].unique()):
            data.train_data(cfg, str(tmp_path / "concepts.parquet"), shard, str(tmp_path / f"{shard}.train.parquet"),
                            str(tmp_path / f"{shard}.train.json"))
            data.eval_data(cfg, str(tmp_path / "concepts.parquet"), shard, str(tmp_path / f"{shard}.eval.parquet"),
                           str(tmp_path / f"{shard}.prompts.parquet"), str(tmp_path / f"{shard}.eval.json"))
    assert requests["generator"] == server.answered


def test_the_plan_is_printed_once_before_any_job_and_not_by_jobs(tmp_path):
    """A dry run prints the autointerp requests (two per latent and autointerp job, counted in the
    plan); a job's own parse of the Snakefile (--mode subprocess) prints nothing."""
    overrides = ["experiment=saebench_tiny", "saebench.evals=[autointerp]", "saebench.autointerp.n_latents=5",
                 f"saebench.autointerp.llm.api_key_env={KEY_ENV}"]
    result = snakemake(tmp_path, overrides, "-n")
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = [w for rule, w in scheduled_jobs(result.stdout) if rule == "saebench_autointerp"]
    assert len(jobs) == 4  # four SAEs, one layer
    assert result.stderr.count("interpflow: API calls of this run") == 1
    assert (f"saebench.autointerp.llm (gpt-4o-mini at the OpenAI API): {2 * 5 * len(jobs)} requests in {len(jobs)} jobs"
            in result.stderr)
    command, env = snakemake_command(tmp_path, overrides, "-n", "--mode", "subprocess")
    job_parse = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert "API calls of this run" not in job_parse.stdout + job_parse.stderr


def test_a_request_cap_stops_a_dry_run_before_any_job(tmp_path):
    result = snakemake(tmp_path, ["experiment=tiny_llm_server", "api_budget.max_requests=10"], "-n")
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "this run may send up to 58 API requests (judge: 24; generator: 34), more than api_budget.max_requests=10" in output
    assert "api_budget.max_requests=58" in output  # how to raise it
    assert not scheduled_jobs(result.stdout)
    assert not (tmp_path / "results" / "tiny_llm_server").exists()


def test_a_cost_cap_names_the_estimate_and_needs_prices(tmp_path):
    cfg, concepts, _ = planned(["experiment=tiny", "judge=openai", f"results_dir={tmp_path}"])
    plans = plan_api_requests(cfg, concepts)
    [judge] = plans
    assert cfg["judge"]["max_tokens"] is None  # no limit, as AxBench: each reply counted at a generous 512 tokens
    assert judge.cost_usd >= judge.requests * UNCAPPED_JUDGE_REPLY_TOKENS * 0.60 / 1e6
    check_budget({**cfg, "api_budget": {"max_requests": judge.requests, "max_cost_usd": judge.cost_usd}}, plans)
    with pytest.raises(ConfigError, match=rf"may cost about \${judge.cost_usd:,.2f} .* more than api_budget.max_cost_usd=0.001;"
                                          r" raise the cap"):
        check_budget({**cfg, "api_budget": {"max_requests": None, "max_cost_usd": 0.001}}, plans)
    unpriced = {**cfg, "judge": {**cfg["judge"], "price_per_1m": None}, "api_budget": {"max_cost_usd": 100}}
    with pytest.raises(ConfigError, match="judge has price_per_1m: null"):
        check_budget(unpriced, plan_api_requests(unpriced, concepts))


def test_runs_without_api_calls_plan_none(tmp_path):
    assert planned(["experiment=tiny", f"results_dir={tmp_path}"])[2] == {}
    assert json.dumps(planned(["experiment=interpbench_tiny", f"results_dir={tmp_path}"])[2]) == "{}"
