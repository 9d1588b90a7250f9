"""Steered generation that shares the work rows of a steering plan have in common.

A method that only edits the residual stream after block L (DiffMean, the probe, SAE latents, ...)
leaves blocks 0..L-1 computing exactly what the unsteered model computes, and a steering plan
repeats each prompt for every concept and factor, all behind one chat template. A batch is laid out
as [common prefix | left-padded prompt suffix | generated tokens], and

- the prefix runs once through every block unsteered, and once per distinct steering key (concept
  and factor) through blocks L.. under that key's edit;
- each distinct suffix runs once through every block unsteered: blocks 0..L-1's keys and values
  and block L's input serve every row with that prompt;
- each row runs only blocks L.. over its suffix under its edit, then decodes with the whole model,
  reading the prompt's keys and values below block L once per prompt rather than once per row;
- each generation's perplexity under the unsteered model needs only blocks L.. over the generated
  tokens (their block-L inputs are recorded while decoding: steering does not change them), on the
  prompt's unsteered keys and values.

Padding between prefix and suffix is masked and positions count real tokens only, so the layout
computes what a left-padded prompt computes. Keys and values go in place into buffers sized once
per batch, and the LM head runs only where logits are needed. Greedy decoding picks the same tokens
as `model.generate` under the same hooks, up to floating-point order
(benchmarks/steering_generation.py --before counts them).
"""

from __future__ import annotations

import copy
import math
from contextlib import contextmanager
from typing import Callable, ContextManager, Iterator

import torch
from torch import nn
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from interpflow.models.architectures import decoder_blocks
from interpflow.models.generation import _left_pad
from interpflow.progress import Progress

# Architectures whose model forward hands `inputs_embeds` to the first block unchanged (GPT-2 adds
# position embeddings, Gemma 1 and 2 scale it): only these can start a pass at block L.
ARCHITECTURES = {"llama", "mistral", "qwen2", "qwen3", "gemma3_text", "phi3"}

Intervene = Callable[[list[int]], ContextManager]


def supports(model, longest: int = 0) -> bool:
    """Whether generate_shared runs this model for sequences of up to `longest` tokens (its masks
    are plain causal ones, so a sliding attention window must not come into play)."""
    window = getattr(model.config, "sliding_window", None)
    return model.config.model_type in ARCHITECTURES and (not window or longest <= window)


class KVCache:
    """Keys and values per layer in buffers allocated once ([batch, heads, capacity, head_dim]) and
    written in place; transformers' DynamicCache concatenates a new tensor at every step. Implements
    what decoder layers call (`update`), and lets a batch start from keys and values computed for
    other rows (`fill`) or run in parts over the same buffers (`rows`)."""

    def __init__(self, model, batch: int, capacity: int | list[int], first_layer: int = 0,
                 last_layer: int | None = None):
        """Buffers for blocks first_layer..last_layer (a pass that starts or stops at a block never
        touches the others); `capacity` positions, or a list of them per block."""
        config = model.config
        heads = config.num_key_value_heads
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        n_layers = len(decoder_blocks(model))
        last_layer = n_layers - 1 if last_layer is None else last_layer
        capacities = capacity if isinstance(capacity, list) else [capacity] * n_layers
        self.batch = batch
        new = lambda i: (torch.zeros((batch, heads, capacities[i], head_dim), dtype=model.dtype, device=model.device)
                         if first_layer <= i <= last_layer else None)
        self.keys = [new(i) for i in range(n_layers)]
        self.values = [new(i) for i in range(n_layers)]
        self.lengths = [0] * n_layers

    def fill(self, layer: int, start: int, keys: torch.Tensor, values: torch.Tensor) -> None:
        """Put keys and values ([batch or 1, heads, positions, head_dim]) at slots start.."""
        if keys.shape[2] == 0:
            return
        end = start + keys.shape[2]
        self.keys[layer][:, :, start:end] = keys
        self.values[layer][:, :, start:end] = values
        self.lengths[layer] = max(self.lengths[layer], end)

    def update(self, keys: torch.Tensor, values: torch.Tensor, layer_idx: int, *args, **kwargs):
        """Append the new positions; attention reads every slot written so far."""
        self.fill(layer_idx, self.lengths[layer_idx], keys, values)
        end = self.lengths[layer_idx]
        return self.keys[layer_idx][:, :, :end], self.values[layer_idx][:, :, :end]

    def layer(self, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        end = self.lengths[layer]
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]

    def rows(self, part: slice) -> "KVCache":
        """The same buffers, restricted to rows `part` (writes go to this cache's buffers)."""
        view = copy.copy(self)
        view.keys = [None if k is None else k[part] for k in self.keys]
        view.values = [None if v is None else v[part] for v in self.values]
        view.lengths = list(self.lengths)
        view.batch = len(range(*part.indices(self.batch)))
        return view


