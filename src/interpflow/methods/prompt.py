"""Prompting baseline (AxBench's PromptSteering): steer by asking for the concept in the prompt. No
training, no factor, no detection (prompt-based detection is its own method, `prompt_detection`).

The steered prompt is "{steering_prompt}\n\nQuestion: {instruction}", as AxBench builds it. The
steering prompt is the one the generator model wrote for the concept when the run has a generator
(AxBench has gpt-4o-mini write one per concept); otherwise `template`, filled with the concept.
"""

from interpflow.methods.base import Method
from interpflow.ranges import text


class Prompt(Method):
    name = "prompt"
    needs = "nothing"
    detects = False
    uses_factor = False
    settings = {"template": text(contains=("{concept}",)), "format": text(contains=("{steering_prompt}", "{instruction}"))}

    def steering_instruction(self, concept: str, instruction: str, steering_prompt: str = "") -> str:
        written = steering_prompt.strip() or self.cfg["template"].format(concept=concept)
        return self.cfg["format"].format(steering_prompt=written, instruction=instruction)
