"""Prompt-based detection (AxBench's PromptDetection): the studied model itself is asked whether the
concept is in the text, with the judge's concept rubric (0, 1 or 2), and its rating is the score.

No training. Each concept rates only its own evaluation examples (its positives, negatives and hard
negatives: the rows the detection metrics read); other concepts' examples and the imbalance pool are
not rated (NaN), since every rating is a generation. A reply without a readable rating scores -1, as
in AxBench. AxBench samples up to 512 tokens at temperature 1; here the reply is greedy (repeatable)
and `max_new_tokens` long.
"""

from __future__ import annotations

import math

import torch

from interpflow.methods.base import Method
from interpflow.methods.data import EvalData
from interpflow.ranges import COUNT

UNREADABLE = -1.0


class PromptDetection(Method):
    name = "prompt_detection"
    needs = "nothing"
    detect_needs = "model"
    steers = False
    uses_factor = False
    scores_pool = False
    settings = {"max_new_tokens": COUNT, "batch_size": COUNT}

    def score_examples(self, tensors, data: EvalData) -> tuple[torch.Tensor, torch.Tensor]:
        from interpflow.judges.openai_judge import CONCEPT_PROMPT, parse_rating
        from interpflow.models.formatting import prompt_ids
        from interpflow.models.generation import decode, generate

        handle, examples, concepts = data.model, data.examples, data.concepts
        scores = torch.full((len(examples), len(concepts)), math.nan)
        asks = [(row, column) for column, concept_id in enumerate(concepts["concept_id"])
                for row in range(len(examples)) if examples["concept_id"].iloc[row] == concept_id]
        prompts = [prompt_ids(handle.tokenizer, handle.cfg, CONCEPT_PROMPT.format(
            concept=concepts["concept"].iloc[column], generation=examples["output"].iloc[row])) for row, column in asks]
        with torch.inference_mode():
            replies = decode(handle.tokenizer, generate(handle.model, handle.tokenizer, prompts, None,
                                                        int(self.cfg["max_new_tokens"]), int(self.cfg["batch_size"])))
        for (row, column), reply in zip(asks, replies):
            rating = parse_rating(reply)
            scores[row, column] = UNREADABLE if rating is None else rating
        return scores, scores.clone()
