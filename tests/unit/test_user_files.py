"""Every user file that is missing, empty or malformed stops the run with a ConfigError naming the
file, the config key it came from and what is wrong; blank concepts are refused wherever they come from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import pandas as pd
import pytest
import torch
from safetensors.torch import save_file

from interpflow.data.concepts import build_concepts
from interpflow.data.instructions import load_instructions
from interpflow.data.sources.dataset import DatasetSource
from interpflow.errors import ConfigError
from interpflow.methods.sae import read_labels
from interpflow.sae.pretrained import check_local
from interpflow.saebench.unlearning_data import corpora, questions

LATIN_1 = "concept\ncafé\n".encode("latin-1")


def concepts_from(source: str) -> Callable[[Path], object]:
    def read(path: Path):
        spec = {"source": source, "names": [], "path": str(path), "limit": None, "shard_size": 8}
        return build_concepts({"concepts": spec, "generator": {"name": "dataset"}}, None)

    return read


def axbench_folder(root: Path, metadata: str | None = None, train: pd.DataFrame | bytes | None = None) -> Path:
    """A tiny folder in AxBench's released layout and columns; `metadata`/`train` replace the good files."""
    (root / "generate").mkdir(parents=True)
    (root / "inference").mkdir()
    good_meta = [{"concept_id": 0, "concept": "ocean", "ref": "", "concept_genres_map": {"ocean": ["text"]}},
                 {"concept_id": 1, "concept": "music", "ref": "", "concept_genres_map": {"music": ["text"]}}]
    (root / "generate/metadata.jsonl").write_text(metadata if metadata is not None else
                                                  "\n".join(json.dumps(m) for m in good_meta) + "\n")
    rows = pd.DataFrame({"input": ["a", "b", "c"], "output": ["waves", "songs", "plain"], "output_concept": "x",
                         "concept_genre": "text", "category": ["positive", "positive", "negative"],
                         "dataset_category": "instruction", "concept_id": [0, 1, -1]})
    if isinstance(train, bytes):
        (root / "generate/train_data.parquet").write_bytes(train)
    else:
        (train if train is not None else rows).to_parquet(root / "generate/train_data.parquet")
    rows.to_parquet(root / "inference/latent_eval_data.parquet")
    return root


def axbench(read: str) -> Callable[[Path], object]:
    def run(file: Path):
        folder = file.parent.parent  # <folder>/generate/<file>
        source = DatasetSource({"name": "dataset", "format": "axbench", "path": str(folder)})
        concepts = source.concepts()
        return source.train_data(concepts) if read == "train" else concepts

    return run


def unlearning(key: str) -> Callable[[Path], object]:
    def read(path: Path):
        cfg = {k: None for k in ("forget_questions", "retain_questions", "forget_corpus", "retain_corpus")}
        cfg[key] = str(path)
        return questions(cfg) if key.endswith("questions") else corpora(cfg)

    return read


def write(name: str, content: str | bytes | pd.DataFrame | object) -> Callable[[Path], Path]:
    """A file `name` in the test's folder holding `content` (text, bytes, a table as parquet, or JSON)."""
    def make(folder: Path) -> Path:
        path = folder / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif isinstance(content, str):
            path.write_text(content)
        elif isinstance(content, pd.DataFrame):
            content.to_parquet(path)
        else:
            path.write_text(json.dumps(content))
        return path

    return make


def truncated_sae_folder(folder: Path) -> Path:
    sae = folder / "sae"
    sae.mkdir()
    (sae / "cfg.json").write_text(json.dumps({"architecture": "standard", "d_in": 4, "d_sae": 8}))
    save_file({"W_enc": torch.zeros(4, 8), "W_dec": torch.zeros(8, 4)}, str(sae / "sae_weights.safetensors"))
    data = (sae / "sae_weights.safetensors").read_bytes()
    (sae / "sae_weights.safetensors").write_bytes(data[: len(data) - 40])
    return sae


def sae_folder_with(cfg_text: str) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        sae = folder / "sae"
        sae.mkdir()
        (sae / "cfg.json").write_text(cfg_text)
        save_file({"W_enc": torch.zeros(4, 8)}, str(sae / "sae_weights.safetensors"))
        return sae

    return make


