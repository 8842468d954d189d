"""Preemption of a multi-process run: a SIGTERM delivered to one process of two (jax.distributed over
gloo on 127.0.0.1) stops both at the same step, which process 0 checkpoints before both exit cleanly.
The single-process SIGTERM path is tested in tests/test_checkpoint.py."""

import os
import re
import socket
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN = os.path.join(ROOT, "tests", "run_toy.py")
STEPS = 200  # far more than the notice needs to be agreed on; a run that ignores it ends here


@pytest.mark.multiprocess
def test_a_notice_to_one_process_stops_every_process_at_one_checkpointed_step(tmp_path, child_env):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{s.getsockname()[1]}"
    workdir = str(tmp_path / "run")
    args = [f"num_steps={STEPS}", "log_every=1", f"checkpoint_every={STEPS}", "image_every=0", "batch_size=8",
            "data.num_workers=0", "--cpu_devices", "1", "--coordinator", address, "--num_processes", "2"]
    workers = [subprocess.Popen([sys.executable, RUN, workdir, str(tmp_path / f"p{i}.npz")] + args
                                + ["--process_id", str(i)] + (["--sigterm_at", "3"] if i == 1 else []),
                                env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for i in range(2)]
    outs = []
    for w in workers:
        out, _ = w.communicate(timeout=300)
        assert w.returncode == 0, out[-3000:]
        outs.append(out)
    stops = [int(re.search(r"processes=2 step=(\d+)", o).group(1)) for o in outs]
    assert stops[0] == stops[1] and 3 <= stops[0] < STEPS, stops  # one step, agreed, before the end
    saved = re.search(r"SIGTERM: saved checkpoint (\d+)", outs[0])
    assert saved and int(saved.group(1)) == stops[0], outs[0][-2000:]
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == [str(stops[0])]
