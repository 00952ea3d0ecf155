"""Every Python block of README.md and of the docs pages runs as written, and both how-tos run.

The blocks of one file share a namespace and run in order, as a reader would
paste them. They run in a scratch folder with a fixed seed. The scale-out page
runs on a one-process gloo group, as ``torchrun --nproc-per-node 1`` would
give it.
"""

import re
import runpy
import socket
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
HOWTOS = sorted((ROOT / "docs" / "howto").glob("*.py"))


def blocks(path: Path) -> list:
    return BLOCK.findall(path.read_text())


def test_readme_has_a_quickstart():
    assert len(blocks(ROOT / "README.md")) >= 1


@pytest.fixture
def one_process_group(monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for key, value in {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": "0", "WORLD_SIZE": "1",
                       "LOCAL_RANK": "0"}.items():
        monkeypatch.setenv(key, value)
    yield
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


@pytest.mark.filterwarnings("error::RuntimeWarning")  # e.g. a collision-horizon warning: fix the example
@pytest.mark.parametrize("path", [p for p in PAGES if blocks(p)], ids=lambda p: str(p.relative_to(ROOT)))
def test_page_blocks_run(path, tmp_path, monkeypatch, one_process_group):
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    namespace = {"__name__": "__main__"}
    for number, code in enumerate(blocks(path), 1):
        exec(compile(code, f"{path.name} block {number}", "exec"), namespace)


@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.parametrize("script", HOWTOS, ids=lambda p: p.name)
def test_howto_runs(script, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(script), run_name="__main__")


def test_every_howto_is_tested():
    assert {p.stem for p in HOWTOS} >= {"pyg", "crystals"}
