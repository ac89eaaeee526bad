"""PSNR against bit width, one panel per test set, drawn with Pillow only (no plotting library needed).

Input is the ``tables.json`` structure written by scripts/reproduce_tables.py:
``{cell name: {'scale': s, 'w_bit': b, 'method': m, 'results': {set: {'psnr': p, ...}}}}``.
Each quantization method is a line with markers over its bit widths; full precision (``method == 'fp'``)
is a dashed horizontal line, since it has no bit width.
"""
import math

from PIL import Image, ImageDraw, ImageFont

from src.utils import atomic_path

PANEL = (420, 320)  # width, height of one test-set panel in pixels
LEGEND_HEIGHT = 34
MARGIN = {'left': 62, 'right': 16, 'top': 30, 'bottom': 46}
COLORS = {'fp': (70, 70, 90), 'minmax': (31, 119, 180), 'percentile': (255, 127, 14), 'dbdc': (44, 160, 44),
          'ptq4sr': (214, 39, 40), 'mse': (148, 103, 189)}
EXTRA_COLORS = [(140, 86, 75), (227, 119, 194), (188, 189, 34), (23, 190, 207)]
INK, GRID = (0, 0, 0), (225, 225, 225)  # text antialiasing makes greys: keep line colours off the grey axis


def chart_data(cells, scale):
    """(set names, bit widths, {method: {set: [(bits, psnr), ...]}}, {set: fp psnr}) of one scale."""
    sets, bits, lines, fp = [], set(), {}, {}
    for cell in cells.values():
        if cell['scale'] != scale:
            continue
        for name, result in cell['results'].items():
            if name not in sets:
                sets.append(name)
            if cell['method'] == 'fp':
                fp[name] = result['psnr']
            else:
                lines.setdefault(cell['method'], {}).setdefault(name, []).append((cell['w_bit'], result['psnr']))
                bits.add(cell['w_bit'])
    for per_set in lines.values():
        for points in per_set.values():
            points.sort()
    return sets, sorted(bits), lines, fp


def nice_ticks(lo, hi, count=5):
    """Round tick values covering [lo, hi] with about ``count`` steps of 1, 2 or 5 × 10^k."""
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    raw = (hi - lo) / count
    step = min((m * 10 ** math.floor(math.log10(raw)) for m in (1, 2, 5, 10)), key=lambda s: abs(s - raw))
    first, last = math.floor(lo / step), math.ceil(hi / step)
    return [round(i * step, 10) for i in range(first, last + 1)]


def method_color(method, order):
    return COLORS.get(method) or EXTRA_COLORS[order.index(method) % len(EXTRA_COLORS)]


def _font():
    try:
        return ImageFont.load_default(size=13)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        return ImageFont.load_default()


def _text(draw, xy, text, font, anchor):
    """Place ``text`` by a two-letter anchor (l/m/r, t/m) from its measured box: works for bitmap fonts too."""
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    fx, fy = {'l': 0, 'm': 0.5, 'r': 1}[anchor[0]], {'t': 0, 'm': 0.5}[anchor[1]]
    draw.text((xy[0] - left - fx * (right - left), xy[1] - top - fy * (bottom - top)), text, fill=INK, font=font)


def _vertical_label(image, center, text, font):
    """Paste ``text`` rotated by 90° (reading upwards) centred on ``center``."""
    left, top, right, bottom = ImageDraw.Draw(image).textbbox((0, 0), text, font=font)
    label = Image.new('RGB', (right - left + 4, bottom - top + 4), 'white')
    ImageDraw.Draw(label).text((2 - left, 2 - top), text, fill=INK, font=font)
    label = label.rotate(90, expand=True)
    image.paste(label, (int(center[0] - label.width / 2), int(center[1] - label.height / 2)))


def _axes(draw, box, x_ticks, y_ticks, font):
    """Frame, grid, tick labels of one panel; returns the data → pixel mapping."""
    x0, y0, x1, y1 = box
    x_lo, x_hi = x_ticks[0] - 0.5, x_ticks[-1] + 0.5
    y_lo, y_hi = y_ticks[0], y_ticks[-1]

    def to_px(x, y):
        return (x0 + (x - x_lo) / (x_hi - x_lo) * (x1 - x0), y1 - (y - y_lo) / (y_hi - y_lo) * (y1 - y0))

    for y in y_ticks:
        py = to_px(x_lo, y)[1]
        draw.line([(x0, py), (x1, py)], fill=GRID)
        draw.line([(x0 - 4, py), (x0, py)], fill=INK)
        _text(draw, (x0 - 7, py), f'{y:g}', font, 'rm')
    for x in x_ticks:
        px = to_px(x, y_lo)[0]
        draw.line([(px, y1), (px, y1 + 4)], fill=INK)
        _text(draw, (px, y1 + 7), str(x), font, 'mt')
    draw.rectangle(box, outline=INK)
    return to_px


