"""Compose the Hydra config tree, validate it, and check it against what exists.

Everything here runs when the Snakefile is parsed, so a bad config stops before any model work.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from interpflow.errors import ConfigError
from interpflow.ranges import problems


def compose(config_dir: str | Path, overrides: list[str] | None = None) -> dict:
    """The config tree at `config_dir` composed with Hydra overrides, as a plain dict."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        with initialize_config_dir(config_dir=str(Path(config_dir).resolve()), version_base=None):
            cfg = hydra_compose(config_name="config", overrides=list(overrides or []))
        composed = OmegaConf.to_container(cfg, resolve=True)
    except (HydraException, OmegaConfBaseException) as err:
        raise ConfigError(f"could not compose the config with overrides {overrides}: {err}") from None
    for group in ("models", "saes"):
        for key, entry in (composed.get(group) or {}).items():
            entry["name"] = key
    check_method_settings(composed.get("methods") or {})
    composed["methods"] = expand_sae_methods(composed.get("methods") or {}, composed.get("saes") or {})
    return composed


def check_method_settings(methods: dict) -> None:
    """Hydra lets `+methods.probe.lrr=0.02` through and `methods.probe.epochs=-3` is a number: each
    method's settings are checked against the ranges its class declares (`settings`), before any
    SAE method is expanded, so messages use the keys the user wrote."""
    from interpflow.methods import method_class

    lines = []
    for key, method in methods.items():
        if "name" in method:  # a missing name is the schema's to report
            lines += problems(method, method_class(method["name"]).settings_schema(), ("methods", key))
    if lines:
        raise ConfigError("bad method settings (each method's keys and defaults: config/method/<name>.yaml; their "
                          "allowed values: `settings` in src/interpflow/methods/<name>.py):\n"
                          + "\n".join(f"  {line}" for line in lines))


def expand_sae_methods(methods: dict, saes: dict) -> dict:
    """A method that reads an SAE becomes one method per SAE: `sae` with SAEs `topk` and `relu` is
    `sae-topk` and `sae-relu`, each with its `sae` key set. A method whose `sae` is already set
    keeps its name and its SAE."""
    from interpflow.methods import method_class

    expanded = {}
    for key, method in methods.items():
        reads_sae = "name" in method and method_class(method["name"]).uses_sae
        if reads_sae and method.get("sae") is None and saes:
            for sae_name in saes:
                expanded[f"{key}-{sae_name}"] = {**method, "sae": sae_name}
        else:
            expanded[key] = method
    return expanded


def validate(cfg: dict, schema_path: str | Path) -> None:
    """Check `cfg` against the JSON schema, then the facts the schema cannot know."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    lines = problems(cfg, schema)
    if lines:
        raise ConfigError("the config does not match workflow/schemas/config.schema.yaml (its keys and ranges are "
                          "described in config/config.yaml and docs/configuration.md):\n" + "\n".join(f"  {line}" for line in lines))
    _check_semantics(cfg)


def _check_semantics(cfg: dict) -> None:
    from interpflow.methods import method_class

    for key, method in cfg["methods"].items():
        method_class(method["name"])  # unknown names list the known ones
    for key, model in cfg["models"].items():
        if model["source"] == "hub" and not model.get("id"):
            raise ConfigError(f"models.{key}: source 'hub' needs an id (a hub id or a local folder)")
        if model["source"] == "tiny" and "tiny" not in model:
            raise ConfigError(f"models.{key}: source 'tiny' needs a `tiny:` block (arch, n_layers, d_model, n_heads)")
    generator = cfg["generator"]
    if generator["name"] == "dataset" and generator.get("path") in (None, ""):
        raise ConfigError(
            "generator.path is empty: experiment=axbench_import needs data_dir=/path/to/axbench/folder "
            "(e.g. snakemake --config overrides='[\"experiment=axbench_import\",\"data_dir=../shared/axbench/concept10\"]')"
        )
    if cfg["concepts"]["source"] in ("file", "neuronpedia") and not cfg["concepts"].get("path"):
        raise ConfigError(f"concepts.source is {cfg['concepts']['source']!r} but concepts.path is not set")
    if cfg["concepts"]["source"] == "inline" and not cfg["concepts"]["names"]:
        raise ConfigError("concepts.source is 'inline' but concepts.names is empty: list at least one concept")


def run_config(cfg: dict, out: str) -> None:
    """Write the run's composed config as YAML: the provenance of its artifacts. A rule writes it, so
    it changes when a run's config does, not when the workflow is merely parsed (`-n`)."""
    from interpflow.artifacts import write_text

    write_text(yaml.safe_dump(cfg, sort_keys=False), out)


def check_snakemake_config(snakemake_config: dict) -> None:
    """Only `overrides` may come through Snakemake's own config (`--config`, `--configfile`)."""
    ignored = sorted(k for k in snakemake_config if k != "overrides")
    if ignored:
        raise ConfigError(
            f"snakemake config keys {ignored} would be ignored: interpflow composes its config with Hydra. "
            "Pass settings as overrides, e.g. --config overrides='[\"experiment=tiny\",\"steering.factors=[0.5,1.0]\"]', "
            "or put them in an experiment file under config/experiment/"
        )
