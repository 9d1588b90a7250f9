"""Config composition, schema validation and preflight: every bad input stops with one ConfigError
whose message names the problem."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from interpflow.config import check_snakemake_config, compose, run_config, validate
from interpflow.errors import ConfigError
from interpflow.preflight import preflight


@pytest.fixture(scope="module")
def paths(repo_root: Path) -> tuple[Path, Path]:
    return repo_root / "config", repo_root / "workflow" / "schemas" / "config.schema.yaml"


def composed(paths, overrides: list[str], tmp_path: Path | None = None) -> dict:
    config_dir, _ = paths
    extra = [f"results_dir={tmp_path / 'results'}"] if tmp_path is not None else []
    return compose(config_dir, [*overrides, *extra])


def checked(paths, overrides: list[str], tmp_path: Path | None = None) -> dict:
    cfg = composed(paths, overrides, tmp_path)
    validate(cfg, paths[1])
    return cfg


def config_error(paths, overrides: list[str], tmp_path: Path | None = None, run_preflight: bool = False) -> str:
    """The message of the one ConfigError raised by compose + validate (+ preflight)."""
    with pytest.raises(ConfigError) as info:
        cfg = checked(paths, overrides, tmp_path)
        if run_preflight:
            preflight(cfg)
    assert type(info.value) is ConfigError
    return str(info.value)


# --- good configs --------------------------------------------------------------------------


def test_default_config_composes_and_validates(paths, tmp_path, repo_root):
    cfg = checked(paths, [], tmp_path)
    assert cfg["run_name"] == "demo"
    assert list(cfg["models"]) == ["smollm2_135m"]
    assert cfg["models"]["smollm2_135m"]["name"] == "smollm2_135m"  # compose adds the key as the name
    assert cfg["models"]["smollm2_135m"]["source"] == "smollm2_gguf"
    assert set(cfg["methods"]) == {"diffmean", "pca", "lat", "probe", "bow", "prompt"}
    assert all(m["name"] == key for key, m in cfg["methods"].items())
    assert cfg["generator"]["name"] == "dataset" and cfg["judge"]["name"] == "offline"
    concepts = preflight(cfg)
    assert list(concepts.columns) == ["concept_id", "concept", "genre", "shard", "source", "ref"]
    demo = sorted((repo_root / "src" / "interpflow" / "data" / "demo" / "concepts").glob("*.json"))
    assert len(concepts) == len(demo) > 0  # the shipped demo set
    size = cfg["concepts"]["shard_size"]
    assert concepts["shard"].tolist() == [f"s{i // size:04d}" for i in range(len(demo))]


def test_demo_two_models_has_two_models(paths, tmp_path):
    cfg = checked(paths, ["experiment=demo_two_models"], tmp_path)
    assert set(cfg["models"]) == {"smollm2_135m", "gemma3_270m"}
    assert cfg["models"]["gemma3_270m"]["source"] == "gemma3_gguf"
    assert cfg["models"]["gemma3_270m"]["name"] == "gemma3_270m"
    assert cfg["run_name"] == "demo_two_models"


def test_overrides_apply(paths, tmp_path):
    default = checked(paths, [], tmp_path)
    changed = checked(paths, ["steering.max_new_tokens=5", "models.smollm2_135m.layers=[3,7]"], tmp_path)
    assert default["steering"]["max_new_tokens"] != 5
    assert changed["steering"]["max_new_tokens"] == 5
    assert changed["models"]["smollm2_135m"]["layers"] == [3, 7]
    # nothing else moved
    assert {k: v for k, v in changed["steering"].items() if k != "max_new_tokens"} == {
        k: v for k, v in default["steering"].items() if k != "max_new_tokens"
    }


def test_run_config_round_trips(paths, tmp_path):
    import yaml

    cfg = checked(paths, [], tmp_path)
    target = tmp_path / "out" / "config.yaml"
    run_config(cfg, str(target))
    assert yaml.safe_load(target.read_text()) == cfg


def test_snakemake_config_keys_other_than_overrides_stop_the_run():
    check_snakemake_config({"overrides": ["experiment=tiny"]})
    with pytest.raises(ConfigError, match=r"\['results_dir', 'run_name'\].*overrides="):
        check_snakemake_config({"overrides": [], "run_name": "mine", "results_dir": "/data"})


# --- schema failures -----------------------------------------------------------------------


def test_schema_failure_names_key_and_allowed_values(paths):
    message = config_error(paths, ["judge.name=nope"])
    assert "judge.name" in message
    assert "nope" in message
    assert "offline" in message and "openai" in message
    assert len(message.splitlines()) == 2  # a heading, then one problem on one line


def test_negative_temperature_is_rejected(paths):
    message = config_error(paths, ["steering.temperature=-1"])
    assert "steering.temperature" in message
    assert "it must be a number >= 0" in message


def test_layer_must_be_non_negative(paths):
    message = config_error(paths, ["models.smollm2_135m.layers=[-1]"])
    assert "models.smollm2_135m.layers[0] is -1" in message


def test_unknown_override_key_is_a_config_error(paths):
    message = config_error(paths, ["no_such_key=1"])
    assert "no_such_key" in message


# --- semantic checks -----------------------------------------------------------------------


def test_unknown_method_lists_known_methods(paths):
    message = config_error(paths, ["+methods.nope.name=nope"])
    assert "'nope'" in message
    for known in ("diffmean", "lat", "pca", "probe", "prompt"):
        assert known in message


def test_layer_outside_model_names_block_count(paths, tmp_path):
    cfg = checked(paths, ["models.smollm2_135m.layers=[40]"], tmp_path)  # the schema cannot know
    with pytest.raises(ConfigError) as info:
        preflight(cfg)
    message = str(info.value)
    assert "models.smollm2_135m.layers" in message
    assert "[40]" in message
    assert "30 decoder blocks" in message
    assert "0..29" in message


def test_last_valid_layer_passes_preflight(paths, tmp_path):
    cfg = checked(paths, ["models.smollm2_135m.layers=[0,29]"], tmp_path)
    preflight(cfg)


def test_tiny_model_layer_count_comes_from_its_config(paths, tmp_path):
    cfg = checked(paths, ["experiment=tiny", "models.tiny_llama.layers=[4]"], tmp_path)
    with pytest.raises(ConfigError, match="4 decoder blocks"):
        preflight(cfg)


def test_empty_inline_concept_list(paths):
    message = config_error(paths, ["concepts.source=inline", "concepts.names=[]"])
    assert "concepts.names is empty" in message


def test_missing_concept_file(paths, tmp_path):
    message = config_error(
        paths, ["concepts.source=file", "concepts.path=/nonexistent.txt"], tmp_path, run_preflight=True
    )
    assert "/nonexistent.txt" in message
    assert "does not exist" in message


def test_concept_file_source_without_path(paths):
    message = config_error(paths, ["concepts.source=file"])
    assert "concepts.path is not set" in message


def test_axbench_import_without_data_dir(paths):
    message = config_error(paths, ["experiment=axbench_import"])
    assert "data_dir" in message
    assert "generator.path" in message


def test_axbench_import_with_missing_folder(paths, tmp_path):
    message = config_error(
        paths, ["experiment=axbench_import", f"data_dir={tmp_path / 'nowhere'}"], tmp_path, run_preflight=True
    )
    assert "nowhere" in message and "not a folder" in message


def write_axbench(folder: Path, positives_in_train: dict[int, bool], negative_genre: str = "text") -> None:
    """A minimal AxBench-format folder with concepts 0 (ocean) and 1 (music)."""
    names = {0: "references to the ocean", 1: "musical instruments"}
    (folder / "generate").mkdir(parents=True)
    (folder / "inference").mkdir(parents=True)
    (folder / "generate" / "metadata.jsonl").write_text(
        "\n".join(
            json.dumps({"concept_id": cid, "concept": name, "concept_genres_map": {name: ["text"]}})
            for cid, name in names.items()
        )
        + "\n"
    )
    train_rows, eval_rows = [], []
    for cid in names:
        if positives_in_train[cid]:
            train_rows.append({"concept_id": cid, "input": "q", "output": f"positive {cid}",
                               "category": "positive", "concept_genre": "text"})
        eval_rows.append({"concept_id": cid, "input": "q", "output": f"eval positive {cid}",
                          "category": "positive", "concept_genre": "text"})
        eval_rows.append({"concept_id": cid, "input": "q", "output": f"hard {cid}",
                          "category": "hard negative", "concept_genre": "text"})
    train_rows.append({"concept_id": -1, "input": "q", "output": "shared negative",
                       "category": "negative", "concept_genre": negative_genre})
    pd.DataFrame(train_rows).to_parquet(folder / "generate" / "train_data.parquet")
    pd.DataFrame(eval_rows).to_parquet(folder / "inference" / "latent_eval_data.parquet")


def test_axbench_folder_reads(paths, tmp_path):
    data = tmp_path / "axbench"
    write_axbench(data, {0: True, 1: True})
    cfg = checked(paths, ["experiment=axbench_import", f"data_dir={data}"], tmp_path)
    assert cfg["generator"]["path"] == str(data)  # ${data_dir} resolved
    concepts = preflight(cfg)
    assert concepts["concept"].tolist() == ["references to the ocean", "musical instruments"]
    assert concepts["concept_id"].tolist() == [0, 1]


def test_concept_without_positives(paths, tmp_path):
    data = tmp_path / "axbench"
    write_axbench(data, {0: True, 1: False})
    message = config_error(paths, ["experiment=axbench_import", f"data_dir={data}"], tmp_path, run_preflight=True)
    assert "no positive training examples" in message
    assert "musical instruments" in message
    assert "references to the ocean" not in message


def test_negatives_of_no_concepts_genre_stop_in_preflight(paths, tmp_path):
    data = tmp_path / "axbench"
    write_axbench(data, {0: True, 1: True}, negative_genre="code")
    message = config_error(paths, ["experiment=axbench_import", f"data_dir={data}"], tmp_path, run_preflight=True)
    assert "no negative training examples" in message and "musical instruments" in message


def test_too_few_steering_instructions_stop_in_preflight(paths, tmp_path):
    message = config_error(paths, ["experiment=tiny", "steering.instructions_per_concept=100000"], tmp_path,
                           run_preflight=True)
    assert "instructions_per_concept is 100000" in message


def test_a_hub_models_layers_are_checked_from_its_config(paths, tmp_path):
    from transformers import LlamaConfig

    folder = tmp_path / "hub_model"
    LlamaConfig(num_hidden_layers=3, hidden_size=64, intermediate_size=128, num_attention_heads=4).save_pretrained(folder)
    message = config_error(paths, ["experiment=tiny", "models.tiny_llama.source=hub", f"models.tiny_llama.id={folder}",
                                   "models.tiny_llama.layers=[5]"], tmp_path, run_preflight=True)
    assert "3 decoder blocks" in message


def test_missing_api_key_names_the_variable(paths, tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    overrides = ["generator=openai", "concepts.source=inline", "concepts.names=[rivers]"]
    cfg = checked(paths, overrides, tmp_path)
    assert cfg["generator"]["name"] == "openai"  # the command line wins over the experiment's default
    with pytest.raises(ConfigError) as info:
        preflight(cfg)
    assert "OPENAI_API_KEY" in str(info.value)


def test_api_key_present_passes_preflight(paths, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    cfg = checked(paths, ["generator=openai", "concepts.source=inline", "concepts.names=[rivers,lakes]"], tmp_path)
    concepts = preflight(cfg)  # no request is sent: generated sources check only their key here
    assert concepts["concept"].tolist() == ["rivers", "lakes"]


def test_dataset_concepts_with_openai_generator(paths, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    message = config_error(paths, ["generator=openai"], tmp_path, run_preflight=True)
    assert "concepts.source is 'dataset'" in message


def test_asking_genres_needs_a_generator_model(paths, tmp_path):
    cfg = composed(paths, ["experiment=tiny", "concepts.genre=ask"], tmp_path)
    with pytest.raises(ConfigError, match="concepts.genre = ask needs a generator model"):
        preflight(cfg)


def test_tpp_with_two_concepts_and_saebench_without_saes_stop_in_preflight(paths, tmp_path):
    message = config_error(paths, ["experiment=tiny_full", "saebench.evals=[core,tpp]"], tmp_path, run_preflight=True)
    assert "tpp" in message and "three concepts" in message and "this run has 2" in message
    message = config_error(paths, ["experiment=tiny", "saebench.evals=[core]"], tmp_path, run_preflight=True)
    assert "`saes` is empty" in message


# experiments that need something a user supplies: a data folder, an OpenAI-compatible endpoint and key
NEEDS_USER_INPUT = {"axbench_import", "scale_16k", "tiny_llm_server"}


@pytest.mark.parametrize("experiment", sorted(p.stem for p in (Path(__file__).parents[2] / "config" / "experiment").glob("*.yaml")
                                              if p.stem not in NEEDS_USER_INPUT))
def test_every_shipped_experiment_passes_preflight(paths, tmp_path, experiment):
    preflight(checked(paths, [f"experiment={experiment}"], tmp_path))


def test_autointerp_without_its_api_key_stops_in_preflight(paths, tmp_path, monkeypatch):
    monkeypatch.delenv("INTERPFLOW_NO_SUCH_KEY", raising=False)
    message = config_error(paths, ["experiment=saebench_tiny", "saebench.evals=[autointerp]",
                                   "saebench.autointerp.llm.api_key_env=INTERPFLOW_NO_SUCH_KEY"], tmp_path, run_preflight=True)
    assert "INTERPFLOW_NO_SUCH_KEY" in message and "saebench.autointerp.llm" in message


def test_a_misspelt_or_mistyped_method_setting_stops_composition(paths):
    message = config_error(paths, ["experiment=tiny", "+methods.probe.lrr=0.02"])
    assert "methods.probe.lrr is not a setting" in message and "lr, name" in message
    message = config_error(paths, ["experiment=tiny", "methods.probe.lr=fast"])
    assert "methods.probe.lr is 'fast'; it must be a number > 0" in message


def test_an_api_judge_without_its_key_stops_in_preflight(paths, tmp_path, monkeypatch):
    monkeypatch.delenv("INTERPFLOW_NO_SUCH_KEY", raising=False)
    message = config_error(paths, ["experiment=tiny", "judge=openai", "judge.api_key_env=INTERPFLOW_NO_SUCH_KEY"], tmp_path,
                           run_preflight=True)
    assert "INTERPFLOW_NO_SUCH_KEY" in message and "judge.api_key_env" in message


def test_a_method_name_that_is_not_an_identifier_is_refused(paths):
    message = config_error(paths, ["experiment=tiny", "+methods.bad$x={name: diffmean}"])
    assert "methods has the key 'bad$x'" in message
