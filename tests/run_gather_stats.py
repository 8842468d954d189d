"""Worker of tests/test_fid.py's two-process check: process I of P (jax.distributed over gloo)
takes its share of a seeded feature matrix (rows I, I+P, ..., unequal shares when P does not divide
the row count), merges the FID statistics of every process (`fid.allgather_stats`) and gathers the
kept rows (`fid.allgather_rows`), and writes them to OUT.npz. With --protocol_folders DIR it also
scores DIR/{truth,output,masks} with `protocol()` (`protocols.evaluate_protocol`: each process its
share, the states merged), checkpointing every image to DIR/state.npz, and writes the report to
OUT.json.

    python tests/run_gather_stats.py OUT.npz --coordinator 127.0.0.1:PORT --num_processes P --process_id I
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

ROWS, DIM = 23, 6


def features():
    import numpy as np
    return np.random.default_rng(7).normal(size=(ROWS, DIM)) * np.arange(1, DIM + 1)


def protocol():
    """Per-image measures in two area bins (the groups are merged across processes too)."""
    from inpaintjax import protocols as P
    return P.Protocol(name="two_process", title="mmagic's measures in two bins", image_size=32,
                      metrics=(P.Metric("l1", "mae_masked", scale=100.0), P.Metric("psnr", "psnr")),
                      binning=P.Binning(edges=(0.0, 0.2, 1.0)))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--coordinator", required=True)
    p.add_argument("--num_processes", type=int, required=True)
    p.add_argument("--process_id", type=int, required=True)
    p.add_argument("--protocol_folders", default=None)
    a = p.parse_args()
    import jax
    jax.distributed.initialize(coordinator_address=a.coordinator, num_processes=a.num_processes,
                               process_id=a.process_id, coordinator_bind_address=a.coordinator)
    import numpy as np

    from inpaintjax.perceptual import fid
    from inpaintjax.perceptual.fid import allgather_rows
    mine = features()[a.process_id::a.num_processes]
    stats = fid.allgather_stats(fid.FeatureStats(DIM).update(mine))
    np.savez(a.out, count=stats.count, mu=stats.mu, sigma=stats.sigma, rows=allgather_rows(mine))
    if a.protocol_folders:
        import json
        from inpaintjax.protocols import evaluate_protocol
        d = a.protocol_folders
        report = evaluate_protocol(protocol(), os.path.join(d, "truth"), os.path.join(d, "output"),
                                   os.path.join(d, "masks"), batch_size=2, checkpoint=os.path.join(d, "state.npz"),
                                   checkpoint_every=1)
        with open(os.path.splitext(a.out)[0] + ".json", "w") as fh:
            json.dump({k: report[k] for k in ("results", "group_counts", "count", "processes")}, fh)


if __name__ == "__main__":
    main()
