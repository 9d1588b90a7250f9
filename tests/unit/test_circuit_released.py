"""InterpBench's released models: files of the release's format, written here, read back safely."""

import json
import os
import pickle

import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from interpflow.circuits.released import (CONFIG_FILE, EDGES_FILE, META_FILE, WEIGHTS_FILE, load_released, read_config,
                                          released_models)
from interpflow.errors import ConfigError

CASE = "3"
EDGES = [("hook_embed", "blocks.0.attn.hook_result[1]"), ("blocks.0.attn.hook_result[1]", "blocks.1.hook_mlp_out")]


def tiny_model() -> HookedTransformer:
    torch.manual_seed(0)
    cfg = HookedTransformerConfig(n_layers=2, d_model=8, n_ctx=6, d_head=2, n_heads=4, d_mlp=32, d_vocab=7,
                                  d_vocab_out=5, act_fn="relu", normalization_type=None)
    return HookedTransformer(cfg)


def write_case(release_dir, model, config_object, protocol=pickle.DEFAULT_PROTOCOL):
    """A case folder as InterpBench's training script writes it (iit_train.py) and the hub holds it."""
    folder = release_dir / CASE
    folder.mkdir(parents=True)
    torch.save(model.state_dict(), folder / WEIGHTS_FILE)
    with open(folder / CONFIG_FILE, "wb") as f:
        pickle.dump(config_object, f, protocol=protocol)
    (folder / META_FILE).write_text(json.dumps({"lr": 0.001, "epochs": 2000, "batch_size": 256}))
    with open(folder / EDGES_FILE, "wb") as f:
        pickle.dump(EDGES, f, protocol=protocol)


@pytest.mark.parametrize("as_dict", [True, False], ids=["config-dict", "config-object"])
@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
def test_released_model_matches_the_original(tmp_path, as_dict, protocol):
    original = tiny_model()
    write_case(tmp_path, original, original.cfg.to_dict() if as_dict else original.cfg, protocol)
    released = released_models({"released": {"dir": str(tmp_path), "cases": [CASE]}})[CASE]
    tokens = torch.tensor([[0, 3, 1, 6, 2, 4], [5, 5, 0, 1, 2, 3]])
    with torch.no_grad():
        assert torch.equal(released.model(tokens), original(tokens))
    assert released.model.cfg.n_heads == 4 and released.model.cfg.d_vocab_out == 5
    assert released.training_args["epochs"] == 2000
    assert released.edges == EDGES


class RunsCode:
    """A pickle that calls a function when loaded (here the harmless os.getcwd; it could be os.system)."""

    def __reduce__(self):
        return (os.getcwd, ())


def test_a_config_pickle_that_would_run_code_is_refused(tmp_path):
    original = tiny_model()
    write_case(tmp_path, original, {**original.cfg.to_dict(), "n_layers": RunsCode()})
    with pytest.raises(ConfigError, match=r"refusing to load posix\.getcwd|refusing to load nt\.getcwd"):
        load_released(tmp_path, CASE)


def test_a_state_dict_that_would_run_code_is_refused(tmp_path):
    original = tiny_model()
    write_case(tmp_path, original, original.cfg.to_dict())
    torch.save({"embed.W_E": RunsCode()}, tmp_path / CASE / WEIGHTS_FILE)
    with pytest.raises(ConfigError, match="not a plain state dict"):
        load_released(tmp_path, CASE)


def test_an_edges_pickle_that_would_run_code_is_refused(tmp_path):
    write_case(tmp_path, tiny_model(), tiny_model().cfg.to_dict())
    (tmp_path / CASE / EDGES_FILE).write_bytes(pickle.dumps([RunsCode()]))
    with pytest.raises(ConfigError, match=r"edges\.pkl: refusing to load"):
        load_released(tmp_path, CASE)


def test_config_fields_read_without_the_config_class_running(tmp_path):
    original = tiny_model()
    write_case(tmp_path, original, original.cfg)
    fields = read_config(tmp_path / CASE / CONFIG_FILE)
    assert fields["d_mlp"] == 32 and fields["dtype"] is torch.float32


def test_a_config_object_pickled_by_transformer_lens_2_is_read(tmp_path):
    """InterpBench's models were written with TransformerLens < 3, whose config class lived elsewhere."""
    original = tiny_model()
    write_case(tmp_path, original, {})
    written = pickle.dumps(original.cfg, protocol=0)
    assert b"transformer_lens.config.hooked_transformer_config\nHookedTransformerConfig" in written
    older = written.replace(b"transformer_lens.config.hooked_transformer_config\n",
                            b"transformer_lens.HookedTransformerConfig\n")
    (tmp_path / CASE / CONFIG_FILE).write_bytes(older)
    assert load_released(tmp_path, CASE).model.cfg.d_mlp == 32


def test_nothing_is_read_without_the_opt_in(tmp_path):
    write_case(tmp_path, tiny_model(), RunsCode())  # would be refused if it were read at all
    assert released_models({}) == {}
    assert released_models({"released": None}) == {}


def test_a_missing_case_names_the_folder_and_the_download(tmp_path):
    with pytest.raises(ConfigError, match=r"no ll_model\.pth.*huggingface-cli download cybershiptrooper/InterpBench"):
        released_models({"released": {"dir": str(tmp_path), "cases": ["11"]}})


def test_a_malformed_opt_in_is_refused():
    with pytest.raises(ConfigError, match="circuits.released"):
        released_models({"released": {"dir": "somewhere"}})
