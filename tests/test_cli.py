"""The ``sparse-universe`` command: one-line errors with status 2, and runs that are never overwritten."""

import pytest

from sparse_universe import cli

TINY = ["--universes", "1", "--particles", "12", "--steps", "4", "--hidden", "8", "--iterations", "2"]


def run(argv, capsys):
    """Exit status and stderr of ``sparse-universe argv``."""
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
        raise SystemExit(0)
    return info.value.code, capsys.readouterr().err


@pytest.mark.parametrize("argv, words", [
    (["scale", "--max-n", "0"], ["--max-n", ">= 1", "0"]),
    (["scale", "--neighbors", "-5"], ["--neighbors", "> 0", "-5"]),
    (["scale", "--repeats", "2.5"], ["--repeats", "int", "'2.5'"]),
    (["train", "--iterations", "0"], ["'iterations'", ">= 1", "0"]),
    (["train", "--monitor-stop", "ture"], ["--monitor-stop", "true or false", "'ture'"]),
    (["train", "--lr", "nan"], ["--lr", "finite", "nan"]),
    (["train", "--path", "square"], ["'path'", "'square'"]),
    (["lj", "--dt", "0"], ["--dt", "> 0"]),
])
def test_bad_options_give_one_line_and_status_2(argv, words, capsys, tmp_path):
    code, err = run([*argv, "--out", str(tmp_path)], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, (word, err)


def test_a_run_never_replaces_earlier_results(tmp_path, capsys):
    assert run(["train", *TINY, "--out", str(tmp_path)], capsys)[0] == 0
    checkpoint = (tmp_path / "train_path.pt").read_bytes()
    results = (tmp_path / "train_path.csv").read_bytes()

    code, err = run(["train", *TINY, "--out", str(tmp_path)], capsys)
    assert code == 2 and "train_path.pt already exists" in err and "--overwrite" in err and "--resume" in err
    assert (tmp_path / "train_path.pt").read_bytes() == checkpoint
    assert (tmp_path / "train_path.csv").read_bytes() == results

    assert run(["train", *TINY[:-1], "3", "--resume", "--out", str(tmp_path)], capsys)[0] == 0  # extend to 3
    assert len((tmp_path / "train_path.csv").read_text().splitlines()) == 1 + 3
    assert run(["train", *TINY, "--overwrite", "--out", str(tmp_path)], capsys)[0] == 0  # start afresh
    assert len((tmp_path / "train_path.csv").read_text().splitlines()) == 1 + 2


def test_other_commands_refuse_to_overwrite_too(tmp_path, capsys):
    (tmp_path / "string_wave.png").write_bytes(b"an earlier figure")
    code, err = run(["string", "--particles", "21", "--out", str(tmp_path)], capsys)
    assert code == 2 and "string_wave.png already exists" in err and "--resume" not in err
    assert (tmp_path / "string_wave.png").read_bytes() == b"an earlier figure"


def test_runtime_errors_are_one_line_and_debug_shows_the_traceback(tmp_path, capsys):
    (tmp_path / "train_path.pt").write_bytes(b"")
    code, err = run(["train", *TINY, "--resume", "--out", str(tmp_path)], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "train_path.pt is empty" in err
    from sparse_universe.experiments.train_path import CheckpointError

    with pytest.raises(CheckpointError):
        cli.main(["--debug", "train", *TINY, "--resume", "--out", str(tmp_path)])
