"""SAE and SAE-A: our SAE format, the TopK trainer, sae_lens conversion, the sae stage, latent
choice and detection on planted activations, and clamping an SAE latent in a model."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
import yaml
from safetensors import safe_open

from interpflow.artifacts import read_tensors, write_tensors
from interpflow.errors import ConfigError
from interpflow.methods.data import ConceptData, EvalData
from interpflow.methods.sae import CHOICES, SAE
from interpflow.methods.sae_a import SAEA
from interpflow.metrics.detection import roc_auc
from interpflow.sae.format import decode, encode, firing_counts, fraction_of_variance_explained
from interpflow.sae.latents import column_auc, latent_artifact
from interpflow.sae.stage import sae as sae_stage
from interpflow.sae.topk import TopKConfig, train_topk


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def config(repo_root, group: str, name: str) -> dict:
    return yaml.safe_load((repo_root / "config" / group / f"{name}.yaml").read_text())


# --- the TopK trainer --------------------------------------------------------------------------

D_SMALL, N_ATOMS = 64, 32


def planted_dictionary(seed: int = 0, n_tokens: int = 8192):
    """Tokens = sparse non-negative combinations (about 3 of 32) of known unit atoms, plus an offset."""
    g = torch.Generator().manual_seed(seed)
    atoms = torch.randn(N_ATOMS, D_SMALL, generator=g)
    atoms = atoms / atoms.norm(dim=1, keepdim=True)
    active = torch.rand(n_tokens, N_ATOMS, generator=g) < 3 / N_ATOMS
    codes = active * (1 + 4 * torch.rand(n_tokens, N_ATOMS, generator=g))
    offset = 2 * torch.randn(D_SMALL, generator=g)
    return codes @ atoms + offset + 0.05 * torch.randn(n_tokens, D_SMALL, generator=g), atoms


def small_topk_cfg(repo_root, **overrides) -> TopKConfig:
    """The shipped config with a dictionary sized for the planted data."""
    cfg = {**config(repo_root, "sae", "trained_topk"), "n_latents": 128, "k": 4, "epochs": 5, **overrides}
    return TopKConfig.from_dict(cfg)


def matched_atoms(sae: dict, atoms: torch.Tensor) -> float:
    """Fraction of atoms with a decoder row at cosine > 0.9 (rows are unit norm)."""
    return float(((atoms @ sae["W_dec"].T).max(dim=1).values > 0.9).float().mean())


def test_topk_recovers_planted_atoms(repo_root):
    x, atoms = planted_dictionary()
    sae = train_topk(x, small_topk_cfg(repo_root))
    assert set(sae) == {"W_enc", "b_enc", "W_dec", "b_dec", "threshold", "k"}
    torch.testing.assert_close(sae["W_dec"].norm(dim=1), torch.ones(128))
    assert matched_atoms(sae, atoms) >= 0.85
    assert fraction_of_variance_explained(sae, x) > 0.8


def test_untrained_topk_does_not_recover_atoms(repo_root):
    """The check has teeth: the initialised SAE (no steps) matches almost no atom."""
    x, atoms = planted_dictionary()
    sae = train_topk(x, small_topk_cfg(repo_root, epochs=0))
    assert matched_atoms(sae, atoms) < 0.2
    assert fraction_of_variance_explained(sae, x) < 0.5


def test_topk_is_seeded(repo_root):
    x, _ = planted_dictionary(n_tokens=2048)
    a = train_topk(x, small_topk_cfg(repo_root, epochs=1))
    b = train_topk(x, small_topk_cfg(repo_root, epochs=1))
    c = train_topk(x, small_topk_cfg(repo_root, epochs=1, seed=1))
    assert all(torch.equal(a[key], b[key]) for key in a)
    assert not torch.equal(a["W_dec"], c["W_dec"])


def test_topk_export_keeps_raw_units(repo_root):
    """Training divides inputs by a scale; the exported SAE reconstructs raw activations the same."""
    x, _ = planted_dictionary(n_tokens=2048)
    sae = train_topk(x, small_topk_cfg(repo_root, epochs=2))
    sae_big = train_topk(100 * x, small_topk_cfg(repo_root, epochs=2))
    torch.testing.assert_close(sae_big["W_dec"], sae["W_dec"], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(decode(sae_big, encode(sae_big, 100 * x)), 100 * decode(sae, encode(sae, x)),
                               atol=1e-2, rtol=1e-3)


# --- sae_lens conversion -----------------------------------------------------------------------


def randomise(sae_module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in sae_module.named_parameters():
            param.copy_(torch.randn(param.shape, generator=g) * (0.3 if name == "threshold" else 1.0))


def lens_saes():
    from sae_lens import JumpReLUSAE, JumpReLUSAEConfig, StandardSAE, StandardSAEConfig, TopKSAE, TopKSAEConfig

    yield "jumprelu", JumpReLUSAE(JumpReLUSAEConfig(d_in=16, d_sae=48))
    yield "standard, no b_dec on input", StandardSAE(StandardSAEConfig(d_in=16, d_sae=48, apply_b_dec_to_input=False))
    yield "topk, rescaled by decoder norm", TopKSAE(TopKSAEConfig(d_in=16, d_sae=48, k=6, rescale_acts_by_decoder_norm=True))


def test_sae_lens_conversion_matches_sae_lens():
    from interpflow.sae.pretrained import from_sae_lens

    h = 2 * torch.randn(64, 16, generator=torch.Generator().manual_seed(0))
    for seed, (label, lens) in enumerate(lens_saes()):
        randomise(lens, seed)
        ours, meta = from_sae_lens(lens)
        with torch.no_grad():
            z_lens = lens.encode(h)
            h_lens = lens.decode(z_lens)
        z = encode(ours, h)
        assert (z_lens > 0).float().mean() > 0.05, label  # the comparison is not trivially all zeros
        torch.testing.assert_close(z, z_lens, atol=1e-5, rtol=1e-5, msg=label)
        torch.testing.assert_close(decode(ours, z), h_lens, atol=1e-4, rtol=1e-5, msg=label)
        assert meta["architecture"] == label.split(",")[0]


def test_sae_lens_unsupported_normalisation():
    from sae_lens import StandardSAE, StandardSAEConfig

    from interpflow.sae.pretrained import from_sae_lens

    lens = StandardSAE(StandardSAEConfig(d_in=8, d_sae=16, normalize_activations="layer_norm"))
    with pytest.raises(ConfigError, match="layer_norm"):
        from_sae_lens(lens)


def test_pretrained_offline_error(monkeypatch):
    from interpflow.sae.pretrained import load_pretrained

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match="HF_HUB_OFFLINE"):
        load_pretrained("gemma-scope-2b-pt-res-canonical", "layer_20/width_16k/canonical")


def test_a_folder_saved_by_sae_lens_loads_offline_through_the_stage(repo_root, tmp_path, monkeypatch):
    """The pretrained path with `path`: sae_lens's own save_model writes the folder, the sae stage loads it (no hub),
    and our encode/decode of the stage's artifact equal sae_lens's on the same activations, for each architecture."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    h = 2 * torch.randn(512, 16, generator=torch.Generator().manual_seed(5))
    acts = tmp_path / "acts.safetensors"
    write_tensors({"acts": h, "offsets": torch.tensor([0, len(h)])}, acts, metadata={"layer": 3})
    base = {**config(repo_root, "sae", "gemma_scope"), "release": None, "sae_id": None, "summary_tokens": 256}
    for seed, (label, lens) in enumerate(lens_saes()):
        randomise(lens, seed)
        folder = tmp_path / f"saved_{seed}"
        lens.save_model(folder)
        out = tmp_path / f"sae_{seed}.safetensors"
        sae_stage({**base, "path": str(folder)}, [str(acts)], str(out), layer=3)
        ours = read_tensors(out)
        with torch.no_grad():
            z_lens = lens.encode(h)
            h_lens = lens.decode(z_lens)
        assert (z_lens > 0).float().mean() > 0.05, label
        torch.testing.assert_close(encode(ours, h), z_lens, atol=1e-5, rtol=1e-5, msg=label)
        torch.testing.assert_close(decode(ours, encode(ours, h)), h_lens, atol=1e-4, rtol=1e-5, msg=label)
        with safe_open(str(out), "pt") as f:
            assert f.metadata()["path"] == str(folder) and f.metadata()["source"] == "pretrained"
    with pytest.raises(ConfigError, match="cfg.json"):
        sae_stage({**base, "path": str(tmp_path)}, [str(acts)], str(tmp_path / "none.safetensors"), layer=3)


