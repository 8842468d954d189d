"""Side by side on one CPU: Inception pool3 features/s at 256x256 inputs (resized to 299) and LPIPS
pairs/s at 256x256, inpaintjax (JAX, jitted) vs pytorch-fid 0.3.0 / lpips 0.1.4 (torch), on the same
seeded random weights (speed does not depend on the values). Best of 3 after a warm-up.

    PYTHONPATH=<repo>:<dir with pytorch_fid, lpips, torchvision> python benchmarks/perceptual_vs_reference.py

torchvision's model files are imported without its package __init__ (its C extension does not load
beside the CPU build of torch 2.13); pytorch-fid and lpips only need the model definitions.
"""
import sys, time, types, importlib.util
import numpy as np
spec = importlib.util.find_spec("torchvision")
pkg = types.ModuleType("torchvision"); pkg.__path__ = list(spec.submodule_search_locations); pkg.__version__ = "0.29.1"
sys.modules["torchvision"] = pkg
import jax, torch
import pytorch_fid.inception as pfi, lpips as lp_ref
from inpaintjax.perceptual import inception as I, lpips as L
torch.set_num_threads(2)
B, R = 8, 3
rng = np.random.default_rng(0)
x = rng.integers(0, 256, (B, 256, 256, 3), dtype=np.uint8)
y = rng.integers(0, 256, (B, 256, 256, 3), dtype=np.uint8)
def timeit(f):
    f(); best = 1e9
    for _ in range(R):
        t = time.perf_counter(); f(); best = min(best, time.perf_counter() - t)
    return best
sd = I.random_state_dict(0)
ext = I.make_extractor(I.from_state_dict(sd))
tj = timeit(lambda: ext(x)["pool3"].block_until_ready())
tsd = {k: torch.from_numpy(np.asarray(v)) for k, v in sd.items()}
pfi.load_state_dict_from_url = lambda *a, **k: tsd
net = pfi.InceptionV3([3]).eval()
xt = torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255
with torch.no_grad():
    tt = timeit(lambda: net(xt))
print(f"Inception pool3 @256->299, batch {B}: inpaintjax {B/tj:.2f} img/s, pytorch-fid {B/tt:.2f} img/s")
for netname in ("alex", "vgg"):
    bsd, lin = L.random_state_dicts(netname, 0)
    f = L.make_distance({"backbone": L.backbone_from_state_dict(netname, bsd), "lin": L.lin_from_state_dict(netname, lin)}, netname)
    xf, yf = x.astype(np.float32) / 255, y.astype(np.float32) / 255
    tj = timeit(lambda: f(xf, yf).block_until_ready())
    m = lp_ref.LPIPS(net=netname, pnet_rand=True, verbose=False).eval()
    a = torch.from_numpy(xf).permute(0, 3, 1, 2); b = torch.from_numpy(yf).permute(0, 3, 1, 2)
    with torch.no_grad():
        tt = timeit(lambda: m(a, b, normalize=True))
    print(f"LPIPS-{netname} @256, batch {B}: inpaintjax {B/tj:.2f} pairs/s, lpips {B/tt:.2f} pairs/s")