def _dashed(draw, start, end, color, dash=8):
    (xa, y), (xb, _) = start, end
    x = xa
    while x < xb:
        draw.line([(x, y), (min(x + dash, xb), y)], fill=color, width=2)
        x += 2 * dash


def draw_panel(image, origin, set_name, scale, bits, lines, fp, font):
    """One test set: PSNR (y) against bits (x) for every method, FP dashed."""
    draw = ImageDraw.Draw(image)
    left, top = origin
    box = (left + MARGIN['left'], top + MARGIN['top'], left + PANEL[0] - MARGIN['right'],
           top + PANEL[1] - MARGIN['bottom'])
    values = [p for per_set in lines.values() for b, p in per_set.get(set_name, [])]
    values += [fp[set_name]] if set_name in fp else []
    lo, hi = min(values), max(values)
    pad = max(hi - lo, 0.2) * 0.08
    x_ticks = bits or [8]  # FP alone still gets an x axis
    to_px = _axes(draw, box, x_ticks, nice_ticks(lo - pad, hi + pad), font)
    if set_name in fp:
        _dashed(draw, to_px(x_ticks[0] - 0.5, fp[set_name]), to_px(x_ticks[-1] + 0.5, fp[set_name]), COLORS['fp'])
    for method, per_set in lines.items():
        points = [to_px(b, p) for b, p in per_set.get(set_name, [])]
        color = method_color(method, list(lines))
        if len(points) > 1:
            draw.line(points, fill=color, width=2)
        for x, y in points:
            draw.ellipse((x - 4, y - 4, x + 4, y + 4), fill=color)
    _text(draw, ((box[0] + box[2]) / 2, top + MARGIN['top'] / 2), f'{set_name} x{scale}', font, 'mm')
    _text(draw, ((box[0] + box[2]) / 2, box[3] + 26), 'bits (W = A)', font, 'mt')
    _vertical_label(image, (left + 14, (box[1] + box[3]) / 2), 'PSNR (dB)', font)


def legend_entries(methods, has_fp, labels, font):
    """[(method, label, dashed, x offset)] and the total legend width in pixels."""
    entries, x = [], 16
    for method in (['fp'] if has_fp else []) + methods:
        label = labels.get(method, method)
        entries.append((method, label, method == 'fp', x))
        x += 34 + font.getlength(label) + 22
    return entries, int(x)


def draw_legend(image, top, entries, methods, font):
    draw = ImageDraw.Draw(image)
    y = top + LEGEND_HEIGHT / 2
    for method, label, dashed, x in entries:
        color = COLORS['fp'] if dashed else method_color(method, methods)
        if dashed:
            _dashed(draw, (x, y), (x + 28, y), color, dash=6)
        else:
            draw.line([(x, y), (x + 28, y)], fill=color, width=2)
            draw.ellipse((x + 10, y - 4, x + 18, y + 4), fill=color)
        _text(draw, (x + 34, y), label, font, 'lm')


def psnr_chart(cells, scale, labels=None):
    """The chart of one scale as a PIL image (panels side by side, legend below), or None without data."""
    sets, bits, lines, fp = chart_data(cells, scale)
    if not sets:
        return None
    font = _font()
    entries, legend_width = legend_entries(list(lines), bool(fp), labels or {}, font)
    image = Image.new('RGB', (max(PANEL[0] * len(sets), legend_width), PANEL[1] + LEGEND_HEIGHT), 'white')
    for i, name in enumerate(sets):
        draw_panel(image, (i * PANEL[0], 0), name, scale, bits, lines, fp, font)
    draw_legend(image, PANEL[1], entries, list(lines), font)
    return image


def save_psnr_chart(cells, scale, path, labels=None):
    """Write the chart of ``scale`` to ``path`` (PNG, atomically); returns False when there is nothing to draw."""
    image = psnr_chart(cells, scale, labels)
    if image is None:
        return False
    with atomic_path(path) as tmp:
        image.save(tmp, format='PNG')
    return True
