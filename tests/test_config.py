"""model_utils.config: YAML defaults, typed CLI overrides, user YAML overlays and every validation error."""
import pytest
import yaml

from model_utils.config import DEFAULT_CONFIG, get_config, make_config, parse_assignment, parse_yaml
from src.errors import UserError


@pytest.fixture(autouse=True)
def no_device_id(monkeypatch):
    monkeypatch.delenv('DEVICE_ID', raising=False)


def test_no_arguments_give_the_yaml_defaults():
    values, helps, choices = parse_yaml(DEFAULT_CONFIG)
    config = get_config([])
    assert {k: v for k, v in config.to_dict().items() if k != 'config_path'} == values
    assert config.config_path == DEFAULT_CONFIG
    # every key is documented, and the published settings are the defaults
    assert set(helps) == set(values)
    assert (config.scale, config.method, config.w_bit, config.a_bit) == (4, 'fp', 32, 32)
    assert config.int8_scope == ['conv_first', 'conv_last'] and config.pac_lr_act == [5e-3, 2e-3]
    assert choices['device_target'] == ['Ascend', 'GPU', 'CPU']
    assert (config.run_distribute, config.amp_level, choices['amp_level']) == (False, 'O0', ['O0', 'O2', 'O3'])


def test_cli_overrides_are_typed_from_the_defaults():
    config = get_config(['--scale', '2', '--dbdc_p', '5e-4', '--save_sr', 'True', '--int8_scope', "['conv_first']",
                         '--pac_lr_act', '[1e-2, 1e-3]', '--data_path', '/data', '--method', 'dbdc',
                         '--w_bit', '4', '--a_bit', '6', '--fp_scope', '[]'])
    assert config.scale == 2 and type(config.scale) is int
    assert config.dbdc_p == 5e-4 and type(config.dbdc_p) is float
    assert config.save_sr is True
    assert config.int8_scope == ['conv_first'] and config.fp_scope == []
    assert config.pac_lr_act == [1e-2, 1e-3]
    assert (config.data_path, config.method, config.w_bit, config.a_bit) == ('/data', 'dbdc', 4, 6)
    assert get_config(['--save_sr', 'False']).save_sr is False


def test_integer_for_a_float_key_becomes_float():
    config = get_config(['--pac_fea_weight', '2'])
    assert config.pac_fea_weight == 2.0 and type(config.pac_fea_weight) is float


def test_user_yaml_overrides_a_subset_and_cli_wins(tmp_path):
    path = tmp_path / 'mine.yaml'
    path.write_text(yaml.safe_dump({'scale': 2, 'method': 'minmax', 'w_bit': 8, 'a_bit': 8,
                                    'fp_scope': ['upsample']}))
    config = get_config(['--config_path', str(path)])
    assert (config.scale, config.method, config.w_bit, config.a_bit) == (2, 'minmax', 8, 8)
    assert config.fp_scope == ['upsample']
    assert config.dbdc_p == 1e-4 and config.int8_scope == ['conv_first', 'conv_last']  # untouched keys keep defaults
    assert config.config_path == str(path)
    assert get_config(['--config_path', str(path), '--scale', '3']).scale == 3


def test_unknown_key_in_user_yaml_is_named(tmp_path):
    path = tmp_path / 'typo.yaml'
    path.write_text('scale: 2\nw_bits: 4\n')
    with pytest.raises(UserError, match="unknown config key 'w_bits'"):
        get_config(['--config_path', str(path)])


def test_user_yaml_unreadable_or_wrong_type(tmp_path):
    with pytest.raises(UserError, match='cannot read config'):
        get_config(['--config_path', str(tmp_path / 'absent.yaml')])
    bad = tmp_path / 'bad.yaml'
    bad.write_text('scale: [2\n')
    with pytest.raises(UserError, match='not valid YAML'):
        get_config(['--config_path', str(bad)])
    wrong = tmp_path / 'wrong.yaml'
    wrong.write_text('scale: 4.0\nint8_scope: conv_first\n')
    with pytest.raises(UserError, match='--scale 4.0 should be of type int'):
        get_config(['--config_path', str(wrong)])


