"""The shared full-precision reference models reproduce their published Set5 Y-PSNR (SPEC §6) through the
project's own loading, data and evaluation path (~10 s each on 2 cores)."""
import pytest

from src.evaluate import evaluate, open_sets
from src.models.load import load_fp_net

# SPEC §6 Y-PSNR; SSIM where ../shared/reference/README.md lists it. Measured here (MindSpore 2.10 CPU):
# 37.2074, 33.1165, 31.3782, 37.5263, 31.2597 dB.
REFERENCE = [
    ('edsr_baseline_x2.pt', 'edsr_baseline', 2, 37.207, 0.9573),
    ('edsr_baseline_x3.pt', 'edsr_baseline', 3, 33.117, None),
    ('edsr_baseline_x4.pt', 'edsr_baseline', 4, 31.378, 0.8836),
    ('MSRResNet_x2_f64b16.pth', 'msrresnet', 2, 37.526, None),
    ('MSRResNet_x4_f64b16.pth', 'msrresnet', 4, 31.260, None),
]


@pytest.mark.slow
@pytest.mark.parametrize('name, arch, scale, psnr, ssim', REFERENCE, ids=[r[0] for r in REFERENCE])
def test_reference_model_set5_psnr(shared_dir, name, arch, scale, psnr, ssim):
    net, info = load_fp_net(str(shared_dir / 'models' / name), arch, scale)
    assert (info.arch, info.scale) == (arch, scale)
    result = evaluate(net, open_sets(str(shared_dir / 'datasets' / 'benchmark'), 'Set5', scale), scale)['Set5']
    assert result['images'] == 5
    assert result['psnr'] == pytest.approx(psnr, abs=0.01)
    if ssim is not None:
        assert result['ssim'] == pytest.approx(ssim, abs=5e-4)
