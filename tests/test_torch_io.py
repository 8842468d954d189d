"""Every reader of PyTorch files (official weights, loss and evaluation networks) goes through
torch's weights-only loader, and a damaged file is one line naming the file and the type of torch's
exception, in the reader's own error type, without torch's advice to load it unsafely."""

import pytest

from inpaintjax import torch_io
from inpaintjax.convert import edgeconnect, glcic, pconv, shiftnet
from inpaintjax.models import vgg
from inpaintjax.perceptual import inception


@pytest.fixture
def cut_file(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "weights.pth"
    torch.save({f"w{i}": torch.zeros(64, 64) for i in range(8)}, str(path))
    path.write_bytes(path.read_bytes()[:3000])  # a download cut short
    try:  # the type torch itself raises for it
        torch.load(str(path), weights_only=True)
    except Exception as e:
        return str(path), type(e).__name__
    raise AssertionError("torch read a cut-short file")


@pytest.mark.parametrize("read, error", [
    (lambda p: torch_io.load_torch_file(p), ValueError),
    (pconv.from_torch, pconv.PConvCheckpointError),
    (edgeconnect.load_pth, ValueError),
    (glcic.from_torch, glcic.GLCICWeightsError),
    (shiftnet.read_state_dict, shiftnet.ShiftNetCheckpointError),
    (lambda p: vgg.load_weights(p, 16), vgg.VGGWeightsError),
    (inception.load_weights, inception.WeightFileError),
])
def test_a_damaged_file_is_one_line_naming_it(cut_file, read, error):
    path, raised = cut_file
    with pytest.raises(error) as info:
        read(path)
    text = str(info.value)
    assert text.startswith(f"{path}: not a readable PyTorch file ({raised} from torch's weights-only loader")
    assert "weights_only" not in text.replace("weights-only", "") and "\n" not in text
