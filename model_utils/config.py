"""Model-zoo style configuration: YAML defaults → typed command-line flags → a validated ``Config``.

``DIV2K_config.yaml`` holds three YAML documents: the values, one help line per key, and the allowed
choices. Every key becomes a ``--key`` flag typed from its default; lists are Python literals
(``--int8_scope "['conv_first']"``). ``--config_path`` picks another YAML, which may set any subset of
the known keys; an unknown key is an error, never silently ignored.
"""
import argparse
import ast
import os

import yaml

from src.errors import UserError

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'DIV2K_config.yaml')
BITS = tuple(range(2, 9)) + (32,)


class Config:
    """Attribute access to the merged settings; read-only after validation."""

    def __init__(self, values):
        object.__setattr__(self, '_values', dict(values))

    def __getattr__(self, key):
        try:
            return self._values[key]
        except KeyError:
            raise AttributeError(key) from None

    def __setattr__(self, key, value):
        raise AttributeError('Config is read-only: pass values as arguments instead of changing it')

    def to_dict(self):
        return dict(self._values)

    def __repr__(self):
        width = max(map(len, self._values))
        return '\n'.join(f'{k:<{width}} : {v!r}' for k, v in self._values.items())


def parse_yaml(path):
    """Return (values, helps, choices) from a 1–3 document YAML file."""
    try:
        with open(path, encoding='utf-8') as f:
            docs = [d or {} for d in yaml.safe_load_all(f)]
    except OSError as e:
        raise UserError(f'cannot read config {path}: {e.strerror}; pass an existing --config_path') from None
    except yaml.YAMLError as e:
        raise UserError(f'config {path} is not valid YAML ({str(e).splitlines()[0]}): fix the file') from None
    if not docs or not all(isinstance(d, dict) for d in docs) or len(docs) > 3:
        raise UserError(f'config {path} must hold 1 to 3 YAML mappings (values, help, choices)')
    docs += [{}] * (3 - len(docs))
    return docs[0], docs[1], docs[2]


def _typed(default):
    """argparse ``type`` for a key, derived from its YAML default."""
    if isinstance(default, (bool, list)):
        def parse(text):
            try:
                return ast.literal_eval(text)
            except (ValueError, SyntaxError):
                raise argparse.ArgumentTypeError(f'{text!r} is not a Python literal') from None
        return parse
    return type(default) if isinstance(default, (int, float)) else str


def _merge_file(values, path):
    """Overlay a user YAML on the defaults, refusing keys the project does not know."""
    user, _, _ = parse_yaml(path)
    unknown = sorted(set(user) - set(values))
    if unknown:
        raise UserError(f"unknown config key '{unknown[0]}' in {path}: remove it "
                        f"(see {os.path.basename(DEFAULT_CONFIG)} for valid keys)")
    return {**values, **user}


def get_config(argv=None, description=None):
    """Parse ``argv`` (default ``sys.argv[1:]``) into a validated ``Config``."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument('--config_path', default=DEFAULT_CONFIG)
    known, rest = pre.parse_known_args(argv)
    values, helps, choices = parse_yaml(DEFAULT_CONFIG)
    if os.path.abspath(known.config_path) != DEFAULT_CONFIG:
        values = _merge_file(values, known.config_path)
    parser = argparse.ArgumentParser(description=description, parents=[pre])
    for key, default in values.items():
        parser.add_argument(f'--{key}', type=_typed(default), default=default,
                            help=f'{helps.get(key, "")} (default: {default!r})')
    args = parser.parse_args(rest)
    merged = {k: getattr(args, k) for k in values}
    merged['config_path'] = known.config_path
    validate(merged, choices)
    return Config(merged)


def validate(values, choices):
    """Raise UserError on the first bad value, naming the key, the value and what is allowed."""
    defaults = parse_yaml(DEFAULT_CONFIG)[0]
    for key, allowed in choices.items():
        if values[key] not in allowed:
            raise UserError(f'--{key} {values[key]!r} is not allowed: choose one of {allowed}')
    for key, default in defaults.items():
        expected = float if isinstance(default, float) else type(default)
        value = values[key]
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            values[key] = value = float(value)
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise UserError(f'--{key} {value!r} should be of type {expected.__name__} like {default!r}')
    for key in ('w_bit', 'a_bit'):
        if values[key] not in BITS:
            raise UserError(f'--{key} {values[key]} is out of range: use 2..8, or 32 for full precision')
    for key in ('int8_scope', 'fp_scope'):
        if not all(isinstance(s, str) for s in values[key]):
            raise UserError(f'--{key} must be a list of layer-name substrings, e.g. "[\'conv_first\']"')
    for key in ('pac_lr_act', 'pac_lr_weight'):
        lr = values[key]
        if len(lr) != 2 or not all(isinstance(v, (int, float)) and v >= 0 for v in lr):
            raise UserError(f'--{key} must be [start, end] learning rates, e.g. "[5e-3, 2e-3]"')
    for key in ('num_calib_images', 'calib_batch_size', 'dbdc_bins', 'pac_batch_size', 'chop_tile', 'pac_log_every'):
        if values[key] < 1:
            raise UserError(f'--{key} must be at least 1 (got {values[key]})')
    for key in ('calib_batches', 'pac_iters', 'patch_size', 'chop_overlap'):
        if values[key] < 0:
            raise UserError(f'--{key} must be 0 or more (got {values[key]})')
    for key in ('dbdc_p', 'dbdc_p_8bit', 'percentile_p'):
        if not 0 <= values[key] < 0.5:
            raise UserError(f'--{key} {values[key]} must be in [0, 0.5)')
    if values['method'] == 'fp' and (values['w_bit'] != 32 or values['a_bit'] != 32):
        raise UserError(f"--method fp with --w_bit {values['w_bit']} --a_bit {values['a_bit']}: "
                        'choose a calibration method (minmax, percentile, dbdc, ptq4sr)')