def test_pretrained_sae_id_follows_the_layer():
    from interpflow.sae.pretrained import layer_sae_id

    assert layer_sae_id("layer_{layer}/width_16k/canonical", 9) == "layer_9/width_16k/canonical"
    assert layer_sae_id("layer_20/width_16k/canonical", 9) == "layer_20/width_16k/canonical"


# --- the stage ---------------------------------------------------------------------------------


def test_sae_stage_trains_on_every_shard(repo_root, tmp_path, capsys):
    x, atoms = planted_dictionary(n_tokens=4096)
    shards = []
    for i, part in enumerate(x.split(2048)):
        path = tmp_path / f"s{i}.safetensors"
        write_tensors({"acts": part.half(), "offsets": torch.tensor([0, len(part)])}, path, metadata={"layer": 2})
        shards.append(str(path))
    cfg = {**config(repo_root, "sae", "trained_topk"), "n_latents": 128, "k": 4, "epochs": 10}
    out = tmp_path / "sae.safetensors"
    sae_stage(cfg, shards, str(out))
    sae = read_tensors(out)
    assert sae["W_enc"].shape == (D_SMALL, 128) and sae["W_dec"].shape == (128, D_SMALL)
    with safe_open(str(out), "pt") as f:
        meta = f.metadata()
    assert meta["source"] == "train" and json.loads(meta["config"])["n_latents"] == 128
    assert meta["trained_on_tokens"] == "4096"
    assert float(meta["summary_fve"]) > 0.7
    assert "FVE" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="unknown key"):
        sae_stage({**cfg, "n_latent": 5}, shards, str(tmp_path / "bad.safetensors"))


