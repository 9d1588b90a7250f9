"""Tiny random decoder models of any transformers architecture, on the test tokenizer's vocabulary."""

from __future__ import annotations

import torch


def tiny_model(arch: str, tokenizer, **config):
    from transformers import AutoConfig, AutoModelForCausalLM

    settings = dict(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
        num_key_value_heads=2, head_dim=16, max_position_embeddings=512, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(AutoConfig.for_model(arch, **settings | config), dtype=torch.float32).eval()
