"""Stage: judge every steered generation of a shard (concept, instruction, fluency; 0-2 each).

Artifact: the steering columns plus concept_score, instruction_score, fluency_score, the raw
judge text of each rubric, unparsed_ratings (how many of the three ratings could not be read and
scored 0), judge_id and judge_proxy (true for a stand-in judge, not an LLM). The judge's usage
(calls, tokens, cost) goes to a JSON file beside it.
"""

from __future__ import annotations

from pathlib import Path

from interpflow.artifacts import read_parquet, write_json, write_parquet
from interpflow.judges import build_judge
from interpflow.judges.base import JudgeItem


def judge(judge_cfg: dict, cache_dir: str, steering: str, out: str, out_usage: str) -> None:
    """Judge every steered generation of a shard and record the judge's usage."""
    judge_impl = build_judge(judge_cfg, Path(cache_dir))
    frame = read_parquet(steering)
    items = [JudgeItem(concept=r.concept, instruction=r.instruction, generation=r.generation, perplexity=float(r.perplexity))
             for r in frame.itertuples()]
    scores = judge_impl.score(items)
    for field in ("concept_score", "instruction_score", "fluency_score", "concept_raw", "instruction_raw", "fluency_raw"):
        frame[field] = [getattr(s, field) for s in scores]
    frame["unparsed_ratings"] = [s.unparsed for s in scores]
    frame["judge_id"] = judge_impl.judge_id
    frame["judge_proxy"] = bool(judge_impl.proxy)
    write_parquet(frame, out)
    write_json(judge_impl.usage(), out_usage)
