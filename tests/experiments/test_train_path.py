import pytest
import torch

from sparse_universe.experiments import train_path as tp

SMALL = dict(universes=2, particles=24, steps=12, iterations=40, lr=1e-2)


def test_training_beats_the_untrained_model_by_a_clear_margin():
    cfg = tp.Config(**SMALL)
    state = tp.make_universes(cfg)
    before = tp.evaluate(tp.build_model(cfg), state, cfg)
    model = tp.build_model(cfg)
    torch.manual_seed(cfg.seed + 1)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    for _ in range(cfg.iterations):
        opt.zero_grad()
        loss = tp.loss_of(model, state, cfg, cfg.reading)
        loss.backward()
        opt.step()
    after = tp.evaluate(model, state, cfg)
    assert after["particle"] < before["particle"] - 0.5, (before, after)


def test_interrupted_run_resumes_to_the_same_result(tmp_path, monkeypatch):
    cfg = tp.Config(**{**SMALL, "iterations": 12})
    straight = tmp_path / "straight.pt"
    history = tp.train(cfg, straight, progress=False, save_every=4)

    crashing = tmp_path / "crashing.pt"
    calls = {"n": 0}
    real_loss = tp.loss_of

    def crash_after_seven(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 7:
            raise KeyboardInterrupt
        return real_loss(*args, **kwargs)

    monkeypatch.setattr(tp, "loss_of", crash_after_seven)
    with pytest.raises(KeyboardInterrupt):
        tp.train(cfg, crashing, progress=False, save_every=4)
    monkeypatch.setattr(tp, "loss_of", real_loss)
    assert torch.load(crashing, weights_only=False)["iteration"] == 4  # the last save before the crash
    resumed = tp.train(cfg, crashing, resume=True, progress=False, save_every=4)
    assert resumed == history
    a, b = torch.load(straight, weights_only=False), torch.load(crashing, weights_only=False)
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    with pytest.raises(tp.CheckpointError, match=r"another config \(lr: checkpoint 0.01, now 0.02\)"):
        tp.train(tp.Config(**{**SMALL, "iterations": 12, "lr": 2e-2}), crashing, resume=True, progress=False)
    with pytest.raises(tp.CheckpointError, match="at iteration 12, beyond --iterations 10"):
        tp.train(tp.Config(**{**SMALL, "iterations": 10}), crashing, resume=True, progress=False)


def test_a_finished_run_is_extended_by_more_iterations(tmp_path):
    path = tmp_path / "run.pt"
    first = tp.train(tp.Config(**{**SMALL, "iterations": 4}), path, progress=False)
    longer = tp.Config(**{**SMALL, "iterations": 6})
    extended = tp.train(longer, path, resume=True, progress=False)
    assert extended[:4] == first and [h["iteration"] for h in extended] == list(range(1, 7))
    saved = tp.load_checkpoint(path, longer)
    assert saved["iteration"] == 6
    # the stretched schedule: iteration 5 ran at lr * cosine(4, 6), not at the finished run's 0
    assert saved["optimizer"]["param_groups"][0]["lr"] == pytest.approx(longer.lr * tp.cosine(6, 6), abs=1e-12)
    assert tp.cosine(4, 6) == pytest.approx(0.25)


def test_resume_after_a_monitor_stop_replays_the_stopped_iteration(tmp_path, monkeypatch):
    cfg = tp.Config(**{**SMALL, "iterations": 6})
    straight = tp.train(cfg, tmp_path / "straight.pt", progress=False)
    real_check = tp.check

    def stop_at_four(monitors, record):
        if record["iteration"] == 4:
            raise tp.TrainingStopped("test monitor at iteration 4")
        return real_check(monitors, record)

    monkeypatch.setattr(tp, "check", stop_at_four)
    stopped = tp.train(cfg, tmp_path / "stopped.pt", progress=False, save_every=100)
    assert len(stopped) == 3
    monkeypatch.setattr(tp, "check", real_check)
    resumed = tp.train(cfg, tmp_path / "stopped.pt", resume=True, progress=False)
    assert resumed == straight  # iteration 4 recomputed with the same noise: same loss and gradient norm


@pytest.mark.parametrize("content, words", [
    (b"", ["is empty"]),
    (b"not a checkpoint at all", ["not readable", "truncated"]),
    (None, ["not a sparse-universe train checkpoint", "model"]),
])
def test_bad_checkpoints_are_named_in_one_line(tmp_path, content, words):
    path = tmp_path / "run.pt"
    if content is None:
        torch.save({"weights": torch.zeros(2)}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(tp.CheckpointError) as info:
        tp.train(tp.Config(**SMALL), path, resume=True, progress=False)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    for word in words:
        assert word in message


def test_truncated_checkpoint_is_named(tmp_path):
    path = tmp_path / "run.pt"
    tp.train(tp.Config(**{**SMALL, "iterations": 2}), path, progress=False)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(tp.CheckpointError, match="not readable: it is truncated"):
        tp.load_checkpoint(path)


@pytest.mark.parametrize("field, value, words", [
    ("iterations", -1, ["'iterations'", ">= 0", "-1"]),
    ("lr", 0.0, ["'lr'", "> 0", "0.0"]),
    ("dt", float("nan"), ["'dt'", "nan"]),
    ("path", "square", ["'path'", "'circle'", "'square'"]),
    ("surrogate_radius", 0.4, ["'surrogate_radius'", "eps=0.5", "0.4"]),
])
def test_config_ranges_are_checked(field, value, words):
    with pytest.raises((ValueError, TypeError)) as info:
        tp.Config(**{field: value})
    for word in words:
        assert word in str(info.value)


def test_cli_writes_csv_and_figures(tmp_path):
    result = tp.main(["--universes", "1", "--particles", "12", "--steps", "6", "--iterations", "3",
                      "--out", str(tmp_path)])
    for name in ("train_path.csv", "train_path_loss.png", "train_path_trajectories.png", "train_path.pt"):
        assert (tmp_path / name).stat().st_size > 0
    assert set(result) == {"before", "after"}


@pytest.mark.parametrize("shape", ["circle", "eight"])
def test_paths_start_at_the_group_and_close(shape):
    cfg = tp.Config(path=shape, steps=40)
    path = tp.make_path(cfg)
    assert path.shape == (40, 2)
    assert torch.allclose(path[-1], torch.zeros(2), atol=1e-5)  # one full loop back to the start
    assert float(path.norm(dim=1).max()) >= 0.9 * cfg.radius  # and it does go somewhere


def test_runs_killed_during_checkpoint_writes_resume_to_the_uninterrupted_result(tmp_path):
    import random
    import signal
    import subprocess
    import sys
    from pathlib import Path

    options = ["train", "--universes", "1", "--particles", "12", "--steps", "4", "--hidden", "8",
               "--iterations", "6", "--save-every", "1"]
    python = [sys.executable, "-m", "sparse_universe.cli"]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    subprocess.run([*python, *options, "--out", str(straight)], check=True, capture_output=True)

    writer = [sys.executable, str(Path(__file__).with_name("slow_writes.py"))]
    rng = random.Random(12)
    kills = 0
    done = 0  # iterations in the last good checkpoint
    for _ in range(3):  # three kills, each at a random point of one of the writes still to come
        resume = ["--resume"] if (killed / "train_path.pt").exists() else ["--overwrite"]
        child = subprocess.Popen([*writer, *options, *resume, "--out", str(killed)], stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, text=True)
        target, seen = rng.randrange(1, 2 * (6 - done)), 0  # two markers per write; never the last one
        for line in child.stdout:
            seen += line.strip() in ("half", "whole")
            if seen == target:
                child.send_signal(signal.SIGKILL)
                kills += 1
                break
        child.wait()
        child.stdout.close()
        if (killed / "train_path.pt").exists():
            done = tp.load_checkpoint(killed / "train_path.pt")["iteration"]  # always readable after a kill
    assert kills == 3
    subprocess.run([*python, *options, "--resume", "--out", str(killed)], check=True, capture_output=True)

    assert (killed / "train_path.csv").read_text() == (straight / "train_path.csv").read_text()
    a, b = tp.load_checkpoint(straight / "train_path.pt"), tp.load_checkpoint(killed / "train_path.pt")
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key


@pytest.mark.slow
def test_data_parallel_training_under_torchrun_matches_one_process_and_resumes_exactly(tmp_path):
    """``torchrun --nproc-per-node 2``: the parameters of one process seeing every universe; a run killed
    inside a checkpoint write resumes to the uninterrupted result, bit for bit, sampling streams included."""
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    options = ["train", "--universes", "3", "--particles", "12", "--steps", "4", "--hidden", "8",
               "--iterations", "4", "--save-every", "1"]
    python = [sys.executable, "-m", "sparse_universe.cli"]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]

    def run(command, *extra):
        done = subprocess.run([*command, *options, *extra], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-3000:]
        return done

    def model(name):
        return tp.load_checkpoint(tmp_path / name / "train_path.pt")["model"]

    run(python, "--sigma", "0", "--out", str(tmp_path / "one"))
    shown = run([*torchrun, "-m", "sparse_universe.cli"], "--sigma", "0", "--out", str(tmp_path / "two"))
    assert shown.stdout.count("untrained") == 2  # rank 0 reports; the replica prints nothing
    for key, value in model("one").items():  # 3 universes over 2 ranks: shares of 2 and 1, averaged by DDP
        assert torch.allclose(model("two")[key], value, rtol=1e-5, atol=1e-6), key

    run([*torchrun, "-m", "sparse_universe.cli"], "--out", str(tmp_path / "straight"))  # sampling on
    child = subprocess.Popen([*torchrun, str(Path(__file__).with_name("slow_writes.py")), *options, "--out",
                              str(tmp_path / "killed")], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             text=True, start_new_session=True)
    wholes = 0
    for line in child.stdout:
        wholes += line.strip() == "whole"
        if wholes == 3:  # inside the third checkpoint write: written, not yet renamed
            os.killpg(child.pid, signal.SIGKILL)
            break
    child.wait()
    child.stdout.close()
    saved = tp.load_checkpoint(tmp_path / "killed" / "train_path.pt")
    assert saved["iteration"] == 2 and saved["rng"].shape[0] == 2  # every rank's sampling stream
    run([*torchrun, "-m", "sparse_universe.cli"], "--resume", "--out", str(tmp_path / "killed"))
    for key, value in model("straight").items():
        assert torch.equal(model("killed")[key], value), key
    wrong = subprocess.run([*python, *options, "--resume", "--out", str(tmp_path / "straight")],
                           capture_output=True, text=True)
    assert wrong.returncode == 2 and "written by 2 process(es), this run has 1" in wrong.stderr