# --- SAE and SAE-A on planted activations -----------------------------------------------------

D, N_LATENTS, CONCEPT_LATENT, TOKENS = 64, 256, 37, 6


def planted_sae(seed: int = 0, tied: bool = False) -> dict[str, torch.Tensor]:
    """A random SAE in our format with unit decoder rows (encoder = decoder transpose when tied)."""
    g = torch.Generator().manual_seed(seed)
    W_dec = torch.randn(N_LATENTS, D, generator=g)
    W_dec = W_dec / W_dec.norm(dim=1, keepdim=True)
    W_enc = W_dec.T.clone() if tied else W_dec.T + 0.2 * torch.randn(D, N_LATENTS, generator=g) / D**0.5
    return {"W_enc": W_enc, "b_enc": -0.2 * torch.ones(N_LATENTS), "W_dec": W_dec,
            "b_dec": 0.1 * torch.randn(D, generator=g), "threshold": 0.1 * torch.ones(N_LATENTS)}


def planted_examples(sae: dict, n_pos: int, n_neg: int, seed: int):
    """Examples of TOKENS tokens around b_dec; positives carry 3 * W_dec[CONCEPT_LATENT] on two tokens."""
    g = torch.Generator().manual_seed(seed)
    per_example = []
    for i in range(n_pos + n_neg):
        x = sae["b_dec"] + 0.5 * torch.randn(TOKENS, D, generator=g)
        if i < n_pos:
            x[:2] += 3 * sae["W_dec"][CONCEPT_LATENT]
        per_example.append(x)
    return per_example[:n_pos], per_example[n_pos:]


def concept_data(sae: dict, seed: int = 0) -> ConceptData:
    pos_ex, neg_ex = planted_examples(sae, 30, 30, seed)
    data = ConceptData(
        concept_id=0, concept="ocean", genre="text",
        positives=pd.DataFrame({"input": ["q"] * 30, "output": ["a"] * 30, "label": 1}),
        negatives=pd.DataFrame({"input": ["q"] * 30, "output": ["a"] * 30, "label": 0}),
        pos=torch.cat(pos_ex), neg=torch.cat(neg_ex), pos_example=torch.arange(30).repeat_interleave(TOKENS),
    )
    data.sae = sae  # set after construction, in case the dataclass lacks the field
    return data


