"""How text becomes tokens for each model: steering prompts, and the span of an example that is scored.

The excluded prefix is a per-model rule with one invariant: position 0 (BOS, or whatever token
opens the sequence) is never scored. Models park an attention sink there whose residual norm
dwarfs every other token's (SmolLM2-135M layer 15: ~24,000 vs a median of ~176), so a single
mean or max that includes it measures the sink, not the concept.
"""

from __future__ import annotations

from dataclasses import dataclass

from interpflow.errors import ConfigError

SCORE_CONTEXTS = ("prompt", "bare_response")


@dataclass(frozen=True)
class ScoredTokens:
    input_ids: list[int]
    score_start: int  # first position whose activation is scored; always >= 1


def steering_prompt(tokenizer, model_cfg: dict, instruction: str) -> str:
    """The text a model continues when asked `instruction`: its chat template, or a completion template."""
    if model_cfg["prompt_style"] == "chat":
        if not tokenizer.chat_template:
            raise ConfigError(
                f"model {model_cfg['name']!r} has prompt_style 'chat' but its tokenizer has no chat template; "
                "set prompt_style: completion in its model config"
            )
        messages = [{"role": "user", "content": instruction}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return model_cfg["completion_template"].format(instruction=instruction)


def _bos(tokenizer) -> list[int]:
    return [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []


def prompt_ids(tokenizer, model_cfg: dict, instruction: str) -> list[int]:
    text = steering_prompt(tokenizer, model_cfg, instruction)
    ids = tokenizer(text, add_special_tokens=False).input_ids
    bos = _bos(tokenizer)
    if bos and (not ids or ids[0] != bos[0]) and model_cfg["prompt_style"] == "completion":
        ids = bos + ids
    return ids


def scored_tokens(tokenizer, model_cfg: dict, instruction: str, response: str, max_length: int,
                  context: str | None = None) -> ScoredTokens:
    """Tokens of one example and where scoring starts.

    context (default: the model's score_context) 'prompt': the model's own prompt for the
    instruction (chat template or completion template) + the response, as the model sees an answer
    it wrote; only the response is scored (AxBench renders the same template, and scores its
    instruction tokens too). 'bare_response': BOS + the response, no instruction; the response is
    scored. Either way position 0 is excluded.
    """
    context = context or model_cfg.get("score_context", "prompt")
    if context == "bare_response":
        prefix = _bos(tokenizer)
    elif context == "prompt":
        prefix = prompt_ids(tokenizer, model_cfg, instruction)
    else:
        raise ConfigError(f"score_context must be one of {SCORE_CONTEXTS}, got {context!r}")
    body = tokenizer(response, add_special_tokens=False).input_ids
    if not body:
        raise ConfigError(f"an example has an empty response (instruction: {instruction[:80]!r}); drop it from the data")
    # Cut the response, never the prefix, and keep at least one scored token.
    body = body[: max(1, max_length - len(prefix))]
    return ScoredTokens(prefix + body, max(1, len(prefix)))
