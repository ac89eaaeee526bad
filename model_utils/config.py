"""Model-zoo style configuration: YAML defaults → typed command-line flags → a validated ``Config``.

``DIV2K_config.yaml`` holds three YAML documents: the values, one help line per key, and the allowed
choices. Every key becomes a ``--key`` flag typed from its default; lists are Python literals
(``--int8_scope "['conv_first']"``). ``--config_path`` picks another YAML, which may set any subset of
the known keys; an unknown key is an error, never silently ignored. The environment variable
``DEVICE_ID`` (model-zoo launch scripts) overrides the YAML's ``device_id``; a ``--device_id`` flag wins.
``Config.explicit`` names the keys the user set (flag or YAML), so a conflicting explicit value can be refused.
"""
import argparse
import ast
import os

import yaml

from src.errors import UserError

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'DIV2K_config.yaml')
BITS = tuple(range(2, 9)) + (32,)
MIN_CHOP_TILE = 32  # LR px; smaller tiles are mostly overlap (EDSR-baseline sees ~35 px): slow, no memory gain


class Config:
    """Attribute access to the merged settings; read-only after validation."""

    def __init__(self, values, explicit=()):
        object.__setattr__(self, '_values', dict(values))
        object.__setattr__(self, 'explicit', frozenset(explicit))

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


def _user_file(values, path):
    """The settings of a user YAML, refusing keys the project does not know."""
    user, _, _ = parse_yaml(path)
    unknown = sorted(set(user) - set(values))
    if unknown:
        raise UserError(f"unknown config key '{unknown[0]}' in {path}: remove it "
                        f"(see {os.path.basename(DEFAULT_CONFIG)} for valid keys)")
    return user


def _from_environment(values, explicit):
    """Model-zoo launch scripts pass the device through ``DEVICE_ID``; an explicit flag wins."""
    if 'device_id' not in explicit and os.environ.get('DEVICE_ID', '').strip():
        try:
            values['device_id'] = int(os.environ['DEVICE_ID'])
        except ValueError:
            raise UserError(f"environment variable DEVICE_ID={os.environ['DEVICE_ID']!r} is not an integer: "
                            'unset it or set a device index') from None


def get_config(argv=None, description=None):
    """Parse ``argv`` (default ``sys.argv[1:]``) into a validated ``Config``."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument('--config_path', default=DEFAULT_CONFIG)
    known, rest = pre.parse_known_args(argv)
    values, helps, choices = parse_yaml(DEFAULT_CONFIG)
    user = _user_file(values, known.config_path) if os.path.abspath(known.config_path) != DEFAULT_CONFIG else {}
    values = {**values, **user}
    parser = argparse.ArgumentParser(description=description, parents=[pre], argument_default=argparse.SUPPRESS)
    for key, default in values.items():
        parser.add_argument(f'--{key}', type=_typed(default), help=f'{helps.get(key, "")} (default: {default!r})')
    given = vars(parser.parse_args(rest))
    given.pop('config_path', None)
    merged = {**values, **given, 'config_path': known.config_path}
    explicit = set(user) | set(given)
    _from_environment(merged, explicit)
    validate(merged, choices)
    return Config(merged, explicit)


def make_config(overrides=None, config_path=None):
    """A validated ``Config`` from the YAML defaults and ``overrides`` ({key: value}), for code that runs
    the library without a command line (reproduce_tables.py, the demo); the overrides count as explicit."""
    values, _, choices = parse_yaml(DEFAULT_CONFIG)
    user = _user_file(values, config_path) if config_path else {}
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(values))
    if unknown:
        raise UserError(f"unknown config key '{unknown[0]}': see {os.path.basename(DEFAULT_CONFIG)} for valid keys")
    merged = {**values, **user, **overrides, 'config_path': config_path or DEFAULT_CONFIG}
    validate(merged, choices)
    return Config(merged, set(user) | set(overrides))


def parse_assignment(text):
    """'key=value' → (key, value typed like the key's YAML default), for scripts that set config keys."""
    key, sep, raw = text.partition('=')
    values = parse_yaml(DEFAULT_CONFIG)[0]
    if not sep or key not in values:
        raise UserError(f"--set {text!r}: expected KEY=VALUE with a key of {os.path.basename(DEFAULT_CONFIG)}")
    try:
        return key, _typed(values[key])(raw)
    except (argparse.ArgumentTypeError, ValueError) as e:
        raise UserError(f'--set {text!r}: {e}') from None


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
    for key in ('num_calib_images', 'calib_batch_size', 'dbdc_bins', 'pac_batch_size', 'pac_log_every', 'batch_size'):
        if values[key] < 1:
            raise UserError(f'--{key} must be at least 1 (got {values[key]})')
    for key in ('calib_batches', 'pac_iters', 'adaround_iters', 'patch_size', 'chop_overlap', 'num_threads', 'device_id'):
        if values[key] < 0:
            raise UserError(f'--{key} must be 0 or more (got {values[key]})')
    if values['chop_tile'] < MIN_CHOP_TILE:
        raise UserError(f"--chop_tile {values['chop_tile']} is too small: use at least {MIN_CHOP_TILE} LR pixels "
                        '(memory depends on the tile, so smaller tiles only add overlap work)')
    if values['chop_overlap'] >= values['chop_tile']:
        raise UserError(f"--chop_overlap {values['chop_overlap']} must be smaller than --chop_tile "
                        f"{values['chop_tile']}: e.g. --chop_overlap 16")
    for key in ('dbdc_p', 'dbdc_p_8bit', 'percentile_p'):
        if not 0 <= values[key] < 0.5:
            raise UserError(f'--{key} {values[key]} must be in [0, 0.5)')
    if values['method'] == 'fp' and (values['w_bit'] != 32 or values['a_bit'] != 32):
        raise UserError(f"--method fp with --w_bit {values['w_bit']} --a_bit {values['a_bit']}: "
                        'choose a calibration method (minmax, percentile, dbdc, ptq4sr)')
    if values['method'] == 'fp' and values['int_zero_point'] and not values['quant_ckpt']:
        raise UserError('--int_zero_point True with --method fp quantizes nothing: '
                        'choose a calibration method (minmax, percentile, dbdc, ptq4sr) or drop it')