def eval_data(sae: dict, seed: int = 1) -> EvalData:
    pos_ex, neg_ex = planted_examples(sae, 25, 25, seed)
    examples = pd.DataFrame({"example_id": range(50), "concept_id": 0, "label": [1] * 25 + [0] * 25,
                             "category": ["positive"] * 25 + ["negative"] * 25, "n_tokens": TOKENS})
    return EvalData(examples=examples, acts=torch.cat(pos_ex + neg_ex))


def detection_auroc(method, tensors: dict, data: EvalData) -> float:
    stacked = {k: v[None] for k, v in tensors.items()}
    max_scores, _ = method.score_examples(stacked, data)
    return roc_auc(data.examples["label"], max_scores[:, 0].numpy())


@pytest.mark.parametrize("cls", [SAE, SAEA])
def test_sae_methods_choose_the_concept_latent_and_detect(repo_root, cls):
    sae = planted_sae()
    method = cls(config(repo_root, "method", cls.name))
    tensors = method.train_concept(concept_data(sae))
    assert int(tensors["latent_index"]) == CONCEPT_LATENT
    assert CHOICES[int(tensors["latent_choice"])] == "best_training_auc"  # no ref, no labels: the supervised choice
    assert float(tensors["train_auc"]) > 0.95
    torch.testing.assert_close(tensors["directions"], sae["W_dec"][CONCEPT_LATENT])  # raw decoder row
    # the VectorMethod latent is the SAE's latent
    acts = eval_data(sae).acts
    z = method.score_tokens({k: v[None] for k, v in tensors.items()}, acts)[:, 0]
    torch.testing.assert_close(z, encode(sae, acts)[:, CONCEPT_LATENT])
    assert detection_auroc(method, tensors, eval_data(sae)) >= 0.9


@pytest.mark.parametrize("cls", [SAE, SAEA])
def test_a_random_latent_does_not_detect(repo_root, cls, monkeypatch):
    """Without the AUC ranking (random scores instead) the chosen latent does not detect the concept."""
    random_aucs = lambda sae, *args, **kwargs: torch.rand(sae["W_enc"].shape[1], generator=torch.Generator().manual_seed(3))
    monkeypatch.setattr("interpflow.methods.sae.latent_aucs", random_aucs)
    sae = planted_sae()
    method = cls(config(repo_root, "method", cls.name))
    tensors = method.train_concept(concept_data(sae))
    assert int(tensors["latent_index"]) != CONCEPT_LATENT
    assert detection_auroc(method, tensors, eval_data(sae)) < 0.8


def test_negative_examples_are_pooled_when_known(repo_root):
    """With neg_example the negatives are whole examples (max over their tokens) as for positives."""
    sae = planted_sae()
    data = concept_data(sae)
    data.neg_example = torch.arange(30).repeat_interleave(TOKENS)
    tensors = SAEA(config(repo_root, "method", "sae_a")).train_concept(data)
    assert int(tensors["latent_index"]) == CONCEPT_LATENT


def test_sae_uses_the_labelled_latent(repo_root, tmp_path):
    sae = planted_sae()
    labels = tmp_path / "labels.csv"
    pd.DataFrame({"index": [5, 99, 12], "description": ["python code", "Ocean ", "music"]}).to_csv(labels, index=False)
    method = SAE({**config(repo_root, "method", "sae"), "labels": str(labels)})
    tensors = method.train_concept(concept_data(sae))
    assert int(tensors["latent_index"]) == 99  # the label wins over the AUC ranking
    records = tmp_path / "labels.json"  # a Neuronpedia-style export, matched by embedding similarity
    records.write_text(json.dumps([{"index": "5", "description": "Python source code and functions"},
                                   {"index": "7", "description": "waves, the sea and marine life"},
                                   {"index": "9", "description": "cooking recipes"}]))
    method = SAE({**config(repo_root, "method", "sae"), "labels": str(records)})
    assert method.labelled_latent("the ocean") == 7


