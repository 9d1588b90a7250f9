"""Prompting baseline: steer by asking for the concept in the prompt. No training, no factor, no detection."""

from interpflow.methods.base import Method


class Prompt(Method):
    name = "prompt"
    needs = "nothing"
    detects = False
    uses_factor = False

    def steering_instruction(self, concept: str, instruction: str) -> str:
        return self.cfg["template"].format(concept=concept, instruction=instruction)
