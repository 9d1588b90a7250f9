"""Concept lists from every source kind, trimming, sharding and the errors on bad lists."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from interpflow.data.concepts import CONCEPT_COLUMNS, build_concepts, shard_name
from interpflow.data.sources.dataset import DatasetSource
from interpflow.errors import ConfigError


def cfg_for(source: str, names=(), path=None, limit=None, shard_size: int = 8, generator: str = "dataset") -> dict:
    return {
        "concepts": {"source": source, "names": list(names), "path": None if path is None else str(path),
                     "limit": limit, "shard_size": shard_size},
        "generator": {"name": generator},
    }


DATASET_CONCEPTS = pd.DataFrame(
    {
        "concept_id": [10, 11, 12, 13],
        "concept": ["ocean", "music", "python code", "arithmetic"],
        "genre": ["text", "text", "code", "math"],
        "source": "test data set",
    }
)


def test_txt_file(tmp_path):
    path = tmp_path / "concepts.txt"
    path.write_text("rivers\n\n  mountains  \nthe colour blue\n")
    frame = build_concepts(cfg_for("file", path=path), None)
    assert list(frame.columns) == CONCEPT_COLUMNS
    assert frame["concept"].tolist() == ["rivers", "mountains", "the colour blue"]
    assert frame["concept_id"].tolist() == [0, 1, 2]
    assert set(frame["genre"]) == {"text"}
    assert set(frame["source"]) == {f"file:{path}"}


def test_csv_without_genre(tmp_path):
    path = tmp_path / "concepts.csv"
    pd.DataFrame({"concept": ["rivers", "mountains"], "other": [1, 2]}).to_csv(path, index=False)
    frame = build_concepts(cfg_for("file", path=path), None)
    assert frame["concept"].tolist() == ["rivers", "mountains"]
    assert frame["genre"].tolist() == ["text", "text"]
    assert list(frame.columns) == CONCEPT_COLUMNS


def test_csv_with_genre(tmp_path):
    path = tmp_path / "concepts.csv"
    pd.DataFrame({"genre": ["code", "math", "text"], "concept": ["loops", "integrals", "poems"]}).to_csv(path, index=False)
    frame = build_concepts(cfg_for("file", path=path), None)
    assert frame["concept"].tolist() == ["loops", "integrals", "poems"]
    assert frame["genre"].tolist() == ["code", "math", "text"]
    assert frame["concept_id"].tolist() == [0, 1, 2]


def test_csv_without_concept_column(tmp_path):
    path = tmp_path / "concepts.csv"
    pd.DataFrame({"name": ["loops"]}).to_csv(path, index=False)
    with pytest.raises(ConfigError, match="no `concept` column"):
        build_concepts(cfg_for("file", path=path), None)


def test_unsupported_file_suffix(tmp_path):
    path = tmp_path / "concepts.yaml"
    path.write_text("- rivers\n")
    with pytest.raises(ConfigError, match=r"\.txt .*\.csv"):
        build_concepts(cfg_for("file", path=path), None)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        build_concepts(cfg_for("file", path=tmp_path / "absent.txt"), None)


def neuronpedia_records() -> list[dict]:
    return [
        {"modelId": "gemma-2-2b", "layer": "20-gemmascope-res-16k", "index": "101", "description": "references to rivers"},
        {"modelId": "gemma-2-2b", "layer": "20-gemmascope-res-16k", "index": "104", "description": " words about cats "},
    ]


def test_neuronpedia_export_list(tmp_path):
    path = tmp_path / "export.json"
    path.write_text(json.dumps(neuronpedia_records()))
    frame = build_concepts(cfg_for("neuronpedia", path=path), None)
    assert frame["concept"].tolist() == ["references to rivers", "words about cats"]  # surrounding spaces trimmed
    assert frame["concept_id"].tolist() == [0, 1]
    assert set(frame["source"]) == {f"neuronpedia:{path}"}
    assert list(frame.columns) == CONCEPT_COLUMNS


def test_neuronpedia_export_object(tmp_path):
    path = tmp_path / "export.json"
    path.write_text(json.dumps({"explanations": neuronpedia_records()[:1]}))
    frame = build_concepts(cfg_for("neuronpedia", path=path), None)
    assert frame["concept"].tolist() == ["references to rivers"]


def test_neuronpedia_empty_descriptions_are_refused(tmp_path):
    path = tmp_path / "export.json"
    records = neuronpedia_records()
    path.write_text(json.dumps([records[0], {**records[0], "description": "   "}, {**records[1], "description": None}]))
    with pytest.raises(ConfigError, match=r"blank concept at item 1 \(`description`\), item 2"):
        build_concepts(cfg_for("neuronpedia", path=path), None)


def test_an_empty_neuronpedia_list_is_an_error(tmp_path):
    path = tmp_path / "export.json"
    path.write_text("[]")
    with pytest.raises(ConfigError, match="concept list is empty"):
        build_concepts(cfg_for("neuronpedia", path=path), None)


def test_limit_keeps_the_first(tmp_path):
    path = tmp_path / "concepts.txt"
    path.write_text("a\nb\nc\nd\ne\n")
    frame = build_concepts(cfg_for("file", path=path, limit=3), None)
    assert frame["concept"].tolist() == ["a", "b", "c"]
    frame = build_concepts(cfg_for("dataset", limit=2), DATASET_CONCEPTS)
    assert frame["concept_id"].tolist() == [10, 11]


def test_dataset_source_keeps_its_ids():
    frame = build_concepts(cfg_for("dataset"), DATASET_CONCEPTS)
    assert frame["concept_id"].tolist() == [10, 11, 12, 13]
    assert frame["genre"].tolist() == ["text", "text", "code", "math"]
    assert set(frame["source"]) == {"test data set"}


def test_dataset_names_subset():
    frame = build_concepts(cfg_for("dataset", names=["arithmetic", "music"]), DATASET_CONCEPTS)
    assert set(frame["concept"]) == {"arithmetic", "music"}
    assert set(frame["concept_id"]) == {11, 13}
    assert frame["shard"].tolist() == ["s0000", "s0000"]


def test_dataset_names_with_unknown_name():
    with pytest.raises(ConfigError) as info:
        build_concepts(cfg_for("dataset", names=["music", "volcanoes"]), DATASET_CONCEPTS)
    message = str(info.value)
    assert "volcanoes" in message
    assert "'music'" not in message.split(";")[0]  # only the unknown name is reported as missing
    assert "ocean" in message  # and the available ones are listed


def test_dataset_names_on_demo_source():
    demo = DatasetSource({"name": "dataset", "path": "demo", "format": "demo"}).concepts()
    first = demo["concept"].iloc[0]
    frame = build_concepts(cfg_for("dataset", names=[first]), demo)
    assert frame["concept"].tolist() == [first]
    with pytest.raises(ConfigError, match="lacks"):
        build_concepts(cfg_for("dataset", names=["definitely not a demo concept"]), demo)


def test_dataset_source_without_concepts():
    with pytest.raises(ConfigError, match="inline, file or neuronpedia"):
        build_concepts(cfg_for("dataset", generator="openai"), None)


def test_shards_follow_shard_size():
    names = [f"concept {i}" for i in range(7)]
    frame = build_concepts(cfg_for("inline", names=names, shard_size=3), None)
    assert frame["shard"].tolist() == ["s0000"] * 3 + ["s0001"] * 3 + ["s0002"]
    assert frame["concept_id"].tolist() == list(range(7))
    frame = build_concepts(cfg_for("inline", names=names, shard_size=1), None)
    assert frame["shard"].tolist() == [shard_name(i) for i in range(7)]
    assert shard_name(12) == "s0012"


def test_shards_after_subset_are_contiguous():
    frame = build_concepts(cfg_for("dataset", names=["ocean", "python code", "arithmetic"], shard_size=2), DATASET_CONCEPTS)
    assert frame["shard"].tolist() == ["s0000", "s0000", "s0001"]
    assert list(frame.index) == [0, 1, 2]


def test_duplicates_are_an_error():
    with pytest.raises(ConfigError) as info:
        build_concepts(cfg_for("inline", names=["rivers", "lakes", "rivers"]), None)
    assert "duplicates" in str(info.value) and "rivers" in str(info.value)


def test_duplicates_in_file(tmp_path):
    path = tmp_path / "concepts.txt"
    path.write_text("rivers\nlakes\nrivers\n")
    with pytest.raises(ConfigError, match="duplicates"):
        build_concepts(cfg_for("file", path=path), None)


def test_empty_inline_list():
    with pytest.raises(ConfigError, match="concept list is empty"):
        build_concepts(cfg_for("inline"), None)


def test_a_listed_concept_takes_the_data_sets_id_by_name(tmp_path):
    """A user's own list against a ready-made data set: ids come from the data set, never from the
    list's order (numbering them 0..n-1 handed them other concepts' examples)."""
    path = tmp_path / "concepts.txt"
    path.write_text("  Arithmetic \nocean\n")
    frame = build_concepts(cfg_for("file", path=path), DATASET_CONCEPTS)
    assert frame["concept_id"].tolist() == [13, 10]
    assert frame["concept"].tolist() == ["arithmetic", "ocean"]  # the data set's spelling
    assert frame["genre"].tolist() == ["math", "text"]  # and its genre: the examples were written for it
    frame = build_concepts(cfg_for("inline", names=["MUSIC"]), DATASET_CONCEPTS)
    assert frame["concept_id"].tolist() == [11]


def test_a_listed_concept_the_data_set_lacks_is_named_with_the_closest(tmp_path):
    path = tmp_path / "concepts.txt"
    path.write_text("ocean\nthe Eiffel Tower\npython codes\n")
    with pytest.raises(ConfigError) as info:
        build_concepts(cfg_for("file", path=path), DATASET_CONCEPTS)
    message = str(info.value)
    assert "'the Eiffel Tower'" in message and "'python codes' (closest: 'python code')" in message
    assert "'ocean'" not in message.split("lacks")[1].split(".")[0]
    assert "generator=local" in message


def test_dataset_names_match_without_case_or_spaces():
    frame = build_concepts(cfg_for("dataset", names=[" Python Code"]), DATASET_CONCEPTS)
    assert frame["concept_id"].tolist() == [12]


def test_duplicates_ignore_case_and_spaces():
    with pytest.raises(ConfigError, match="duplicates"):
        build_concepts(cfg_for("inline", names=["rivers", " Rivers"]), None)


def test_neuronpedia_ref_is_kept(tmp_path):
    path = tmp_path / "export.json"
    path.write_text(json.dumps(neuronpedia_records()))
    frame = build_concepts(cfg_for("neuronpedia", path=path), None)
    assert frame["ref"].tolist() == ["neuronpedia:gemma-2-2b/20-gemmascope-res-16k/101", "neuronpedia:gemma-2-2b/20-gemmascope-res-16k/104"]


def axbench_folder(tmp_path, metadata: list[dict]):
    (tmp_path / "generate").mkdir()
    (tmp_path / "inference").mkdir()
    (tmp_path / "generate/metadata.jsonl").write_text("\n".join(json.dumps(m) for m in metadata) + "\n")
    for name in ("generate/train_data.parquet", "inference/latent_eval_data.parquet"):
        pd.DataFrame({"concept_id": [0]}).to_parquet(tmp_path / name)
    return DatasetSource({"name": "dataset", "path": str(tmp_path), "format": "axbench"})


def test_axbench_metadata_keeps_its_ref(tmp_path):
    source = axbench_folder(tmp_path, [{"concept_id": 4, "concept": "rivers", "ref": "https://np/x/7"},
                                        {"concept_id": 9, "concept": "cats"}])
    frame = build_concepts(cfg_for("dataset"), source.concepts())
    assert frame.set_index("concept_id")["ref"].to_dict() == {4: "https://np/x/7", 9: ""}


def test_axbench_repeated_concept_id_is_an_error(tmp_path):
    source = axbench_folder(tmp_path, [{"concept_id": 4, "concept": "rivers"}, {"concept_id": 4, "concept": "cats"}])
    with pytest.raises(ConfigError, match=r"one concept_id to several concepts: \{4: \['rivers', 'cats'\]\}"):
        source.concepts()


def test_axbench_repeated_concept_name_is_an_error(tmp_path):
    source = axbench_folder(tmp_path, [{"concept_id": 4, "concept": "rivers"}, {"concept_id": 5, "concept": "Rivers "}])
    with pytest.raises(ConfigError, match="one concept name under several ids"):
        source.concepts()