def test_sae_uses_the_latent_its_ref_names_on_that_sae(repo_root, tmp_path):
    """A concept's Neuronpedia ref wins when it names this SAE (its Neuronpedia source), and the artifact says so;
    a ref to another SAE is ignored, and a ref past the SAE's width is an error naming it."""
    from interpflow.methods.sae import neuronpedia_latent

    assert neuronpedia_latent("https://www.neuronpedia.org/gemma-2-2b/10-gemmascope-res-16k/14874") == (
        "gemma-2-2b/10-gemmascope-res-16k", 14874)
    assert neuronpedia_latent("neuronpedia:m/5-res/12") == ("m/5-res", 12)
    assert neuronpedia_latent("") is None and neuronpedia_latent("https://example.org/a/b/3") is None
    sae = planted_sae()
    method = SAE(config(repo_root, "method", "sae"))
    data = concept_data(sae)
    data.ref, data.sae_neuronpedia = "https://www.neuronpedia.org/tiny/2-res/7", "tiny/2-res"
    tensors = method.train_concept(data)
    assert int(tensors["latent_index"]) == 7 and CHOICES[int(tensors["latent_choice"])] == "ref"
    data.sae_neuronpedia = "tiny/3-res"  # the ref is about another SAE: the AUC ranking decides
    tensors = method.train_concept(data)
    assert int(tensors["latent_index"]) == CONCEPT_LATENT and CHOICES[int(tensors["latent_choice"])] == "best_training_auc"
    data.ref, data.sae_neuronpedia = "neuronpedia:tiny/2-res/100000", "tiny/2-res"
    with pytest.raises(ConfigError, match="latent 100000"):
        method.train_concept(data)


def test_pretrained_saes_know_their_neuronpedia_source():
    """Read offline from sae_lens's registry, which ships with the package."""
    from interpflow.sae.pretrained import neuronpedia_id

    assert neuronpedia_id("gemma-scope-2b-pt-res-canonical", "layer_20/width_16k/canonical") == "gemma-2-2b/20-gemmascope-res-16k"
    assert neuronpedia_id("no-such-release", "x") == ""


def test_missing_sae_is_a_config_error(repo_root):
    data = concept_data(planted_sae())
    data.sae = None
    with pytest.raises(ConfigError, match="config group `sae`"):
        SAEA(config(repo_root, "method", "sae_a")).train_concept(data)


def test_column_auc_matches_the_metric():
    g = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 4, (40, 5), generator=g).float()  # many ties
    scores[:, 4] = torch.randn(40, generator=g)
    labels = torch.rand(40, generator=g) < 0.4
    ours = column_auc(scores, labels)
    for j in range(5):
        assert ours[j].item() == pytest.approx(roc_auc(labels.int().numpy(), scores[:, j].numpy()), abs=1e-6)


def test_configs_build(repo_root):
    for cls in (SAE, SAEA):
        cfg = config(repo_root, "method", cls.name)
        assert cfg["name"] == cls.name
        method = cls(cfg)
        assert method.uses_sae and method.needs == "activations" and method.detects and method.steers
    assert config(repo_root, "sae", "gemma_scope")["source"] == "pretrained"
    assert TopKConfig.from_dict(config(repo_root, "sae", "trained_topk")).n_latents == 4096


# --- steering an SAE latent in a model ---------------------------------------------------------