class _SharedPrompts:
    """Keys and values of blocks below the steered layer over each distinct prompt, for decoding
    steps: every row of a prompt computes the same ones there, so attention reads them once per
    prompt instead of once per row (decoding is bound by reading keys and values), and the rows'
    caches below the layer hold only generated tokens. Scores over the prompt and over the row's
    own tokens share one softmax, which is the attention over the whole sequence."""

    def __init__(self, prompts: KVCache, n_layers: int, row_prompt: torch.Tensor, valid: torch.Tensor, dtype):
        """prompts: [n_prompts, ...] keys and values over [prompt slots]; row_prompt: each row's
        prompt; valid: [n_prompts, slots], which slots hold real tokens."""
        self.n_layers, self.keys, self.values = n_layers, prompts.keys, prompts.values
        n_prompts, n_rows = len(valid), len(row_prompt)
        counts = torch.bincount(row_prompt, minlength=n_prompts)
        by_prompt = torch.argsort(row_prompt, stable=True)
        first = torch.cumsum(counts, 0) - counts
        self.row_prompt = row_prompt
        self.slot = torch.empty_like(row_prompt)
        self.slot[by_prompt] = torch.arange(n_rows, device=row_prompt.device) - first[row_prompt[by_prompt]]
        self.group_size = int(counts.max())
        # each prompt's rows, padded with row n_rows (a zero query)
        self.rows = torch.full((n_prompts, self.group_size), n_rows, dtype=torch.long, device=row_prompt.device)
        self.rows[row_prompt, self.slot] = torch.arange(n_rows, device=row_prompt.device)
        self.mask = torch.zeros(n_prompts, 1, 1, valid.shape[1], dtype=dtype, device=valid.device)
        self.mask.masked_fill_(~valid[:, None, None, :], torch.finfo(dtype).min)

    def attend(self, layer: int, query: torch.Tensor, own_keys: torch.Tensor, own_values: torch.Tensor,
               scaling: float) -> torch.Tensor:
        """Attention output [rows, 1, heads, head_dim] of one query per row ([rows, heads, 1, head_dim])
        over its prompt's keys and values and its own (generated) ones."""
        n_rows, n_heads, _, head_dim = query.shape
        n_prompts, kv_heads, n_slots, _ = self.keys[layer].shape
        per_kv, group = n_heads // kv_heads, self.group_size
        query = query.view(n_rows, kv_heads, per_kv, head_dim)
        grouped = torch.cat([query, query.new_zeros(1, kv_heads, per_kv, head_dim)])[self.rows]
        grouped = grouped.transpose(1, 2).reshape(n_prompts, kv_heads, group * per_kv, head_dim)
        on_prompt = torch.matmul(grouped, self.keys[layer].transpose(-1, -2)).mul_(scaling).add_(self.mask)
        on_prompt = on_prompt.view(n_prompts, kv_heads, group, per_kv, n_slots)[self.row_prompt, :, self.slot]
        on_own = torch.matmul(query, own_keys.transpose(-1, -2)).mul_(scaling)
        probs = torch.cat([on_prompt, on_own], dim=-1).softmax(-1)
        spread = probs.new_zeros(n_prompts, group, kv_heads, per_kv, n_slots)
        spread[self.row_prompt, self.slot] = probs[..., :n_slots]
        from_prompt = torch.matmul(spread.transpose(1, 2).reshape(n_prompts, kv_heads, group * per_kv, n_slots),
                                   self.values[layer])
        out = from_prompt.view(n_prompts, kv_heads, group, per_kv, head_dim)[self.row_prompt, :, self.slot]
        out = out + torch.matmul(probs[..., n_slots:], own_values)
        return out.reshape(n_rows, 1, n_heads, head_dim)