# (case, makes the file in tmp_path -> the path to report, reads it as the run does, key, what the message says)
CASES = [
    ("concept csv missing", lambda d: d / "nope.csv", concepts_from("file"), "concepts.path", "does not exist"),
    ("concept path is a folder", lambda d: d, concepts_from("file"), "concepts.path", "is a folder"),
    ("concept csv empty", write("c.csv", ""), concepts_from("file"), "concepts.path", "is empty"),
    ("concept csv blank lines only", write("c.csv", "\n \n"), concepts_from("file"), "concepts.path", "is empty"),
    ("concept csv ragged row", write("c.csv", "concept\nocean\nmusic,text,extra\n"), concepts_from("file"),
     "concepts.path", "line 3 has 3 fields but the header has 1"),
    ("concept csv one field too many", write("c.csv", "concept,genre\nocean,text,extra\n"), concepts_from("file"),
     "concepts.path", "line 2 has 3 fields"),
    ("concept csv open quote", write("c.csv", 'concept\n"ocean\nmusic\n'), concepts_from("file"), "concepts.path",
     "not valid CSV"),
    ("concept csv latin-1", write("c.csv", LATIN_1), concepts_from("file"), "concepts.path", "not UTF-8 text (byte 0xe9 on line 2)"),
    ("concept csv without concept column", write("c.csv", "name\nocean\n"), concepts_from("file"), "concepts.path",
     "no `concept` column"),
    ("concept txt latin-1", write("c.txt", "ocean\ncafé\n".encode("latin-1")), concepts_from("file"), "concepts.path",
     "not UTF-8"),
    ("concept file of another kind", write("c.xlsx", "ocean"), concepts_from("file"), "concepts.path", "suffix '.xlsx'"),
    ("neuronpedia bad json", write("np.json", '[{"description": "ocean"},\n{"description": }]'),
     concepts_from("neuronpedia"), "concepts.path", "not valid JSON (line 2"),
    ("neuronpedia object", write("np.json", {"modelId": "gemma-2-2b"}), concepts_from("neuronpedia"), "concepts.path",
     "holds an object, not a list of explanations"),
    ("neuronpedia list of strings", write("np.json", [{"description": "ocean"}, "music"]), concepts_from("neuronpedia"),
     "concepts.path", "item 1 is not an explanation"),
    ("neuronpedia empty", write("np.json", ""), concepts_from("neuronpedia"), "concepts.path", "is empty"),
    ("axbench metadata bad line", lambda d: axbench_folder(d, metadata='{"concept_id": 0, "concept": "ocean"}\n{"concept_id": 1,\n')
     / "generate/metadata.jsonl", axbench("concepts"), "generator.path", "line 2 is not valid JSON"),
    ("axbench metadata without concept_id", lambda d: axbench_folder(d, metadata='{"concept": "ocean"}\n')
     / "generate/metadata.jsonl", axbench("concepts"), "generator.path", "line 1 is not a concept object"),
    ("axbench metadata empty", lambda d: axbench_folder(d, metadata="") / "generate/metadata.jsonl", axbench("concepts"),
     "generator.path", "is empty"),
    ("axbench parquet without category", lambda d: axbench_folder(d, train=pd.DataFrame(
        {"input": ["a"], "output": ["b"], "concept_genre": ["text"], "concept_id": [0]})) / "generate/train_data.parquet",
     axbench("train"), "generator.path", "no `category` column"),
    ("axbench parquet not parquet", lambda d: axbench_folder(d, train=b"input,output\na,b\n") / "generate/train_data.parquet",
     axbench("train"), "generator.path", "cannot be read as Parquet"),
    ("axbench parquet concept_id not a number", lambda d: axbench_folder(d, train=pd.DataFrame(
        {"input": ["a"], "output": ["b"], "concept_genre": ["text"], "category": ["positive"], "concept_id": ["zero"]}))
     / "generate/train_data.parquet", axbench("train"), "generator.path", "row 0 has the concept_id 'zero'"),
    ("instructions json invalid", write("i.json", '["one", "two",]'), lambda p: load_instructions(str(p), "steering.instructions"),
     "steering.instructions", "not valid JSON (line 1"),
    ("instructions json object", write("i.json", {"instruction": "one"}), lambda p: load_instructions(str(p), "steering.instructions"),
     "steering.instructions", "holds an object, not a list"),
    ("instructions json number item", write("i.json", ["one", ["two"]]), lambda p: load_instructions(str(p), "generator.instructions"),
     "generator.instructions", "item 1 is neither text nor an object"),
    ("instructions jsonl bad line", write("i.jsonl", '{"instruction": "one"}\n{"instruction": "two"\n'),
     lambda p: load_instructions(str(p), "generator.instructions"), "generator.instructions", "line 2 is not valid JSON"),
    ("instructions jsonl object without field", write("i.jsonl", '{"instruction": "one"}\n{"prompt": "two"}\n'),
     lambda p: load_instructions(str(p), "generator.instructions"), "generator.instructions", "line 2 is neither"),
    ("instructions parquet not parquet", write("i.parquet", "one\ntwo\n"), lambda p: load_instructions(str(p), "steering.instructions"),
     "steering.instructions", "cannot be read as Parquet"),
    ("instructions parquet without column", write("i.parquet", pd.DataFrame({"prompt": ["one"]})),
     lambda p: load_instructions(str(p), "steering.instructions"), "steering.instructions", "no `instruction` column"),
    ("instructions txt latin-1", write("i.txt", "one\ncafé\n".encode("latin-1")),
     lambda p: load_instructions(str(p), "steering.instructions"), "steering.instructions", "not UTF-8"),
    ("instructions missing", lambda d: d / "none.jsonl", lambda p: load_instructions(str(p), "steering.instructions"),
     "steering.instructions", "does not exist"),
    ("unlearning questions bad jsonl", write("q.jsonl", '{"question": "q", "choices": ["a","b","c","d"], "answer": 0}\n{oops}\n'),
     unlearning("forget_questions"), "saebench.unlearning.forget_questions", "line 2 is not valid JSON"),
    ("unlearning questions without choices", write("q.json", [{"question": "q", "answer": 0}]),
     unlearning("retain_questions"), "saebench.unlearning.retain_questions", "no `choices` column"),
    ("unlearning questions json not a list", write("q.json", {"question": "q"}), unlearning("forget_questions"),
     "saebench.unlearning.forget_questions", "not a list of objects"),
    ("unlearning questions three choices", write("q.json", [{"question": "q", "choices": ["a", "b", "c"], "answer": 0}]),
     unlearning("forget_questions"), "saebench.unlearning.forget_questions", "row 0 has the choices"),
    ("unlearning questions answer out of range", write("q.json", [{"question": "q", "choices": ["a", "b", "c", "d"], "answer": 4}]),
     unlearning("forget_questions"), "saebench.unlearning.forget_questions", "row 0 has the answer 4"),
    ("unlearning corpus without text", write("c.parquet", pd.DataFrame({"body": ["x"]})), unlearning("forget_corpus"),
     "saebench.unlearning.forget_corpus", "no `text` column"),
    ("unlearning corpus empty", write("c.txt", ""), unlearning("retain_corpus"), "saebench.unlearning.retain_corpus", "is empty"),
    ("sae labels bad csv", write("l.csv", "latent,text\n1,a,b\n"), lambda p: read_labels(p, "methods.sae.labels"),
     "methods.sae.labels", "line 2 has 3 fields"),
    ("sae labels json string", write("l.json", '"just text"'), lambda p: read_labels(p, "methods.sae.labels"),
     "methods.sae.labels", "neither a list of records"),
    ("sae labels latent not a number", write("l.csv", "latent,text\nseven,ocean\n"), lambda p: read_labels(p, "methods.sae.labels"),
     "methods.sae.labels", "row 0 has the latent 'seven'"),
    ("pretrained sae cfg.json bad", sae_folder_with("{architecture: standard}"), lambda p: check_local(str(p), "saes.mine.path"),
     "saes.mine.path", "not valid JSON"),
    ("pretrained sae weights truncated", truncated_sae_folder, lambda p: check_local(str(p), "saes.mine.path"),
     "saes.mine.path", "not a whole safetensors file"),
]


