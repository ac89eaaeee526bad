"""src/plot.py: the PSNR-against-bits chart from a synthetic tables.json: size, lines in their colours at the
right heights, FP as a horizontal line, nice ticks."""
import json

import numpy as np
import pytest
from PIL import Image

from src.plot import COLORS, LEGEND_HEIGHT, MARGIN, PANEL, chart_data, nice_ticks, save_psnr_chart

PSNR = {'minmax': {4: 25.0, 6: 29.5, 8: 31.0}, 'ptq4sr': {4: 29.0, 6: 30.8, 8: 31.2}}
FP = {'Set5': 31.4, 'Set14': 28.3}
OFFSET = {'Set5': 0.0, 'Set14': -3.0}


def synthetic_tables(tmp_path):
    """tables.json as scripts/reproduce_tables.py writes it: ×4 cells, plus a ×2 cell that must be ignored."""
    cells = {'x4_fp': {'scale': 4, 'w_bit': 32, 'a_bit': 32, 'method': 'fp',
                       'results': {name: {'psnr': p, 'ssim': 0.9} for name, p in FP.items()}},
             'x2_fp': {'scale': 2, 'w_bit': 32, 'a_bit': 32, 'method': 'fp', 'results': {'Urban100': {'psnr': 30.0}}}}
    for method, per_bits in PSNR.items():
        for bits, psnr in reversed(per_bits.items()):  # out of order on purpose
            cells[f'x4_w{bits}a{bits}_{method}'] = {
                'scale': 4, 'w_bit': bits, 'a_bit': bits, 'method': method,
                'results': {name: {'psnr': psnr + off, 'ssim': 0.8} for name, off in OFFSET.items()}}
    path = tmp_path / 'tables.json'
    path.write_text(json.dumps(cells))
    return json.loads(path.read_text())


def rows_of(pixels, color):
    mask = np.all(pixels == np.array(color, np.uint8), axis=-1)
    return np.nonzero(mask)[0], np.nonzero(mask)[1]


def test_chart_data_groups_by_method_and_set(tmp_path):
    sets, bits, lines, fp = chart_data(synthetic_tables(tmp_path), 4)
    assert sets == ['Set5', 'Set14'] and bits == [4, 6, 8] and fp == FP
    assert lines['minmax']['Set14'] == [(4, 22.0), (6, 26.5), (8, 28.0)]
    assert chart_data(synthetic_tables(tmp_path), 3) == ([], [], {}, {})


def test_nice_ticks_cover_the_range_with_round_steps():
    assert nice_ticks(24.7, 31.6) == [24, 25, 26, 27, 28, 29, 30, 31, 32]
    assert nice_ticks(12.05, 12.35) == pytest.approx([12.05, 12.1, 12.15, 12.2, 12.25, 12.3, 12.35])
    assert nice_ticks(30.0, 30.0) == pytest.approx([29.4, 29.6, 29.8, 30.0, 30.2, 30.4, 30.6])  # ±0.5 when flat


def test_png_has_one_panel_per_set_and_lines_at_their_heights(tmp_path):
    out = tmp_path / 'psnr_vs_bits_x4.png'
    assert save_psnr_chart(synthetic_tables(tmp_path), 4, str(out), {'ptq4sr': 'PTQ4SR'})
    image = Image.open(out)
    assert image.format == 'PNG' and image.size == (2 * PANEL[0], PANEL[1] + LEGEND_HEIGHT)
    pixels = np.asarray(image.convert('RGB'))
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20  # not a blank canvas
    for panel in range(2):
        area = pixels[:PANEL[1], panel * PANEL[0]:(panel + 1) * PANEL[0]]
        ys = {m: rows_of(area, COLORS[m])[0] for m in ('minmax', 'ptq4sr', 'fp')}
        assert all(len(v) > 100 for v in ys.values()), {m: len(v) for m, v in ys.items()}
        # PTQ4SR (higher PSNR) is drawn above MinMax on average; FP is one horizontal row above both
        assert ys['ptq4sr'].mean() < ys['minmax'].mean()
        assert np.ptp(ys['fp']) <= 2 and np.median(ys['fp']) < np.median(ys['ptq4sr'])
        # ... at the height its PSNR maps to on the tick range (padded by 8 % of the data range)
        name = ('Set5', 'Set14')[panel]
        lo, hi = PSNR['minmax'][4] + OFFSET[name], FP[name]
        ticks = nice_ticks(lo - 0.08 * (hi - lo), hi + 0.08 * (hi - lo))
        top, bottom = MARGIN['top'], PANEL[1] - MARGIN['bottom']
        expected = bottom - (FP[name] - ticks[0]) / (ticks[-1] - ticks[0]) * (bottom - top)
        assert abs(ys['fp'].mean() - expected) <= 1.5, (ys['fp'].mean(), expected)
        _, xs = rows_of(area, COLORS['minmax'])
        assert np.ptp(xs) > PANEL[0] / 2  # the line spans 4 → 8 bits
    legend = pixels[PANEL[1]:]
    for method in ('minmax', 'ptq4sr', 'fp'):
        assert len(rows_of(legend, COLORS[method])[0]) > 10


def test_nothing_to_draw_writes_nothing(tmp_path):
    assert not save_psnr_chart(synthetic_tables(tmp_path), 3, str(tmp_path / 'x3.png'))
    assert not (tmp_path / 'x3.png').exists()
