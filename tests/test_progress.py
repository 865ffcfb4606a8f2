from distill.progress import LogProgress


def test_log_progress_prints_at_interval_and_at_the_end():
    lines = []
    p = LogProgress(lines.append, interval=3600)
    t = p.add_task("generating", total=4, tok_s="")
    p.update(t, advance=1, tok_s="10 tok/s")
    assert lines == []  # within the interval: quiet
    p.update(t, advance=3, tok_s="12 tok/s")
    assert len(lines) == 1 and lines[0].startswith("generating: 4/4, 12 tok/s, elapsed")


def test_log_progress_zero_interval_logs_every_update():
    lines = []
    p = LogProgress(lines.append, interval=0)
    t = p.add_task("verifying", total=10)
    for _ in range(3):
        p.update(t, advance=1)
    assert [line.split(",")[0] for line in lines] == ["verifying: 1/10", "verifying: 2/10", "verifying: 3/10"]
    assert "eta" in lines[-1]