@pytest.mark.parametrize("make, read, key, problem", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_a_malformed_user_file_is_a_config_error_naming_file_key_and_problem(tmp_path, make, read, key, problem):
    path = make(tmp_path)
    with pytest.raises(ConfigError) as raised:  # any other exception type fails the test
        read(path)
    message = str(raised.value)
    assert str(path) in message and key in message and problem in message, message


BLANK_CASES = [
    ("inline name", lambda d: {"source": "inline", "names": ["ocean", "  "]}, "concepts.names: blank concept at item 1"),
    ("names against the data set", lambda d: {"source": "dataset", "names": [""]}, "concepts.names: blank concept at item 0"),
    ("csv cell", lambda d: {"source": "file", "path": str(write("c.csv", "concept,genre\nocean,text\n,code\n")(d))},
     "blank concept at line 3"),
    ("csv whitespace cell", lambda d: {"source": "file", "path": str(write("c.csv", 'concept\nocean\n"   "\n')(d))},
     "blank concept at line 3"),
    ("neuronpedia description", lambda d: {"source": "neuronpedia", "path": str(write(
        "np.json", [{"description": "ocean"}, {"description": " ", "index": 3}])(d))}, "blank concept at item 1"),
]


@pytest.mark.parametrize("spec, message", [case[1:] for case in BLANK_CASES], ids=[case[0] for case in BLANK_CASES])
def test_a_blank_concept_is_refused_with_its_place(tmp_path, spec, message):
    spec = {"names": [], "path": None, "limit": None, "shard_size": 8, **spec(tmp_path)}
    source = DatasetSource({"name": "dataset", "format": "demo", "path": "demo"})
    data_set = source.concepts() if spec["source"] == "dataset" else None
    with pytest.raises(ConfigError, match="blank concept") as raised:
        build_concepts({"concepts": spec, "generator": {"name": "dataset"}}, data_set)
    assert message in str(raised.value)
    if spec["path"]:
        assert spec["path"] in str(raised.value)


def test_a_blank_concept_in_axbench_metadata_is_refused(tmp_path):
    metadata = '{"concept_id": 0, "concept": "ocean"}\n{"concept_id": 1, "concept": ""}\n'
    folder = axbench_folder(tmp_path, metadata=metadata)
    with pytest.raises(ConfigError) as raised:
        DatasetSource({"name": "dataset", "format": "axbench", "path": str(folder)}).concepts()
    assert f"{folder / 'generate/metadata.jsonl'} (from generator.path): blank concept at line 2" in str(raised.value)


def test_the_good_files_still_read(tmp_path):
    """The same helpers read well-formed files as before (the table above is not refusing everything)."""
    folder = axbench_folder(tmp_path / "ax")
    source = DatasetSource({"name": "dataset", "format": "axbench", "path": str(folder)})
    assert source.concepts()["concept"].tolist() == ["ocean", "music"]
    assert len(source.train_data(source.concepts())) == 3
    csv = write("c.csv", "concept,genre\nocean,\n\nmusic,code\n")(tmp_path)
    frame = concepts_from("file")(csv)
    assert frame["concept"].tolist() == ["ocean", "music"] and frame["genre"].tolist() == ["text", "code"]
    assert load_instructions(str(write("i.jsonl", '"one"\n{"instruction": "two"}\n')(tmp_path))) == ["one", "two"]
    labels = read_labels(write("l.json", {"3": "ocean"})(tmp_path))
    assert labels.to_dict("records") == [{"latent": 3, "text": "ocean"}]


@pytest.mark.parametrize("overrides, file, key", [
    (["+sae@saes.topk=trained_topk", "+method@methods.sae=sae", "methods.sae.labels={dir}/labels.csv"],
     "labels.csv", "methods.sae.labels"),
    (["+sae@saes.mine=gemma_scope", "saes.mine.path={dir}/sae"], "sae/cfg.json", "saes.mine.path"),
], ids=["sae labels", "pretrained sae folder"])
def test_the_pre_run_checks_read_the_sae_files(repo_root, tmp_path, overrides, file, key):
    """Files read only by a job (an SAE method's labels, a pretrained SAE folder) are read before any job."""
    from interpflow.config import compose, validate
    from interpflow.preflight import preflight

    (tmp_path / "labels.csv").write_text("latent,text\n3,ocean,extra\n")
    sae_folder_with("{architecture: standard}")(tmp_path)
    cfg = compose(repo_root / "config", ["experiment=tiny", f"results_dir={tmp_path / 'results'}",
                                         *[o.format(dir=tmp_path) for o in overrides]])
    validate(cfg, repo_root / "workflow/schemas/config.schema.yaml")
    with pytest.raises(ConfigError) as raised:
        preflight(cfg)
    assert f"{tmp_path / file} (from {key})" in str(raised.value)
