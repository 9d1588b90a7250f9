"""What a run may spend on API calls, worked out from its config when the Snakefile is parsed, before
any job: the most requests each API section (judge, generator, SAEBench autointerp) can send, an
estimated cost where a price is set, and the `api_budget` caps that stop a run before it starts.

The counts are upper bounds for the whole run, as if nothing were cached: the same question is
asked once (every answer is cached), and answers already cached cost nothing, so a re-run pays
less or nothing. The cost is an estimate: prompts at 4 characters a token (generated text at its
token limit) and every reply at its token limit (a judge reply without one at 512 tokens), so it
errs high. Retries (transient errors, empty replies, replies cut at a token limit) are not counted.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import pandas as pd

from interpflow.errors import ConfigError

CHARS_PER_TOKEN = 4
SHORT_FIELD_TOKENS = 64  # an instruction, a concept or a word and its meaning, in a prompt
UNCAPPED_JUDGE_REPLY_TOKENS = 512  # a judge reply without max_tokens: a short explanation and the rating, generously


def _tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


@dataclass
class SectionPlan:
    """The requests one config section's jobs may send, at most, and their estimated tokens."""

    section: str  # the config key of the API settings
    llm: dict  # those settings (model, base_url, price_per_1m, ...)
    jobs: int
    requests: int
    prompt_tokens: int
    completion_tokens: int

    @property
    def cost_usd(self) -> float | None:
        """Estimated dollars; None without a price."""
        price = self.llm.get("price_per_1m")
        if not price:
            return None
        return (self.prompt_tokens * float(price["prompt"]) + self.completion_tokens * float(price["completion"])) / 1e6

    def describe(self) -> str:
        server = self.llm.get("base_url") or os.environ.get("OPENAI_BASE_URL") or "the OpenAI API"
        cost = "no price set (price_per_1m: null)" if self.cost_usd is None else f"about ${self.cost_usd:,.2f}"
        return (f"{self.section} ({self.llm['model']} at {server}): {self.requests:,} requests in {self.jobs:,} "
                f"jobs, {cost}")


def _shard_sizes(concepts: pd.DataFrame) -> list[int]:
    return concepts.groupby("shard").size().tolist()


def judge_plan(cfg: dict, concepts: pd.DataFrame) -> SectionPlan | None:
    """Three rubric requests per steered generation (a judge job per model, layer, steering method and
    shard; a generation per concept, steering instruction and factor)."""
    judge = cfg["judge"]
    if judge["name"] != "openai" or not cfg["models"]:
        return None
    from interpflow.judges.openai_judge import CONCEPT_PROMPT, DEFAULTS, FLUENCY_PROMPT, INSTRUCTION_PROMPT
    from interpflow.methods import method_class

    llm = {**DEFAULTS, **judge}
    steering = cfg["steering"]
    generations = jobs = 0
    for model_cfg in cfg["models"].values():
        for method_cfg in cfg["methods"].values():
            method = method_class(method_cfg["name"])
            if not method.steers:
                continue
            instance = method(method_cfg)
            factors = len(instance.factors(steering["factors"])) if method.uses_factor else 1
            steered = sum(len(instance.selected_concepts(ids.tolist())) for _, ids in concepts.groupby("shard")["concept_id"])
            per_layer = steered * steering["instructions_per_concept"] * factors
            generations += per_layer * len(model_cfg["layers"])
            jobs += len(_shard_sizes(concepts)) * len(model_cfg["layers"])
    rubric_tokens = sum(_tokens(t) for t in (CONCEPT_PROMPT, INSTRUCTION_PROMPT, FLUENCY_PROMPT)) / 3
    prompt = rubric_tokens + steering["max_new_tokens"] + SHORT_FIELD_TOKENS
    requests = 3 * generations
    reply = int(llm["max_tokens"] or UNCAPPED_JUDGE_REPLY_TOKENS)
    return SectionPlan("judge", llm, jobs, requests, math.ceil(requests * prompt), requests * reply)


def generator_plan(cfg: dict, concepts: pd.DataFrame) -> SectionPlan | None:
    """Per concept what generated.py asks: its positives and negatives, a related-word list, a sense
    check and a hard negative per word (n_hard_negative at most), a steering prompt; and its genre
    with concepts.genre = ask. Jobs: concepts, then train_data and eval_data per shard."""
    generator = cfg["generator"]
    if generator["name"] != "openai" or not cfg["models"]:
        return None
    from interpflow.data.sources import generated

    count = {key: int(generator.get(key, 0)) for key in
             ("n_train_positive", "n_train_negative", "n_eval_positive", "n_eval_negative", "n_hard_negative")}
    hard = count["n_hard_negative"]
    per_concept = {  # template -> requests per concept
        generated.POSITIVE_PROMPT: count["n_train_positive"] + count["n_eval_positive"],
        generated.NEGATIVE_PROMPT: count["n_train_negative"] + count["n_eval_negative"],
        generated.RELATED_WORDS_PROMPT: int(hard > 0),
        generated.DISTINCT_PROMPT: hard,
        generated.HARD_NEGATIVE_PROMPT: hard,
        generated.STEERING_PROMPT_PROMPT: 1,
    }
    if cfg["concepts"].get("genre", "given") == "ask":
        per_concept[generated.GENRE_PROMPT] = 1
    n_concepts = len(concepts)
    requests = n_concepts * sum(per_concept.values())
    prompt_tokens = n_concepts * sum(n * (_tokens(t) + SHORT_FIELD_TOKENS) for t, n in per_concept.items())
    jobs = 1 + 2 * len(_shard_sizes(concepts))
    return SectionPlan("generator", generator, jobs, requests, prompt_tokens, requests * int(generator["max_new_tokens"]))


