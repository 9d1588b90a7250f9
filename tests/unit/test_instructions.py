"""Steering instructions: loading every file format, and the per-concept select/test split."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from interpflow.data.instructions import check_steering_apart, instruction_pools, load_instructions, steer_prompts
from interpflow.errors import ConfigError

INSTRUCTIONS = [f"Instruction number {i}." for i in range(20)]
CONCEPTS = pd.DataFrame({"concept_id": [0, 1, 5], "concept": ["a", "b", "c"]})


def test_split_sizes_half_select_half_test():
    prompts = steer_prompts(CONCEPTS, INSTRUCTIONS, per_concept=6, seed=0)
    assert list(prompts.columns) == ["concept_id", "instruction_id", "instruction", "split"]
    assert len(prompts) == 3 * 6
    for concept_id, group in prompts.groupby("concept_id"):
        assert (group["split"] == "select").sum() == 3
        assert (group["split"] == "test").sum() == 3
        assert group["instruction_id"].is_unique  # drawn without replacement
        # the first half is select, the rest test
        assert group["split"].tolist() == ["select"] * 3 + ["test"] * 3
    assert set(prompts["concept_id"]) == {0, 1, 5}


def test_odd_count_puts_the_extra_one_in_test():
    prompts = steer_prompts(CONCEPTS.head(1), INSTRUCTIONS, per_concept=5, seed=0)
    assert prompts["split"].tolist() == ["select"] * 2 + ["test"] * 3


def test_instruction_text_matches_its_id():
    prompts = steer_prompts(CONCEPTS, INSTRUCTIONS, per_concept=4, seed=3)
    for row in prompts.itertuples():
        assert row.instruction == INSTRUCTIONS[row.instruction_id]


def test_reproducible_with_the_same_seed():
    first = steer_prompts(CONCEPTS, INSTRUCTIONS, per_concept=6, seed=7)
    second = steer_prompts(CONCEPTS, INSTRUCTIONS, per_concept=6, seed=7)
    pd.testing.assert_frame_equal(first, second)


def test_seed_changes_the_draw():
    first = steer_prompts(CONCEPTS, INSTRUCTIONS, per_concept=6, seed=0)
    other = steer_prompts(CONCEPTS, INSTRUCTIONS, per_concept=6, seed=1)
    assert first["instruction_id"].tolist() != other["instruction_id"].tolist()


def test_draws_differ_across_concepts():
    prompts = steer_prompts(CONCEPTS, INSTRUCTIONS, per_concept=6, seed=0)
    draws = [tuple(g["instruction_id"]) for _, g in prompts.groupby("concept_id")]
    assert len(set(draws)) == len(draws)


def test_draw_depends_on_concept_id_not_position():
    """A concept keeps its instructions whatever shard (or neighbours) it is listed with."""
    alone = steer_prompts(CONCEPTS[CONCEPTS["concept_id"] == 5], INSTRUCTIONS, per_concept=6, seed=0)
    together = steer_prompts(CONCEPTS, INSTRUCTIONS, per_concept=6, seed=0)
    assert alone["instruction_id"].tolist() == together.loc[together["concept_id"] == 5, "instruction_id"].tolist()


def test_too_few_instructions():
    with pytest.raises(ConfigError) as info:
        steer_prompts(CONCEPTS, INSTRUCTIONS[:3], per_concept=4, seed=0)
    assert "instructions_per_concept is 4" in str(info.value)
    assert "only 3" in str(info.value)


def test_exactly_enough_instructions_uses_each_once():
    prompts = steer_prompts(CONCEPTS.head(1), INSTRUCTIONS[:4], per_concept=4, seed=0)
    assert sorted(prompts["instruction_id"]) == [0, 1, 2, 3]


def test_load_demo():
    demo = load_instructions("demo")
    assert len(demo) >= 10
    assert all(isinstance(i, str) and i for i in demo)


def test_load_json(tmp_path):
    path = tmp_path / "i.json"
    path.write_text(json.dumps(["one", "two", 3]))
    assert load_instructions(str(path)) == ["one", "two", "3"]


def test_load_jsonl(tmp_path):
    path = tmp_path / "i.jsonl"
    path.write_text('{"instruction": "one", "id": 1}\n\n{"instruction": "two"}\n')
    assert load_instructions(str(path)) == ["one", "two"]


def test_load_txt(tmp_path):
    path = tmp_path / "i.txt"
    path.write_text("  one  \n\ntwo\n   \nthree\n")
    assert load_instructions(str(path)) == ["one", "two", "three"]


def test_load_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_instructions(str(tmp_path / "absent.json"))


def test_load_unsupported_suffix(tmp_path):
    path = tmp_path / "i.csv"
    path.write_text("one\n")
    with pytest.raises(ConfigError, match=r"\.json, \.jsonl, \.txt or \.parquet"):
        load_instructions(str(path))


def test_load_parquet_and_json_objects(tmp_path):
    path = tmp_path / "alpaca.parquet"
    pd.DataFrame({"instruction": ["Name a river.", " ", "Sum 2 and 3."], "output": ["a", "b", "c"]}).to_parquet(path)
    assert load_instructions(str(path)) == ["Name a river.", "Sum 2 and 3."]
    objects = tmp_path / "i.json"
    objects.write_text('[{"instruction": "one"}, "two"]')
    assert load_instructions(str(objects)) == ["one", "two"]
    wrong = tmp_path / "wrong.parquet"
    pd.DataFrame({"prompt": ["x"]}).to_parquet(wrong)
    with pytest.raises(ConfigError, match="no `instruction` column"):
        load_instructions(str(wrong))


def test_pools_are_disjoint_cover_the_list_and_ignore_its_order():
    instructions = [f"Instruction {i}." for i in range(30)]
    train, evaluation = instruction_pools(instructions)
    assert not set(train) & set(evaluation) and set(train) | set(evaluation) == set(instructions)
    assert len(evaluation) == 10
    again = instruction_pools(list(reversed(instructions)))
    assert set(again[0]) == set(train) and set(again[1]) == set(evaluation)


def test_pools_put_a_repeated_instruction_on_one_side():
    train, evaluation = instruction_pools(["a", "b", "a", "c"])
    assert sorted(train + evaluation) == ["a", "b", "c"]


def test_pools_need_two_instructions():
    with pytest.raises(ConfigError, match="at least 2 distinct"):
        instruction_pools(["only", "only"])


def test_the_shipped_steering_list_is_apart_from_the_training_list():
    steering = load_instructions("demo", "steering.instructions")
    assert len(steering) >= 32
    check_steering_apart(steering, load_instructions("demo"), "the shipped training list")


def test_a_steering_instruction_in_the_data_is_an_error():
    with pytest.raises(ConfigError) as info:
        check_steering_apart(["Name a river.", "Describe a cat."], ["describe  a CAT.", "Sum 2 and 3."], "the data")
    message = str(info.value)
    assert "1 steering instruction(s) also appear in the data: 'Describe a cat.'" in message
    assert "river" not in message
