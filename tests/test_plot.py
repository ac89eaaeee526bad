"""src/plot.py: the PSNR-against-bits chart from a synthetic tables.json: one panel per set, each method's line
through its (bits, PSNR) points, FP as a horizontal line, other networks and scales left out."""
import json

import numpy as np
from PIL import Image

from src.plot import chart_data, psnr_figure, save_psnr_chart
from src.results import METHOD_LABELS

PSNR = {'minmax': {4: 25.0, 6: 29.5, 8: 31.0}, 'ptq4sr': {4: 29.0, 6: 30.8, 8: 31.2}}
FP = {'Set5': 31.4, 'Set14': 28.3}
OFFSET = {'Set5': 0.0, 'Set14': -3.0}


def synthetic_tables(tmp_path):
    """tables.json as scripts/reproduce_tables.py writes it: EDSR-baseline ×4 cells, plus a ×2 cell and an
    MSRResNet ×4 cell that must be ignored."""
    cells = {'edsr_baseline_x4_fp': {'model': 'edsr_baseline', 'scale': 4, 'w_bit': 32, 'a_bit': 32, 'method': 'fp',
                                     'results': {name: {'psnr': p, 'ssim': 0.9} for name, p in FP.items()}},
             'edsr_baseline_x2_fp': {'model': 'edsr_baseline', 'scale': 2, 'w_bit': 32, 'a_bit': 32, 'method': 'fp',
                                     'results': {'Urban100': {'psnr': 30.0}}},
             'msrresnet_x4_w4a4_dbdc': {'model': 'msrresnet', 'scale': 4, 'w_bit': 4, 'a_bit': 4, 'method': 'dbdc',
                                        'results': {'Set5': {'psnr': 20.0}}}}
    for method, per_bits in PSNR.items():
        for bits, psnr in reversed(per_bits.items()):  # out of order on purpose
            cells[f'edsr_baseline_x4_w{bits}a{bits}_{method}'] = {
                'model': 'edsr_baseline', 'scale': 4, 'w_bit': bits, 'a_bit': bits, 'method': method,
                'results': {name: {'psnr': psnr + off, 'ssim': 0.8} for name, off in OFFSET.items()}}
    path = tmp_path / 'tables.json'
    path.write_text(json.dumps(cells))
    return json.loads(path.read_text())


def test_chart_data_groups_by_method_and_set(tmp_path):
    sets, bits, lines, fp = chart_data(synthetic_tables(tmp_path), 'edsr_baseline', 4)
    assert sets == ['Set5', 'Set14'] and bits == [4, 6, 8] and fp == FP
    assert lines['minmax']['Set14'] == [(4, 22.0), (6, 26.5), (8, 28.0)]
    assert chart_data(synthetic_tables(tmp_path), 'edsr_baseline', 3) == ([], [], {}, {})
    assert chart_data(synthetic_tables(tmp_path), 'msrresnet', 4)[2] == {'dbdc': {'Set5': [(4, 20.0)]}}


def test_a_set_fp_was_not_scored_on_gets_no_panel(tmp_path):
    cells = synthetic_tables(tmp_path)
    cells['edsr_baseline_x4_w4a4_ptq4sr']['results']['BSD200[100:]'] = {'psnr': 27.0}  # a validation split
    sets, _, lines, _ = chart_data(cells, 'edsr_baseline', 4)
    assert sets == ['Set5', 'Set14'] and set(lines['ptq4sr']) == {'Set5', 'Set14'}


def test_figure_draws_every_point_and_the_fp_line(tmp_path):
    fig = psnr_figure(synthetic_tables(tmp_path), 'edsr_baseline', 4, METHOD_LABELS)
    assert [ax.get_title() for ax in fig.axes] == ['Set5, ×4', 'Set14, ×4']
    for ax, name in zip(fig.axes, ['Set5', 'Set14']):
        drawn = {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in ax.lines}
        assert drawn['FP'][1] == [FP[name], FP[name]]  # axhline
        for method, per_bits in PSNR.items():
            x, y = drawn[METHOD_LABELS[method]]
            assert x == [4, 6, 8] and np.allclose(y, [per_bits[b] + OFFSET[name] for b in (4, 6, 8)])
        assert [t for t in ax.get_xticks()] == [4, 6, 8]
    colors = {line.get_label(): line.get_color() for ax in fig.axes for line in ax.lines}
    assert len(set(colors.values())) == 3  # one colour per method, the same in both panels


def test_png_is_written_atomically_and_nothing_without_data(tmp_path):
    out = tmp_path / 'chart.png'
    assert save_psnr_chart(synthetic_tables(tmp_path), 'edsr_baseline', 4, str(out), METHOD_LABELS)
    with Image.open(out) as img:
        assert img.format == 'PNG' and img.size[0] > 2 * img.size[1]  # two panels side by side
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith('.')] == []
    assert not save_psnr_chart(synthetic_tables(tmp_path), 'edsr', 2, str(tmp_path / 'none.png'))
    assert not (tmp_path / 'none.png').exists()