def attention_mask(valid: torch.Tensor, start: int, n_queries: int, dtype: torch.dtype) -> torch.Tensor:
    """Additive [batch, 1, n_queries, n_keys] mask for queries at key slots start.. : causal and
    blind to invalid keys (padding, unwritten slots). A padding query sees itself, so no softmax
    row is empty."""
    n_keys = valid.shape[1]
    query = torch.arange(start, start + n_queries, device=valid.device)[:, None]
    key = torch.arange(n_keys, device=valid.device)[None, :]
    allowed = ((key <= query) & valid[:, None, None, :]) | (key == query)
    return torch.zeros(allowed.shape, dtype=dtype, device=valid.device).masked_fill(~allowed, torch.finfo(dtype).min)


def _grouped_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, shared_prompts=None,
                       **kwargs):
    """transformers' SDPA attention, except that passes over several positions let SDPA share each
    key/value head between its query heads (enable_gqa) instead of copying it per query head
    (transformers does so only without a mask); 40% less time in attention there. A decoding step
    given `shared_prompts` reads the prompts' keys and values below the steered layer from there."""
    if shared_prompts is not None and module.layer_idx < shared_prompts.n_layers:
        return shared_prompts.attend(module.layer_idx, query, key, value, scaling), None
    if query.shape[2] == 1 or query.shape[1] == key.shape[1]:
        return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout,
                                      **kwargs)
    out = torch.nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask, scale=scaling,
                                                           enable_gqa=True)
    return out.transpose(1, 2).contiguous(), None


AttentionInterface.register("interpflow_grouped_sdpa", _grouped_attention)


@contextmanager
def grouped_sdpa(model) -> Iterator[None]:
    before = model.config._attn_implementation
    model.config._attn_implementation = "interpflow_grouped_sdpa" if before == "sdpa" else before
    try:
        yield
    finally:
        model.config._attn_implementation = before


class _Skip(nn.Module):
    def forward(self, hidden_states, *args, **kwargs):
        return hidden_states


@contextmanager
def _starting_at(model, layer: int) -> Iterator[None]:
    """Passes inside start at block `layer`: the blocks below return their input, so
    `inputs_embeds` is read as the input of block `layer`."""
    blocks = decoder_blocks(model)
    below = [blocks[i] for i in range(layer)]
    for i in range(layer):
        blocks[i] = _Skip()
    try:
        yield
    finally:
        for i, block in enumerate(below):
            blocks[i] = block


@contextmanager
def _recording_input(model, layer: int, record: list[torch.Tensor]) -> Iterator[None]:
    def hook(_module, args, kwargs):
        record.append(args[0] if args else kwargs["hidden_states"])

    handle = decoder_blocks(model)[layer].register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()


def _hidden(model, cache: KVCache, valid: torch.Tensor, start: int, positions: torch.Tensor, **inputs) -> torch.Tensor:
    """Final hidden states (after the last norm) of a pass over new positions, which go to cache
    slots start.. (`valid`: [batch, >= start + new positions], which slots hold real tokens once
    these are written). The LM head is left to `_Head`, which runs it only where it is needed."""
    n_new = positions.shape[1]
    mask = attention_mask(valid[:, : start + n_new], start, n_new, model.dtype)
    return model.get_decoder()(**inputs, attention_mask=mask, position_ids=positions, cache=cache,
                               use_cache=True).last_hidden_state


class _Head:
    """The LM head into one reused buffer: a fresh [rows, vocab] tensor per decoding step costs page
    faults that take as long as the matmul."""

    ROWS = 512  # rows per matmul when scoring many positions

    def __init__(self, model):
        self.weight = model.get_output_embeddings().weight
        self.softcap = getattr(model.config, "final_logit_softcapping", None)
        self.buffer = torch.empty(0, self.weight.shape[0], dtype=self.weight.dtype, device=self.weight.device)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """[rows, vocab] for hidden [rows, d_model]; valid until the next call."""
        if len(self.buffer) < len(hidden):
            self.buffer = self.buffer.new_empty(len(hidden), self.buffer.shape[1])
        out = torch.matmul(hidden, self.weight.T, out=self.buffer[: len(hidden)])
        if self.softcap:
            out.div_(self.softcap).tanh_().mul_(self.softcap)
        return out

    def log_probs(self, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """log p(targets) for hidden [N, d_model] and targets [N]."""
        result = torch.empty(len(hidden), device=hidden.device)
        for start in range(0, len(hidden), self.ROWS):
            part = slice(start, start + self.ROWS)
            logits = self.logits(hidden[part])
            chosen = logits.gather(1, targets[part, None])[:, 0].float()
            largest = logits.amax(1, keepdim=True)
            total = logits.sub_(largest).exp_().sum(1)
            result[part] = chosen - largest[:, 0].float() - total.float().log()
        return result


def _choose(logits: torch.Tensor, temperature: float, generator: torch.Generator | None) -> torch.Tensor:
    if temperature == 0:  # the first maximal index, as argmax, which runs 3x slower here on one thread
        return logits.max(-1).indices
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]


