"""Side-by-side crop comparisons: HR | bicubic | SR methods, each panel labelled with its PSNR.

Every panel shows the same window of its image, enlarged ``zoom``× by pixel replication (no
interpolation, so what is seen is exactly the pixels that were scored). The window is the most
textured one of the HR image (see ``textured_window``). Layout, ``n`` panels of ``size`` px::

    width  = n · size · zoom + (n − 1) · GAP
    height = LABEL_HEIGHT + size · zoom        (labels on top, panels below)
"""
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from src.imresize import imresize
from src.metric import rgb_to_y
from src.files import atomic_path

CROP = 96
ZOOM = 2
GAP = 4
LABEL_HEIGHT = 34
BACKGROUND = (255, 255, 255)
TEXT_COLOR = (0, 0, 0)
FONT_SIZE = 13


def bicubic_upscale(lr, scale):
    """MATLAB-bicubic ×``scale`` of a uint8 LR image: the baseline an SR network has to beat."""
    return imresize(lr, scale)


def textured_window(hr, size=CROP):
    """(top, left, size) of the size×size window of ``hr`` with the largest sum of luma gradients
    ``|∂x Y| + |∂y Y|`` — fine texture (fur, text, grain), where SR methods differ most.

    The largest variance would pick a strong edge between two flat regions instead (the astronaut's
    helmet rim against black). Sums come from a summed-area table; ties go to the top-most, then
    left-most window. An image smaller than ``size`` gives a window of its shorter side.
    """
    y = rgb_to_y(hr) if hr.ndim == 3 else hr.astype(np.float64)
    size = min(size, *y.shape[:2])
    grad = np.zeros_like(y)
    grad[:, 1:] += np.abs(np.diff(y, axis=1))
    grad[1:, :] += np.abs(np.diff(y, axis=0))
    sums = np.pad(np.cumsum(np.cumsum(grad, 0), 1), ((1, 0), (1, 0)))
    window = sums[size:, size:] - sums[:-size, size:] - sums[size:, :-size] + sums[:-size, :-size]
    top, left = np.unravel_index(int(np.argmax(window)), window.shape)
    return int(top), int(left), size


def _font():
    # Pillow's bundled font at a readable size (a bitmap font where FreeType is missing): no font files needed
    return ImageFont.load_default(size=FONT_SIZE)


def _label(text, psnr, width):
    """The label strip of one panel; text wider than the panel is cut at the panel's edge."""
    strip = Image.new('RGB', (width, LABEL_HEIGHT), BACKGROUND)
    draw, font = ImageDraw.Draw(strip), _font()
    draw.text((2, 1), text, fill=TEXT_COLOR, font=font)
    draw.text((2, LABEL_HEIGHT // 2), 'reference' if psnr is None else f'{psnr:.2f} dB', fill=TEXT_COLOR, font=font)
    return strip


def compose_comparison(panels, window, zoom=ZOOM):
    """PIL image of ``panels`` = [(label, uint8 HxWx3 image, PSNR or None), …] cut at ``window``
    (top, left, size), side by side; every image must cover the window."""
    top, left, size = window
    side = size * zoom
    canvas = Image.new('RGB', (len(panels) * side + (len(panels) - 1) * GAP, LABEL_HEIGHT + side), BACKGROUND)
    for i, (text, image, psnr) in enumerate(panels):
        crop = np.asarray(image)[top:top + size, left:left + size]
        if crop.shape[:2] != (size, size):
            raise ValueError(f'panel {text!r} ({image.shape[1]}x{image.shape[0]}) does not cover window {window}')
        x = i * (side + GAP)
        canvas.paste(_label(text, psnr, side), (x, 0))
        canvas.paste(Image.fromarray(np.ascontiguousarray(crop.repeat(zoom, 0).repeat(zoom, 1))), (x, LABEL_HEIGHT))
    return canvas


def save_comparison(path, panels, size=CROP, zoom=ZOOM):
    """Write the comparison PNG of ``panels`` (the first is the HR reference, which picks the window)
    atomically to ``path``; returns the window (top, left, size)."""
    window = textured_window(panels[0][1], size)
    with atomic_path(path) as tmp:
        compose_comparison(panels, window, zoom).save(tmp, format='PNG')
    return window
