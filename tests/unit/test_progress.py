"""Progress lines: done/total, share, rate and ETA, no more often than asked."""

from interpflow.progress import Progress


def test_lines_report_done_total_rate_and_eta(capsys):
    progress = Progress("generation", 8, "prompts", every_s=0.0)
    progress.update(2)
    line = capsys.readouterr().out.strip()
    assert line.startswith("generation: 2/8 prompts (25%), ") and "prompts/s" in line and "ETA" in line


def test_quiet_between_intervals(capsys):
    progress = Progress("training", 100, "concepts", every_s=3600.0)
    for _ in range(100):
        progress.update()
    assert capsys.readouterr().out == ""
    assert progress.line().startswith("training: 100/100 concepts (100%)")