def autointerp_plan(cfg: dict, concepts: pd.DataFrame) -> SectionPlan | None:
    """Per SAE, model and layer: an explanation and a scoring request per latent (n_latents)."""
    saebench = cfg.get("saebench") or {}
    if "autointerp" not in (saebench.get("evals") or []) or not cfg.get("saes"):
        return None
    from interpflow.saebench.autointerp import DEFAULTS, EXPLAIN, SCORE

    settings = {**DEFAULTS, **{k: v for k, v in saebench["autointerp"].items() if k != "llm"}}
    jobs = len(cfg["saes"]) * sum(len(m["layers"]) for m in cfg["models"].values())
    window = 2 * settings["window_radius"] + 1  # tokens per example shown; highlights at most double them
    shown = settings["n_top_ex_for_generation"] + settings["n_iw_sampled_ex_for_generation"]
    scored = settings["n_top_ex_for_scoring"] + settings["n_iw_sampled_ex_for_scoring"] + settings["n_random_ex_for_scoring"]
    explain_prompt = _tokens(EXPLAIN) + 2 * window * shown
    score_prompt = _tokens(SCORE) + settings["explanation_max_tokens"] + window * scored
    latents = jobs * settings["n_latents"]
    return SectionPlan("saebench.autointerp.llm", saebench["autointerp"]["llm"], jobs, 2 * latents,
                       latents * (explain_prompt + score_prompt),
                       latents * (settings["explanation_max_tokens"] + settings["scoring_max_tokens"]))


# the API sections a run can have, each with its request count
PLANNERS = (judge_plan, generator_plan, autointerp_plan)


def plan_api_requests(cfg: dict, concepts: pd.DataFrame) -> list[SectionPlan]:
    """Every API section this run uses, with the requests it may send; [] for a run without API calls."""
    return [plan for planner in PLANNERS if (plan := planner(cfg, concepts)) is not None and plan.requests]


def summary(plans: list[SectionPlan]) -> str:
    """The lines printed before the run starts."""
    total = sum(p.requests for p in plans)
    costs = [p.cost_usd for p in plans]
    cost = "" if None in costs else f", about ${sum(costs):,.2f} at most"
    lines = ["interpflow: API calls of this run, at most (every answer is cached: a re-run pays only for new questions):"]
    lines += [f"  {p.describe()}" for p in plans]
    lines.append(f"  total: {total:,} requests{cost} (caps: api_budget.max_requests, api_budget.max_cost_usd)")
    return "\n".join(lines)


def check_budget(cfg: dict, plans: list[SectionPlan]) -> None:
    """Stop the run before any job when its estimate is over a cap of `api_budget`."""
    budget = cfg.get("api_budget") or {}
    max_requests, max_cost = budget.get("max_requests"), budget.get("max_cost_usd")
    total = sum(p.requests for p in plans)
    parts = "; ".join(f"{p.section}: {p.requests:,}" for p in plans)
    if max_requests is not None and total > max_requests:
        raise ConfigError(
            f"this run may send up to {total:,} API requests ({parts}), more than api_budget.max_requests={max_requests}; "
            f"raise the cap (e.g. api_budget.max_requests={total}), set it to null for none, or make the run smaller "
            "(fewer concepts, methods, layers, factors or steering instructions)"
        )
    if max_cost is None or not plans:
        return
    unpriced = [p.section for p in plans if p.cost_usd is None]
    if unpriced:
        raise ConfigError(
            f"api_budget.max_cost_usd={max_cost} needs a price for every API section, and {', '.join(unpriced)} has "
            "price_per_1m: null; set its price_per_1m ({prompt: ..., completion: ...} USD per million tokens; 0 for a "
            "free local server) or cap requests with api_budget.max_requests instead"
        )
    cost = sum(p.cost_usd for p in plans)  # type: ignore[misc]
    if cost > max_cost:
        costs = "; ".join(f"{p.section}: ${p.cost_usd:,.2f}" for p in plans)
        raise ConfigError(
            f"this run may cost about ${cost:,.2f} in API calls ({costs}; at most {total:,} requests), more than "
            f"api_budget.max_cost_usd={max_cost}; raise the cap (e.g. api_budget.max_cost_usd={math.ceil(cost)}), set it "
            "to null for none, or make the run smaller"
        )