@torch.no_grad()
def generate_shared(
    model,
    tokenizer,
    prompts: list[list[int]],
    intervene: Intervene,
    layer: int,
    max_new_tokens: int,
    batch_size: int,
    temperature: float = 0.0,
    seed: int = 0,
    steering_keys: list | None = None,
) -> tuple[list[list[int]], list[float]]:
    """Generate each prompt's continuation with intervene(rows) editing the residual after block
    `layer` (and nothing below it), and its perplexity under the unsteered model given the same prompt.

    Rows with equal `steering_keys` must get the same edit (None: no two rows are assumed equal).
    Returns the generated ids of each row (up to its end-of-sequence token) and exp(mean NLL) of
    those ids (NaN for an empty generation). Rows are batched by prompt length.
    """
    if not supports(model, max(map(len, prompts), default=0) + max_new_tokens):
        raise ValueError(f"shared-prefix generation does not support {model.config.model_type!r} for these lengths "
                         f"(architectures: {sorted(ARCHITECTURES)}; sequences within any sliding attention window)")
    keys = list(range(len(prompts))) if steering_keys is None else list(steering_keys)
    stop_ids = torch.tensor(sorted({tokenizer.eos_token_id, tokenizer.pad_token_id} - {None}), device=model.device)
    order = sorted(range(len(prompts)), key=lambda i: (len(prompts[i]), prompts[i]))
    tokens: list[list[int]] = [[] for _ in prompts]
    perplexities = [math.nan] * len(prompts)
    generator = None if temperature == 0 else torch.Generator(device=model.device).manual_seed(seed)
    progress = Progress("generation", len(prompts), "prompts")
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        batch = _Batch(model, layer, [prompts[i] for i in rows], [keys[i] for i in rows], tokenizer.pad_token_id,
                       max_new_tokens, lambda part: intervene([rows[k] for k in part]))
        with grouped_sdpa(model):
            generated, log_probs = batch.run(temperature, generator, stop_ids)
        stopped = torch.isin(generated, stop_ids)
        lengths = torch.where(stopped.any(1), stopped.int().argmax(1), generated.shape[1]).tolist()
        for k, row in enumerate(rows):
            tokens[row] = generated[k, : lengths[k]].tolist()
            if lengths[k]:
                perplexities[row] = math.exp(-log_probs[k, : lengths[k]].double().mean().item())
        progress.update(len(rows))
    return tokens, perplexities


def _distinct(items: list) -> tuple[list, torch.Tensor]:
    """The distinct items in first-seen order, and each item's number among them."""
    number: dict = {}
    index = [number.setdefault(item, len(number)) for item in items]
    return list(number), torch.tensor(index)


