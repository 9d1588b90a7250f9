"""Write the measured-figures tables of the docs from runs' own outputs, with the machine and the date.

    python benchmarks/figures_tables.py results/demo results/saebench results/interpbench \
        --out docs/figures/measured.md

For each run folder (results/<run_name>): its leaderboards as the run wrote them (leaderboard.md,
saebench/leaderboard.md, circuits/leaderboard.md, whichever exist) and where its time went (the
tables of `interpflow wall-times`, from the Snakemake benchmark file of every job). Run it on the
machine the runs ran on: the header names this machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
from datetime import datetime, timezone
from pathlib import Path

from interpflow.report.wall_times import _markdown, per_method, per_sae, read_benchmarks, shared_stages

LEADERBOARDS = ["leaderboard.md", "saebench/leaderboard.md", "circuits/leaderboard.md"]


def machine() -> str:
    """CPU model, logical cores and memory of this machine, from /proc where there is one."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = re.findall(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), flags=re.MULTILINE)
        cpu = names[0].strip() if names else cpu
    memory = ""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        total_kb = int(re.search(r"^MemTotal:\s*(\d+)", meminfo.read_text(), flags=re.MULTILINE).group(1))
        memory = f", {total_kb / 2**20:.0f} GiB memory"
    return f"{cpu}, {os.cpu_count()} logical cores{memory}, {platform.system()} {platform.release()}"


def _demoted(markdown: str, levels: int = 2) -> str:
    """A run's own markdown under this page's headings: each `#` heading `levels` deeper."""
    return re.sub(r"^(#+) ", lambda m: "#" * (len(m.group(1)) + levels) + " ", markdown, flags=re.MULTILINE)


def run_section(run_dir: Path) -> str:
    jobs = read_benchmarks(run_dir)
    finished = max(path.stat().st_mtime for path in (run_dir / "benchmarks").rglob("*.tsv"))
    day = datetime.fromtimestamp(finished, tz=timezone.utc).strftime("%Y-%m-%d")
    parts = [f"## `{run_dir.name}`", "",
             f"`{run_dir}`: {len(jobs)} jobs, the last finished on {day} (UTC); "
             f"{jobs['seconds'].sum():.0f} s summed over jobs."]
    for name in LEADERBOARDS:
        path = run_dir / name
        if path.exists():
            parts += ["", f"### `{name}`", "", _demoted(path.read_text().strip())]
    parts += ["", "### Where the time went", "", "Seconds per method and stage, summed over shards:", "",
              _markdown(per_method(jobs)), "", "Shared stages:", "", _markdown(shared_stages(jobs))]
    saes = per_sae(jobs)
    if not saes.empty:
        parts += ["", "Per SAE (training or loading it, and each SAEBench evaluation):", "", _markdown(saes)]
    return "\n".join(parts)


def figures_page(run_dirs: list[Path]) -> str:
    today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    header = ["# Measured figures", "",
              f"Written by `python benchmarks/figures_tables.py` on {today} on {machine()}, from the runs' own "
              "outputs: nothing here is typed by hand."]
    return "\n".join([*header, *("\n" + run_section(path) for path in run_dirs)]) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dirs", nargs="+", type=Path, help="results/<run_name> folders of finished runs")
    parser.add_argument("--out", type=Path, help="write the page here (default: print it)")
    args = parser.parse_args()
    page = figures_page(args.run_dirs)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(page)
    else:
        print(page, end="")


if __name__ == "__main__":
    main()
