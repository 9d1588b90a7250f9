"""A hub model's `revision` reaches the download and the pre-run layer check: two snapshots of one model
in a Hugging Face cache (the layout the hub client writes), read offline, as a cluster job reads them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ID = "someone/model"
OLD, NEW = "a" * 40, "b" * 40  # commit hashes; the default branch (refs/main) points at NEW

# prepared once pinned to OLD and once at the default branch; prints what each manifest and layer check gave
SCRIPT = """
import json, sys
from pathlib import Path
from interpflow.models.loading import prepare_model
from interpflow.preflight import hub_layer_count
found = {}
for revision in (sys.argv[2], None):
    out = Path(sys.argv[1]) / str(revision)
    prepare_model({"source": "hub", "id": "someone/model", "revision": revision}, out)
    manifest = json.loads((out / "interpflow_model.json").read_text())
    found[str(revision)] = {"manifest": manifest, "layers": hub_layer_count("someone/model", revision)}
print(json.dumps(found))
"""


def write_cache(cache: Path) -> None:
    model = cache / ("models--" + REPO_ID.replace("/", "--"))
    for commit, layers in ((OLD, 2), (NEW, 6)):
        snapshot = model / "snapshots" / commit
        snapshot.mkdir(parents=True)
        (snapshot / "config.json").write_text(json.dumps({"model_type": "llama", "num_hidden_layers": layers}))
    (model / "refs").mkdir()
    (model / "refs/main").write_text(NEW)


def test_a_revision_pins_the_snapshot_and_the_default_branch_is_the_newest(tmp_path):
    """In a subprocess: the hub client reads its cache location when it is first imported."""
    write_cache(tmp_path / "cache")
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "prepared"), OLD], capture_output=True,
                            text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    pinned, latest = found[OLD], found["None"]
    assert Path(pinned["manifest"]["id"]).name == OLD and pinned["manifest"]["revision"] == OLD
    assert pinned["layers"] == 2
    assert Path(latest["manifest"]["id"]).name == NEW and latest["manifest"]["revision"] is None
    assert latest["layers"] == 6