def _chunks(n_rows: int, n_positions: int, tokens: int) -> list[range]:
    """Row ranges of about `tokens` tokens each."""
    step = max(1, tokens // max(1, n_positions))
    return [range(start, min(start + step, n_rows)) for start in range(0, n_rows, step)]


# Tokens per pass: big enough for efficient matmuls, small enough to keep a pass's activations in cache
PASS_TOKENS = 2048


class _Batch:
    """One batch of rows, laid out as [common prefix | left-padded prompt suffix | generated tokens].

    The prefix (the chat template's opening, shared by every prompt) runs once through all blocks
    unsteered and once per distinct steering key through blocks `layer`..; each distinct suffix runs
    once unsteered; each row runs blocks `layer`.. over its suffix under its edit, then decodes.
    Padding between prefix and suffix is masked and positions are counted over real tokens only, so
    the layout computes what a left-padded prompt computes.
    """

    def __init__(self, model, layer, prompts, keys, pad_id, max_new_tokens, steering):
        self.model, self.layer, self.pad_id, self.steering = model, layer, pad_id, steering
        self.device = model.device
        shortest = min(len(p) for p in prompts)
        prefix = 0  # the longest common prefix that leaves every prompt a token of its own
        while prefix < shortest - 1 and all(p[prefix] == prompts[0][prefix] for p in prompts):
            prefix += 1
        self.prefix_ids = torch.tensor([prompts[0][:prefix]], device=self.device)
        suffixes, self.suffix_index = _distinct([tuple(p[prefix:]) for p in prompts])
        key_values, self.key_index = _distinct(keys)
        first_row = {}
        for row, key in enumerate(keys):
            first_row.setdefault(key, row)
        self.key_rows = [first_row[k] for k in key_values]  # a representative row per key
        self.suffix_ids, suffix_mask = _left_pad([list(sfx) for sfx in suffixes], pad_id)
        self.suffix_ids = self.suffix_ids.to(self.device)
        self.prefix, self.width, self.max_new = prefix, prefix + self.suffix_ids.shape[1], max_new_tokens
        self.suffix_valid = suffix_mask.to(self.device).bool()
        self.suffix_positions = prefix + (suffix_mask.to(self.device).cumsum(-1) - 1).clamp(min=0)
        self.n_rows = len(prompts)
        self.head = _Head(model)

    def _prompt_valid(self, index: torch.Tensor, extra: int) -> torch.Tensor:
        valid = torch.zeros(len(index), self.width + extra, dtype=torch.bool, device=self.device)
        valid[:, : self.prefix] = True
        valid[:, self.prefix : self.width] = self.suffix_valid[index]
        return valid

    def run(self, temperature, generator, stop_ids):
        """(generated ids [rows, G], unsteered log-probs of those ids [rows, G]); G <= max_new_tokens."""
        model, layer, n_layers = self.model, self.layer, len(decoder_blocks(self.model))
        prefix, suffix_input, first_log_probs, unsteered = self._unsteered_prompts()
        # below the layer every row computes what its prompt's unsteered pass did: the rows' caches
        # there hold only generated tokens, and decoding reads the prompt part from `shared`
        cache = KVCache(model, self.n_rows, [self.max_new] * layer + [self.width + self.max_new] * (n_layers - layer))
        n_prompts = len(self.suffix_ids)
        shared = _SharedPrompts(unsteered, layer, self.suffix_index.to(self.device),
                                self._prompt_valid(torch.arange(n_prompts, device=self.device), 0), model.dtype)
        steered_prefix = self._steered_prefix(prefix)
        for i in range(layer, n_layers):
            keys, values = steered_prefix.layer(i)
            cache.fill(i, 0, keys[self.key_index], values[self.key_index])
        valid = self._prompt_valid(self.suffix_index, self.max_new)

        # each row's suffix through blocks `layer`.. under its edit, in parts; a part skips the
        # padding slots that all its rows have (rows come sorted by prompt length)
        last_hidden = []
        suffix_lengths = self.suffix_valid.sum(1)
        for part in _chunks(self.n_rows, self.width - self.prefix, PASS_TOKENS):
            rows = slice(part.start, part.stop)
            index = self.suffix_index[rows]
            span = int(suffix_lengths[index].max())
            part_cache = cache.rows(rows)
            part_cache.lengths = [0 if i < layer else self.width - span for i in range(n_layers)]
            with self.steering(part), _starting_at(model, layer):
                last_hidden.append(_hidden(model, part_cache, valid[rows], self.width - span,
                                           self.suffix_positions[index, -span:],
                                           inputs_embeds=suffix_input[index, -span:])[:, -1])
        cache.lengths = [0] * layer + [self.width] * (n_layers - layer)
        logits = self.head.logits(torch.cat(last_hidden))

        steps, decoded_inputs = [], []
        finished = torch.zeros(self.n_rows, dtype=torch.bool, device=self.device)
        position = self.suffix_positions[self.suffix_index, -1:]
        with self.steering(range(self.n_rows)), _recording_input(model, layer, decoded_inputs):
            for step in range(self.max_new):
                chosen = torch.where(finished, self.pad_id, _choose(logits, temperature, generator))
                steps.append(chosen)
                finished |= torch.isin(chosen, stop_ids)
                if step == self.max_new - 1 or bool(finished.all()):
                    break
                valid[:, self.width + step] = True
                position = position + 1
                hidden = _hidden(model, cache, valid, self.width + step, position, input_ids=chosen[:, None],
                                 shared_prompts=shared)
                logits = self.head.logits(hidden[:, -1])
        generated = torch.stack(steps, dim=1)

        log_probs = torch.empty(generated.shape, device=self.device)
        log_probs[:, 0] = first_log_probs[self.suffix_index].gather(1, generated[:, :1])[:, 0]
        if generated.shape[1] > 1:
            inputs = torch.cat(decoded_inputs, dim=1)  # block-`layer` input at each generated token but the last
            for part in _chunks(self.n_rows, inputs.shape[1], PASS_TOKENS):
                rows = slice(part.start, part.stop)
                log_probs[rows, 1:] = self._unsteered_log_probs(unsteered, self.suffix_index[rows], inputs[rows],
                                                                generated[rows, 1:])
        return generated.cpu(), log_probs.cpu()

    def _unsteered_prompts(self):
        """The prefix and the distinct suffixes through every block, unsteered: their caches, each
        suffix's block-`layer` input and the log-probs of the token after each prompt."""
        model = self.model
        prefix = KVCache(model, 1, self.prefix)
        self.prefix_input = []
        if self.prefix:
            with _recording_input(model, self.layer, self.prefix_input):
                _hidden(model, prefix, torch.ones(1, self.prefix, dtype=torch.bool, device=self.device), 0,
                        torch.arange(self.prefix, device=self.device)[None], input_ids=self.prefix_ids)
        n_suffixes = len(self.suffix_ids)
        unsteered = KVCache(model, n_suffixes, self.width)
        for i in range(len(unsteered.keys)):
            unsteered.fill(i, 0, *prefix.layer(i))
        valid = self._prompt_valid(torch.arange(n_suffixes, device=self.device), 0)
        suffix_input, last = [], []
        with _recording_input(model, self.layer, suffix_input):
            for part in _chunks(n_suffixes, self.width - self.prefix, PASS_TOKENS):
                rows = slice(part.start, part.stop)
                last.append(_hidden(model, unsteered.rows(rows), valid[rows], self.prefix, self.suffix_positions[rows],
                                    input_ids=self.suffix_ids[rows])[:, -1])
        unsteered.lengths = [self.width] * len(unsteered.keys)
        first_log_probs = self.head.logits(torch.cat(last)).float().log_softmax(-1)
        return prefix, torch.cat(suffix_input), first_log_probs, unsteered

    def _steered_prefix(self, prefix: KVCache) -> KVCache:
        """The prefix through blocks `layer`.. once per distinct steering key."""
        n_keys = len(self.key_rows)
        steered = KVCache(self.model, n_keys, self.prefix, first_layer=self.layer)
        if self.prefix:
            inputs = self.prefix_input[0].expand(n_keys, -1, -1)
            positions = torch.arange(self.prefix, device=self.device)[None].expand(n_keys, -1)
            valid = torch.ones(n_keys, self.prefix, dtype=torch.bool, device=self.device)
            with self.steering(self.key_rows), _starting_at(self.model, self.layer):
                _hidden(self.model, steered, valid, 0, positions, inputs_embeds=inputs)
        return steered

    def _unsteered_log_probs(self, unsteered, index, inputs, targets):
        """log p(targets) under the unsteered model: blocks `layer`.. over the generated positions
        (`inputs`: their block-`layer` inputs), on the prompts' unsteered keys and values."""
        model, n_new = self.model, inputs.shape[1]
        cache = KVCache(model, len(index), self.width + n_new, first_layer=self.layer)
        for i in range(self.layer, len(cache.keys)):
            keys, values = unsteered.layer(i)
            cache.fill(i, 0, keys[index], values[index])
        positions = self.suffix_positions[index, -1:] + 1 + torch.arange(n_new, device=self.device)
        valid = self._prompt_valid(index, n_new)
        valid[:, self.width :] = True
        with _starting_at(model, self.layer):
            hidden = _hidden(model, cache, valid, self.width, positions, inputs_embeds=inputs)
        return self.head.log_probs(hidden.reshape(-1, hidden.shape[-1]), targets.reshape(-1)).view(targets.shape)