def test_clamping_sets_the_sae_latent(repo_root, tiny_model_dir):
    from interpflow.models.hooks import residual_after_block
    from interpflow.models.loading import load_model

    model, tokenizer = load_model(tiny_model_dir, device="cpu")
    layer = 2
    ids = torch.tensor([tokenizer("The sea is calm today.")["input_ids"]] * 2)
    mask = torch.ones_like(ids)
    with torch.no_grad():
        h = residual_after_block(model, layer, ids, mask).float()
    scale = float(h.norm(dim=-1).mean())
    rows = pd.DataFrame({"concept_row": [0, 0], "strength": [0.5 * scale, 2.0 * scale]})
    strength = torch.tensor(rows["strength"].to_numpy(), dtype=torch.float32)
    for tied in (True, False):
        sae = {k: v for k, v in planted_sae(seed=4, tied=tied).items()}
        sae["b_dec"] = h.reshape(-1, D).mean(0)
        # the latent is active at every position (re-encoding reads the clamped value only where it
        # is: where it was off, clamping adds strength * W_dec[i] to a negative pre-activation)
        projection = (h - sae["b_dec"]) @ sae["W_enc"][:, CONCEPT_LATENT]
        sae["b_enc"][CONCEPT_LATENT] = 1 - projection.min()
        tensors = {k: v[None] for k, v in latent_artifact(sae, CONCEPT_LATENT).items()}
        method = SAEA({**config(repo_root, "method", "sae_a"), "intervention": "clamping"})
        with torch.no_grad(), method.steering(tensors, model, layer, rows):
            steered = residual_after_block(model, layer, ids, mask).float()
        # SAE semantics: set latent i to strength, decode, add back the SAE's error
        z = encode(sae, h)
        z_set = z.clone()
        z_set[..., CONCEPT_LATENT] = strength[:, None]
        torch.testing.assert_close(steered, decode(sae, z_set) + (h - decode(sae, z)), atol=1e-4, rtol=1e-4)
        if tied:  # unit decoder row = encoder column: re-encoding reads exactly the strength
            z_after = encode(sae, steered)[..., CONCEPT_LATENT]
            torch.testing.assert_close(z_after, strength[:, None].expand_as(z_after), atol=1e-3, rtol=1e-4)
    # addition moves h by strength * W_dec[i] at every position
    method = SAEA(config(repo_root, "method", "sae_a"))
    with torch.no_grad(), method.steering(tensors, model, layer, rows):
        added = residual_after_block(model, layer, ids, mask).float()
    shift = (strength[:, None, None] * sae["W_dec"][CONCEPT_LATENT]).expand_as(h)
    torch.testing.assert_close(added - h, shift, atol=1e-4, rtol=1e-4)


# --- sae_lens's trainer ---------------------------------------------------------------------------


@pytest.mark.parametrize("architecture, sparsity", [("standard", {"l1_coefficient": 1.0}), ("topk", {"k": 4}),
                                                    ("batchtopk", {"k": 4}), ("jumprelu", {"l0_coefficient": 5.0})])
def test_sae_lens_trains_each_architecture_on_cached_activations(tmp_path, architecture, sparsity):
    """Through the stage with trainer sae_lens: on a planted sparse dictionary the trained SAE explains most of the
    variance with few latents per token; with no training samples (epochs 0) it explains little."""
    x, _ = planted_dictionary(n_tokens=4096)
    acts = tmp_path / "acts.safetensors"
    write_tensors({"acts": x, "offsets": torch.tensor([0, len(x)])}, acts, metadata={"layer": 2})
    cfg = {"source": "train", "trainer": "sae_lens", "architecture": architecture, "n_latents": 128, "lr": 3e-3,
           "lr_end": 3e-4, "batch_size": 256, "epochs": 8, "summary_tokens": 2048, **sparsity}
    out = tmp_path / "sae.safetensors"
    sae_stage(cfg, [str(acts)], str(out))
    sae = read_tensors(out)
    with safe_open(str(out), "pt") as f:
        meta = f.metadata()
    assert meta["trainer"] == "sae_lens" and meta["trained_architecture"] == architecture
    fve = fraction_of_variance_explained(sae, x)
    l0 = float(firing_counts(sae, x).sum()) / len(x)
    # ~3 atoms per token; JumpReLU's thresholds rise slowly from sae_lens's 0.001 start (L0 34 after these 128 steps)
    assert fve > 0.6 and l0 < (48 if architecture == "jumprelu" else 32), (fve, l0)
    sae_stage({**cfg, "epochs": 0.01}, [str(acts)], str(tmp_path / "untrained.safetensors"))
    assert fraction_of_variance_explained(read_tensors(tmp_path / "untrained.safetensors"), x) < fve - 0.2


def test_sae_lens_trainer_config_errors(tmp_path):
    from interpflow.sae.lens_training import check_config

    with pytest.raises(ConfigError, match="needs `k`"):
        check_config({"architecture": "topk"})
    with pytest.raises(ConfigError, match="remove \\['k'\\]"):
        check_config({"architecture": "standard", "l1_coefficient": 1.0, "k": 4})
    with pytest.raises(ConfigError, match="architecture must be one of"):
        check_config({"architecture": "gated"})
