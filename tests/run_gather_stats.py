"""Worker of tests/test_fid.py's two-process check: process I of P (jax.distributed over gloo)
takes its share of a seeded feature matrix (rows I, I+P, ..., unequal shares when P does not divide
the row count), merges the FID statistics of every process (`fid.allgather_stats`) and gathers the
kept rows (the evaluation's `_gather_rows`), and writes them to OUT.npz.

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


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--coordinator", required=True)
    p.add_argument("--num_processes", type=int, required=True)
    p.add_argument("--process_id", type=int, required=True)
    a = p.parse_args()
    import jax
    jax.distributed.initialize(coordinator_address=a.coordinator, num_processes=a.num_processes,
                               process_id=a.process_id, coordinator_bind_address=a.coordinator)
    import numpy as np

    from inpaintjax.perceptual import fid
    from inpaintjax.training.eval_perceptual import _gather_rows
    mine = features()[a.process_id::a.num_processes]
    stats = fid.allgather_stats(fid.FeatureStats(DIM).update(mine))
    np.savez(a.out, count=stats.count, mu=stats.mu, sigma=stats.sigma, rows=_gather_rows(mine))


if __name__ == "__main__":
    main()
