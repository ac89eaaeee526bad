"""src.calibration.memory: PaC's CPU memory estimate matches the peaks measured with
scripts/benchmark_memory.py, and a setting that cannot fit is refused in one line naming one that does."""
import pytest

from src.calibration.memory import check_pac_memory, pac_peak_bytes
from src.checkpoint import CheckpointInfo
from src.errors import UserError
from src.models.build import build_net

EDSR_BASELINE_PARAMS = {4: 1_517_571, 2: 1_369_859}
EDSR_PARAMS = {4: 43_089_923, 2: 40_729_603}


@pytest.mark.parametrize('feat, block, patch, batch, params, measured_gb', [
    (64, 16, 48, 2, EDSR_BASELINE_PARAMS[4], 2.0),   # EDSR-baseline x4
    (64, 16, 96, 2, EDSR_BASELINE_PARAMS[2], 3.8),   # EDSR-baseline x2
    (256, 32, 48, 2, EDSR_PARAMS[4], 8.2),           # full EDSR x4
    (256, 32, 96, 1, EDSR_PARAMS[2], 14.85),         # full EDSR x2 at batch 1
])
def test_estimate_matches_the_measured_peaks(feat, block, patch, batch, params, measured_gb):
    assert pac_peak_bytes(feat, block, patch, batch, params) / 1e9 == pytest.approx(measured_gb, rel=0.1)


def test_full_edsr_x2_is_refused_where_it_cannot_fit_with_a_batch_that_does():
    net = build_net('edsr_baseline', 2)  # the parameter count matters little next to the activations
    info = CheckpointInfo('edsr', 2, 256, 32, 'ckpt')
    check_pac_memory(net, info, 96, 2, available=64e9)  # fits: no error
    with pytest.raises(UserError, match=r'needs about 2\d GB of memory on CPU, 16 GB is available: '
                                        r'use --pac_batch_size 1 \(about 1\d GB\) or a smaller --patch_size'):
        check_pac_memory(net, info, 96, 2, available=16e9)
    with pytest.raises(UserError, match=r'is available: use a smaller --patch_size'):
        check_pac_memory(net, info, 96, 2, available=4e9)