@pytest.mark.parametrize('argv, message', [
    (['--w_bit', '1'], '--w_bit 1 is out of range'),
    (['--w_bit', '9'], '--w_bit 9 is out of range'),
    (['--a_bit', '16'], '--a_bit 16 is out of range'),
    (['--scale', '5'], "--scale 5 is not allowed: choose one of \\[2, 3, 4\\]"),
    (['--method', 'foo'], "--method 'foo' is not allowed"),
    (['--device_target', 'TPU'], "--device_target 'TPU' is not allowed: choose one of \\['Ascend', 'GPU', 'CPU'\\]"),
    (['--pac_lr_act', '[1]'], '--pac_lr_act must be \\[start, end\\]'),
    (['--pac_lr_weight', '[-1, 1]'], '--pac_lr_weight must be \\[start, end\\]'),
    (['--method', 'fp', '--w_bit', '4'], '--method fp with --w_bit 4'),
    (['--a_bit', '4'], '--method fp with --w_bit 32 --a_bit 4'),
    (['--int8_scope', '[1]'], '--int8_scope must be a list of layer-name substrings'),
    (['--int8_scope', "'conv_first'"], '--int8_scope .conv_first. should be of type list'),
    (['--save_sr', '1'], '--save_sr 1 should be of type bool'),
    (['--run_distribute', '1'], '--run_distribute 1 should be of type bool'),
    (['--dbdc_p', '0.7'], '--dbdc_p 0.7 must be in \\[0, 0.5\\)'),
    (['--calib_batch_size', '0'], '--calib_batch_size must be at least 1'),
    (['--pac_iters', '-1'], '--pac_iters must be 0 or more'),
    (['--num_threads', '-2'], '--num_threads must be 0 or more'),
    (['--chop_tile', '8'], '--chop_tile 8 is too small: use at least 32'),
    (['--chop_tile', '32', '--chop_overlap', '32'], '--chop_overlap 32 must be smaller than --chop_tile 32'),
])
def test_bad_values_are_user_errors_naming_the_flag(argv, message):
    with pytest.raises(UserError, match=message):
        get_config(argv)


@pytest.mark.parametrize('argv', [['--no_such_flag', '1'], ['--scale', 'four'], ['--save_sr', 'maybe(']])
def test_argparse_rejects_unknown_flags_and_untyped_values(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        get_config(argv)
    assert exit_info.value.code == 2
    assert 'error:' in capsys.readouterr().err


def test_config_is_read_only():
    config = get_config([])
    with pytest.raises(AttributeError, match='read-only'):
        config.scale = 2
    with pytest.raises(AttributeError):
        config.no_such_key  # noqa: B018
    assert config.scale == 4
    copy = config.to_dict()
    copy['scale'] = 2
    assert config.scale == 4


def test_explicit_keys_are_the_ones_the_user_set(tmp_path):
    path = tmp_path / 'mine.yaml'
    path.write_text('w_bit: 4\n')
    config = get_config(['--config_path', str(path), '--a_bit', '4', '--method', 'dbdc', '--scale', '4'])
    assert config.explicit == {'w_bit', 'a_bit', 'method', 'scale'}  # --scale 4 equals the default, still explicit
    assert get_config([]).explicit == set()


def test_device_id_comes_from_the_environment_unless_given(monkeypatch):
    monkeypatch.setenv('DEVICE_ID', '3')
    assert get_config([]).device_id == 3
    assert get_config(['--device_id', '1']).device_id == 1
    monkeypatch.setenv('DEVICE_ID', 'x')
    with pytest.raises(UserError, match="DEVICE_ID='x' is not an integer"):
        get_config([])


def test_make_config_validates_and_marks_overrides_explicit():
    config = make_config({'scale': 2, 'w_bit': 4, 'a_bit': 4, 'method': 'dbdc'})
    assert (config.scale, config.method, config.dbdc_p) == (2, 'dbdc', 1e-4)
    assert config.explicit == {'scale', 'w_bit', 'a_bit', 'method'}
    with pytest.raises(UserError, match='--w_bit 9 is out of range'):
        make_config({'w_bit': 9})
    with pytest.raises(UserError, match="unknown config key 'w_bits'"):
        make_config({'w_bits': 4})


def test_assignments_are_typed_like_the_flags():
    assert parse_assignment('pac_iters=10') == ('pac_iters', 10)
    assert parse_assignment('dbdc_p=5e-4') == ('dbdc_p', 5e-4)
    assert parse_assignment("int8_scope=['conv_first']") == ('int8_scope', ['conv_first'])
    for text in ('pac_iters', 'no_key=1', 'pac_iters=ten'):
        with pytest.raises(UserError, match='--set'):
            parse_assignment(text)
