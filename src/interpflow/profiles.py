"""`interpflow install-profile slurm`: install one of the repository's Snakemake profiles
(profiles/<name>, which stay the source of truth) where Snakemake looks profile names up, so that
`snakemake --profile slurm` works by name from the repository root.

Snakemake resolves a profile name in the current folder, then in the user's config folder, then
in the site's: platformdirs' `AppDirs("snakemake", "snakemake")`, on Linux
`$XDG_CONFIG_HOME/snakemake` (`~/.config/snakemake` when XDG_CONFIG_HOME is unset or empty), then
`/etc/xdg/snakemake`. The profiles hold no paths (the Snakefile is found in the folder Snakemake
runs in), so a copy works wherever it lives.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

from interpflow.errors import ConfigError

PROFILES = Path(__file__).resolve().parents[2] / "profiles"

# option -> the default-resources key it fills; profiles/slurm has each as a commented-out line
FILLED_RESOURCES = {"account": "slurm_account", "partition": "slurm_partition"}
# SLURM account and partition names (a comma separates several, as sbatch takes them)
SLURM_NAME = re.compile(r"[A-Za-z0-9_.\-]+(,[A-Za-z0-9_.\-]+)*")


def snakemake_profile_folder() -> Path:
    """The user's folder in which Snakemake finds a profile by name (the same lookup as Snakemake's
    `get_appdirs().user_config_dir`; platformdirs comes with Snakemake)."""
    from platformdirs import user_config_dir

    return Path(user_config_dir("snakemake", "snakemake"))


def install_profile(name: str, /, account: str | None = None, partition: str | None = None, dest: str | None = None,
                    force: bool = False) -> Path:
    """Copy the project's Snakemake profile `name` (profiles/<name>) into the folder where Snakemake
    finds profiles by name, so `snakemake --profile <name>` works. --account and --partition fill in
    the profile's `slurm_account` and `slurm_partition` default resources; --dest installs under
    another folder (default: the user's Snakemake config folder, ~/.config/snakemake); an existing
    profile of that name is replaced only with --force (or after a yes when asked at a terminal)."""
    source = PROFILES / name
    if not source.is_dir():
        known = sorted(p.name for p in PROFILES.iterdir() if p.is_dir()) if PROFILES.is_dir() else []
        raise ConfigError(f"no profile {name!r} in {PROFILES}; the project's profiles: {', '.join(known) or 'none'}")
    fills = {FILLED_RESOURCES[option]: value for option, value in (("account", account), ("partition", partition))
             if value is not None}
    for key, value in fills.items():
        if not SLURM_NAME.fullmatch(value):
            raise ConfigError(f"{key} {value!r} is not a SLURM name: use letters, digits, '_', '.', '-' "
                              "(several separated by commas)")
    configs = _filled_configs(source, fills)

    folder = Path(dest).expanduser().resolve() if dest else snakemake_profile_folder()
    target = folder / name
    if target.exists() and not _may_replace(target, force):
        raise ConfigError(f"{target} already exists (your own profile, or one installed before); nothing was changed. "
                          "Replace it with `--force`, or install elsewhere with `--dest <folder>`")
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target)
    elif target.exists() or target.is_symlink():
        target.unlink()
    shutil.copytree(source, target)
    for path, text in configs.items():
        (target / path.name).write_text(text)
    print(f"installed {source} as {target}{''.join(f'; {key}: {value}' for key, value in fills.items())}")
    if folder == snakemake_profile_folder().resolve() or folder == Path("/etc/xdg/snakemake"):
        print(f"run `snakemake --profile {name}` from the repository root")
    else:
        print(f"Snakemake finds a profile by name only in {snakemake_profile_folder()} or /etc/xdg/snakemake: "
              f"run `snakemake --profile {target}`")
    return target


def _filled_configs(source: Path, fills: dict[str, str]) -> dict[Path, str]:
    """The profile's YAML files, each commented-out `# <key>: ...` line of `fills` made
    `<key>: "'<value>'"` with its comment kept. The value is quoted for Python too: Snakemake
    evaluates resource strings, and a partition named like a builtin (`all`, `max`) would otherwise
    not stay a string."""
    configs, found = {}, set()
    for path in sorted(source.glob("*.yaml")):
        text = path.read_text()
        for key, value in fills.items():
            line = re.compile(rf"^(?P<indent>[ \t]*)#[ \t]*{key}:[ \t]*\S+(?P<rest>.*)$", flags=re.M)
            text, count = line.subn(lambda m: f"{m['indent']}{key}: \"'{value}'\"{m['rest']}", text, count=1)
            found |= {key} if count else set()
        configs[path] = text
    missing = [key for key in fills if key not in found]
    if missing:
        raise ConfigError(f"profile {source.name!r} has no commented-out `# {missing[0]}: ...` line to fill in: "
                          "--account and --partition apply to the slurm profile")
    return configs


def _may_replace(target: Path, force: bool) -> bool:
    if force:
        return True
    if not sys.stdin.isatty():
        return False
    answer = input(f"{target} already exists. Replace it with the project's profile? [y/N] ")
    return answer.strip().lower() in ("y", "yes")
