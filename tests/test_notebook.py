"""notebooks/quickstart.ipynb runs top to bottom (nbclient) on the tiny `test` config, and is kept
in the repository without outputs."""

import os

import nbformat
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(ROOT, "notebooks", "quickstart.ipynb")


def test_notebook_is_stored_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


# not marked `long`: it runs after the end-to-end test's train.py has written the compilation cache,
# whose training programs (same config preset, same XLA:CPU set-up) it then loads instead of compiling
def test_quickstart_notebook_runs_top_to_bottom(tmp_path, monkeypatch, child_env):
    import nbclient
    env = child_env()          # the kernel: this checkout, the session's cache, one CPU device
    for key in ("PYTHONPATH", "XLA_FLAGS"):
        if key in env:
            monkeypatch.setenv(key, env[key])
        else:
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("INPAINTJAX_WEIGHTS", "")
    monkeypatch.setenv("INPAINTJAX_DEMO_WORKDIR", str(tmp_path / "no_demo_run"))
    monkeypatch.setenv("INPAINTJAX_NOTEBOOK_CONFIG", "test")
    monkeypatch.setenv("INPAINTJAX_NOTEBOOK_WORKDIR", str(tmp_path / "runs"))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                     for o in c.outputs if o.get("output_type") == "stream")
    assert "training test first" in text and "trained to step 4" in text
    assert "last logged (step 4): {'" in text      # the log's last record, not an empty dict
    assert "read only" not in text                 # no orbax notice when a run is opened to read
    # the XLA:CPU set-up train.py uses, applied before JAX started (not 'too_late')
    assert any(f"XLA:CPU set-up: {state} |" in text for state in ("tuned", "off")), text[:500]
    # the classical rows are those the `test` preset asks for (all four have their own test)
    from configs.deepfill_v2 import get_config
    methods = ["deepfill_v2"] + get_config("test").eval.baselines.split(",")
    assert "hole L1, all masks:" in text and all(f"'{m}'" in text for m in methods[1:])
    images = sum("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))
    assert images >= 3  # the inpainting grid, the attention flow, the loss curves
    table = next(o["data"]["text/markdown"] for c in nb.cells for o in c.get("outputs", [])
                 if "text/markdown" in o.get("data", {}))
    for method in methods:
        assert f"| all | {method} |" in table
    assert (tmp_path / "runs" / "train" / "metrics.jsonl").is_file()
