"""The documentation builds with Sphinx, warnings as errors (broken references, bad docstrings fail here)."""

import subprocess
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_docs_build_warning_free(tmp_path):
    run = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(DOCS),
                          str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-4000:]
    engine = (tmp_path / "engine.html").read_text()
    assert 'id="sparse_universe.radius_graph"' in engine  # the API reference is generated from the docstrings
    for page in ("conventions", "universe", "waves", "physics", "distributed", "howto/pyg", "howto/crystals",
                 "benchmarks", "figures"):
        assert (tmp_path / f"{page}.html").exists(), page
    assert len(list((tmp_path / "_images").glob("*.png"))) >= 10  # the figures page found its images
