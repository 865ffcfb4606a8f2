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


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_plain_lines_for_a_batch_log_phases_tasks_heartbeat():
    """Not a TTY (CI, nohup, Slurm): no carriage-return bars, a plain line when a phase starts
    and ends, every `interval` seconds while something runs, and when a task ends. A task added
    with start=False (generation, before the engine is up) counts elapsed time and ETA from when
    it starts, so the engine's start-up does not skew them."""
    clock, lines = FakeClock(), []
    p = LogProgress(lines.append, interval=20, clock=clock)
    task = p.add_task("generating (prompts)", total=100, start=False, tok_s="")
    with p.phase("starting the vLLM engine (m)"):
        assert lines == ["starting the vLLM engine (m) ..."]
        clock.now += 25
        p.tick()  # the heartbeat thread: a long start-up still shows signs of life
        assert lines[-1] == "starting the vLLM engine (m) ... 25 s"
        p.tick()
        assert len(lines) == 2  # not again within the interval
        clock.now += 5
    assert lines[-1] == "starting the vLLM engine (m): done in 30 s"
    p.start_task(task)
    clock.now += 10
    p.update(task, advance=10, tok_s="100 tok/s")
    assert len(lines) == 3  # within the interval: quiet
    clock.now += 10
    p.update(task, advance=10, tok_s="120 tok/s")
    assert lines[-1] == "generating (prompts): 20/100, 120 tok/s, elapsed 20 s, eta 1 min 20 s"
    clock.now += 30
    p.tick()  # nothing came back for a while: the heartbeat repeats the last state
    assert lines[-1].startswith("generating (prompts): 20/100, 120 tok/s, elapsed 50 s")
    clock.now += 10
    p.update(task, advance=80, tok_s="150 tok/s")
    assert lines[-1] == "generating (prompts): 100/100, 150 tok/s, elapsed 1 min 00 s"
    count = len(lines)
    clock.now += 100
    p.tick()
    p.close()
    assert len(lines) == count  # a finished task prints no more


def test_a_task_that_stops_early_prints_its_last_state_and_a_failed_phase_says_so():
    clock, lines = FakeClock(), []
    p = LogProgress(lines.append, interval=3600, clock=clock)
    task = p.add_task("training (steps)", total=24, completed=12, loss="")  # resumed at step 12
    clock.now += 30
    p.update(task, completed=18, loss="loss 1.2345")
    p.close()
    assert lines == ["training (steps): 18/24, loss 1.2345, elapsed 30 s"]
    try:
        with p.phase("loading the student (m)"):
            clock.now += 2
            raise OSError("no such model")
    except OSError:
        pass
    assert lines[-1] == "loading the student (m): failed after 2.0 s"


def test_eta_of_a_resumed_task_counts_only_this_runs_progress():
    clock, lines = FakeClock(), []
    p = LogProgress(lines.append, interval=0, clock=clock)
    task = p.add_task("training (steps)", total=100, completed=50)
    clock.now += 10
    p.update(task, completed=60)  # 10 steps in 10 s: 40 left, 40 s
    assert lines[-1].endswith("elapsed 10 s, eta 40 s")


def test_stage_progress_off_a_terminal_prints_plain_lines(monkeypatch):
    import io

    from distill import logs, progress

    stream = io.StringIO()  # not a TTY
    monkeypatch.setattr(logs, "_terminal", stream)
    with progress.stage_progress(interval=3600) as (p, log):
        assert progress.current() is p
        log("sealed shard 00000: 4 prompts")
        with progress.phase("loading vLLM"):
            progress.say("a line from deep down")
        t = p.add_task("verifying", total=2)
        p.update(t, advance=2)
    assert progress.current() is None
    out = stream.getvalue().splitlines()
    assert out[0] == "sealed shard 00000: 4 prompts"
    assert out[1:3] == ["loading vLLM ...", "a line from deep down"]
    assert out[3].startswith("loading vLLM: done in")
    assert out[4].startswith("verifying: 2/2, elapsed")
    assert "\r" not in stream.getvalue() and "\x1b" not in stream.getvalue()


def test_phase_and_say_without_a_stage_progress_are_harmless(capsys):
    from distill import progress

    with progress.phase("nothing open"):
        progress.say("still printed")
    assert capsys.readouterr().err == "still printed\n"


def test_training_progress_callback_steps_loss_tokens():
    from types import SimpleNamespace

    from distill.train.logs import ProgressCallback

    clock, lines = FakeClock(), []
    p = LogProgress(lines.append, interval=0, clock=clock)
    cb = ProgressCallback(p)
    state = SimpleNamespace(is_world_process_zero=True, max_steps=4, global_step=0)
    cb.on_train_begin(None, state, None)
    for step in (1, 2):
        state.global_step = step
        clock.now += 5
        cb.on_step_end(None, state, None)
    cb.on_log(None, state, None, logs={"loss": 1.23456, "num_tokens": 1000.0})
    assert "loss 1.2346" in lines[-1] and "tok/s" in lines[-1] and "eta" in lines[-1]
    assert lines[-1].startswith("training (steps): 2/4")
    state.global_step = 4
    cb.on_step_end(None, state, None)
    cb.on_train_end(None, state, None)
    assert lines[-1].startswith("training (steps): 4/4, loss 1.2346")
