"""PyTorch versions of the benchmarked computations (`python -m inpaintjax.bench --torch`), one
module per family, each runnable as `python -m inpaintjax.benchmarks_torch.<module>`. They need
torch (`pip install 'inpaintjax[bench]'`) and import no JAX."""

#: the module timing each family's train / infer cases (the conv stack: torch_deepfill)
MODULES = {"deepfill_v2": "torch_deepfill", "deepfill_v1": "torch_deepfill_v1",
           "pconv": "torch_pconv", "edgeconnect": "torch_edgeconnect", "glcic": "torch_glcic",
           "shiftnet": "torch_shiftnet"}
STACK_MODULE = "torch_deepfill"
