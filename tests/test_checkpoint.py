"""Checkpoint reading without torch: hand-written .pt files with known tensors, the shared reference models,
numpy re-implementations of EDSR-PyTorch and the model zoo's EDSR as references, and every error path."""
import hashlib
import os
import pathlib
import pickle
import struct
import subprocess
import sys
import zipfile

import mindspore as ms
import numpy as np
import pytest

from src.models.build import build_net
from src.checkpoint import CheckpointInfo, load_weights, read_checkpoint, save_mindspore_checkpoint
from src.models.edsr import RGB_MEAN
from src.errors import UserError
from src.torch_pickle import load_torch_file

REPO = pathlib.Path(__file__).resolve().parents[1]
MEAN = np.array(RGB_MEAN)
_STORAGE_NAMES = {np.dtype('float32'): 'FloatStorage', np.dtype('float16'): 'HalfStorage',
                  np.dtype('int64'): 'LongStorage'}


# --- writing torch.save files by hand (opcodes of pickle protocol 2) ------------------------------------
def _global(module, name):
    return f'c{module}\n{name}\n'.encode()


def _dumps(obj):  # a primitive's opcodes without PROTO/STOP (its BINPUTs are never read back)
    return pickle.dumps(obj, protocol=2)[2:-1]


def _tensor_ops(key, storage, offset, size, stride, legacy):
    pid = (_dumps('storage') + _global('torch', _STORAGE_NAMES[storage.dtype]) + _dumps(key) + _dumps('cpu')
           + _dumps(storage.size) + (b'N' if legacy else b''))
    return (_global('torch._utils', '_rebuild_tensor_v2') + b'((' + pid + b'tQ' + _dumps(offset)
            + _dumps(tuple(size)) + _dumps(tuple(stride)) + b'\x89' + _global('collections', 'OrderedDict')
            + b')Rt' + b'R')


def _dict_ops(tensors, storages, legacy):
    """OrderedDict opcodes; ``tensors``: name → array, or (storage, offset, size, stride) for odd layouts."""
    out = _global('collections', 'OrderedDict') + b')R('
    for name, spec in tensors.items():
        if isinstance(spec, np.ndarray):
            spec = (spec.reshape(-1), 0, spec.shape, [s // spec.itemsize for s in spec.strides])
        key = next((k for k, s in storages.items() if s is spec[0]), str(len(storages)))
        storages[key] = spec[0]
        out += _dumps(name) + _tensor_ops(key, *spec, legacy)
    return out + b'u'


def _pickle(state, storages, legacy=False):
    if 'params' in state:  # BasicSR wrapping
        items = b''.join(_dumps(k) + _dict_ops(v, storages, legacy) for k, v in state.items())
        return b'\x80\x02}(' + items + b'u.'
    return b'\x80\x02' + _dict_ops(state, storages, legacy) + b'.'


def write_torch_zip(path, state):
    """A zip-format torch.save file holding ``state``; returns ``path``."""
    storages = {}
    data = _pickle(state, storages)
    with zipfile.ZipFile(path, 'w') as archive:
        archive.writestr('archive/data.pkl', data)
        archive.writestr('archive/byteorder', 'little')
        for key, array in storages.items():
            archive.writestr(f'archive/data/{key}', array.astype(array.dtype.newbyteorder('<')).tobytes())
        archive.writestr('archive/version', '3\n')
    return path


def write_torch_legacy(path, state):
    storages = {}
    data = _pickle(state, storages, legacy=True)
    head = b''.join(pickle.dumps(v, protocol=2) for v in
                    (0x1950a86a20f9469cfc6c, 1001, {'protocol_version': 1001, 'little_endian': True}))
    tail = b''.join(struct.pack('<q', a.size) + a.tobytes() for a in storages.values())
    pathlib.Path(path).write_bytes(head + data + pickle.dumps(list(storages), protocol=2) + tail)


# --- numpy references ---------------------------------------------------------------------------------
def conv(x, w, b):
    """PyTorch Conv2d (stride 1, zero padding k//2) on one (C, H, W) image, as a sum over the k×k taps."""
    k, (h, wd) = w.shape[-1], x.shape[1:]
    xp = np.pad(x, ((0, 0), (k // 2, k // 2), (k // 2, k // 2)))
    out = np.zeros((w.shape[0], h, wd)) + b[:, None, None]
    for i in range(k):
        for j in range(k):
            out += np.einsum('oc,chw->ohw', w[:, :, i, j], xp[:, i:i + h, j:j + wd])
    return out


def shuffle(x, r, depth_to_space=False):
    """Pixel shuffle: out[c, h·r+i, w·r+j] = x[c·r² + i·r + j, h, w] (PyTorch) or x[(i·r+j)·C + c] (zoo)."""
    c = x.shape[0] // (r * r)
    out = np.zeros((c, x.shape[1] * r, x.shape[2] * r))
    for i in range(r):
        for j in range(r):
            s = i * r + j
            out[:, i::r, j::r] = x[s * c:(s + 1) * c] if depth_to_space else x[s::r * r]
    return out


def edsr_forward(sd, x, names, depth_to_space=False):
    """EDSR (res_scale 1) on raw tensors ``sd`` in float64 from the first conv on; ``names``: the key layout."""
    def apply(name, y):
        return conv(y, sd[f'{name}.weight'], sd[f'{name}.bias'])

    x = res = apply(names['head'], x)
    i = 0
    while f'body.{i}.{names["c1"]}.weight' in sd:
        res, i = res + apply(f'body.{i}.{names["c2"]}', np.maximum(apply(f'body.{i}.{names["c1"]}', res), 0)), i + 1
    res = apply(f'body.{i}', res) + x
    for name in (f'{names["up"]}.0', f'{names["up"]}.2'):
        if f'{name}.weight' in sd:
            out_ch, in_ch = sd[f'{name}.weight'].shape[:2]
            res = shuffle(apply(name, res), round((out_ch / in_ch) ** 0.5), depth_to_space)
    return apply('tail.1', res)


PYTORCH_NAMES = {'head': 'head.0', 'c1': 'body.0', 'c2': 'body.2', 'up': 'tail.0'}
ZOO_NAMES = {'head': 'head.0', 'c1': 'conv1', 'c2': 'conv2', 'up': 'tail.0.up'}


def run_net(net, x):
    return net(ms.Tensor(x[None].astype(np.float32))).asnumpy()[0].astype(np.float64)


def assert_close_relative(got, want, rtol=1e-5):
    assert np.abs(got - want).max() <= rtol * np.abs(want).max()


def tiny_edsr_pytorch(scale, seed=0, feat=8, blocks=2):
    rng = np.random.default_rng(seed)
    shapes = {'head.0': (feat, 3, 3), 'tail.1': (3, feat, 3), f'body.{blocks}': (feat, feat, 3),
              **{f'body.{i}.body.{j}': (feat, feat, 3) for i in range(blocks) for j in (0, 2)},
              **{f'tail.0.{k}': (feat * (9 if scale == 3 else 4), feat, 3) for k in ((0, 2) if scale == 4 else (0,))}}
    sd = {'sub_mean.weight': np.eye(3, dtype=np.float32).reshape(3, 3, 1, 1),
          'sub_mean.bias': (-255 * MEAN).astype(np.float32)}
    for name, (o, i, k) in shapes.items():
        sd[f'{name}.weight'] = (rng.standard_normal((o, i, k, k)) / (3 * i) ** 0.5).astype(np.float32)
        sd[f'{name}.bias'] = rng.uniform(-1, 1, o).astype(np.float32)
    sd.update({'add_mean.weight': sd['sub_mean.weight'], 'add_mean.bias': (255 * MEAN).astype(np.float32)})
    return sd


# --- the reader ---------------------------------------------------------------------------------------
ODD = np.arange(12, dtype=np.float32)
ODD_STATE = {'transposed': (ODD, 0, (4, 3), (1, 4)), 'offset_strided': (ODD, 5, (2,), (3,)),
             'half': np.array([0.5, -2.0, 3.25], np.float16), 'scalar': (np.array([7, -9], np.int64), 1, (), ())}
ODD_WANT = {'transposed': ODD.reshape(3, 4).T, 'offset_strided': np.array([5, 8], np.float32),
            'half': ODD_STATE['half'], 'scalar': np.array(-9, np.int64)}


@pytest.mark.parametrize('writer', [write_torch_zip, write_torch_legacy])
def test_reader_round_trips_layouts_exactly(tmp_path, writer):
    writer(tmp_path / 'odd.pt', ODD_STATE)
    got = load_torch_file(tmp_path / 'odd.pt')
    assert list(got) == list(ODD_WANT)
    for name, want in ODD_WANT.items():
        assert got[name].dtype == want.dtype and got[name].shape == want.shape
        np.testing.assert_array_equal(got[name], want)
        assert got[name].flags.c_contiguous and got[name].flags.writeable


def test_basicsr_params_preferred_over_ema_unless_asked(tmp_path):
    sd = tiny_edsr_pytorch(2)
    ours, _ = read_checkpoint(write_torch_zip(tmp_path / 'e.pt', sd))
    ema = {k: v + 1 for k, v in ours.items()}
    write_torch_zip(tmp_path / 'b.pth', {'params': ours, 'params_ema': ema})
    params, info = read_checkpoint(tmp_path / 'b.pth')
    assert info == CheckpointInfo('edsr_baseline', 2, 8, 2, 'basicsr')
    np.testing.assert_array_equal(params['conv_first.bias'], ours['conv_first.bias'])
    params, _ = read_checkpoint(tmp_path / 'b.pth', param_key='params_ema')
    np.testing.assert_array_equal(params['conv_first.bias'], ema['conv_first.bias'])


@pytest.mark.parametrize('scale', [2, 3, 4])
def test_edsr_pytorch_mapping_matches_numpy_forward(tmp_path, scale):
    sd = tiny_edsr_pytorch(scale, seed=scale)
    net = build_net('edsr_baseline', scale, num_feat=8, num_block=2)
    info = load_weights(net, write_torch_zip(tmp_path / 't.pt', sd))
    assert info == CheckpointInfo('edsr_baseline', scale, 8, 2, 'edsr_pytorch')
    assert info.overrides == {'num_feat': 8, 'num_block': 2}
    assert read_checkpoint(tmp_path / 't.pt', arch='edsr')[1].arch == 'edsr'  # res_scale family of odd widths
    x = np.random.default_rng(1).uniform(0, 1, (3, 5, 6))
    want = edsr_forward(sd, (x - MEAN[:, None, None]) * 255, PYTORCH_NAMES) / 255 + MEAN[:, None, None]
    assert_close_relative(run_net(net, x), want)


def test_zoo_ckpt_is_converted_to_equivalent_weights(tmp_path):
    rng = np.random.default_rng(3)
    sd = {k: v for k, v in tiny_edsr_pytorch(4, seed=4).items() if 'mean' not in k}
    zoo = {k.replace('.body.0.', '.conv1.').replace('.body.2.', '.conv2.').replace('tail.0.', 'tail.0.up.'): v
           for k, v in sd.items()}
    zoo = {k: (v / 255 * rng.uniform(0.5, 2, v.shape)).astype(np.float32) if k.endswith('bias') else v
           for k, v in zoo.items()}  # zoo-sized biases
    norm = {'norm.weight': np.full((1, 3, 1, 1), 1 / 255), 'norm.bias': -MEAN.reshape(1, 3, 1, 1),
            'de_norm.weight': np.full((1, 3, 1, 1), 255.0), 'de_norm.bias': 255 * MEAN.reshape(1, 3, 1, 1)}
    entries = [{'name': 'net.' + k, 'data': ms.Tensor(np.asarray(v, np.float32))} for k, v in {**zoo, **norm}.items()]
    entries += [{'name': 'moment1.head.0.weight', 'data': ms.Tensor(zoo['head.0.weight'])},
                {'name': 'global_step', 'data': ms.Tensor(np.array([5], np.int32))}]
    ms.save_checkpoint(entries, str(tmp_path / 'zoo.ckpt'))
    net = build_net('edsr_baseline', 4, num_feat=8, num_block=2)
    assert load_weights(net, str(tmp_path / 'zoo.ckpt')).fmt == 'mindspore_zoo'
    x = np.random.default_rng(5).uniform(0, 1, (3, 4, 5))
    want = edsr_forward(zoo, x - MEAN[:, None, None], ZOO_NAMES, depth_to_space=True)  # zoo: (x·255)/255 − mean
    assert_close_relative(run_net(net, x), want + MEAN[:, None, None])  # zoo de_norm: (y + mean)·255


def test_save_is_atomic_and_keeps_metadata(tmp_path):
    params = {'conv_first.weight': np.arange(6, dtype=np.float32).reshape(2, 3)}
    out = tmp_path / 'x.ckpt'
    save_mindspore_checkpoint(params, str(out), {'arch': 'edsr', 'scale': 3})
    save_mindspore_checkpoint(params, str(out), {'arch': 'edsr', 'scale': 3})  # replaces a read-only file
    loaded = ms.load_checkpoint(str(out))
    assert loaded['arch'] == 'edsr' and int(loaded['scale'].asnumpy()) == 3
    np.testing.assert_array_equal(loaded['conv_first.weight'].asnumpy(), params['conv_first.weight'])
    assert [p.name for p in tmp_path.iterdir()] == ['x.ckpt']
    with pytest.raises(TypeError):
        save_mindspore_checkpoint(params, str(out), {'shape': (1, 2)})


# --- error paths ----------------------------------------------------------------------------------------
class _Evil:
    def __reduce__(self):  # what an attacker's pickle.dumps would emit
        return os.system, ('touch pwned',)


def test_malicious_pickles_are_refused_without_running(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'bare.pt').write_bytes(pickle.dumps(_Evil(), protocol=2))
    with zipfile.ZipFile(tmp_path / 'zip.pt', 'w') as archive:
        archive.writestr('archive/data.pkl', b'\x80\x02' + _global('os', 'system') + _dumps(('touch pwned',)) + b'R.')
    for name, culprit in (('bare.pt', 'system'), ('zip.pt', 'os.system')):
        with pytest.raises(UserError, match=f'refusing to load .*{culprit}'):
            read_checkpoint(tmp_path / name)
    assert not (tmp_path / 'pwned').exists()


def test_unreadable_files_give_one_line_errors(tmp_path):
    write_torch_zip(tmp_path / 'ok.pt', tiny_edsr_pytorch(2))
    data = (tmp_path / 'ok.pt').read_bytes()
    (tmp_path / 'half.pt').write_bytes(data[:len(data) // 2])
    (tmp_path / 'text.pt').write_text('this is not a checkpoint\n')
    with zipfile.ZipFile(tmp_path / 'other.pt', 'w') as archive:
        archive.writestr('readme.txt', 'hello')
    (tmp_path / 'bad.ckpt').write_text('hello')
    cases = {'missing.pt': 'checkpoint not found', 'half.pt': 'truncated zip', 'text.pt': 'not a readable PyTorch',
             'other.pt': 'not a PyTorch checkpoint', 'bad.ckpt': 'not a readable MindSpore'}
    for name, message in cases.items():
        with pytest.raises(UserError, match=message) as err:
            read_checkpoint(tmp_path / name)
        assert '\n' not in str(err.value)


# --- the shared reference models ------------------------------------------------------------------------
SHARED_MODELS = {'edsr_baseline_x2.pt': (CheckpointInfo('edsr_baseline', 2, 64, 16, 'edsr_pytorch'), 1369859),
                 'edsr_baseline_x3.pt': (CheckpointInfo('edsr_baseline', 3, 64, 16, 'edsr_pytorch'), 1554499),
                 'edsr_baseline_x4.pt': (CheckpointInfo('edsr_baseline', 4, 64, 16, 'edsr_pytorch'), 1517571),
                 'MSRResNet_x2_f64b16.pth': (CheckpointInfo('msrresnet', 2, 64, 16, 'basicsr'), 1369859),
                 'MSRResNet_x4_f64b16.pth': (CheckpointInfo('msrresnet', 4, 64, 16, 'basicsr'), 1517571)}


@pytest.mark.parametrize('name', SHARED_MODELS)
def test_shared_models_detected_and_loaded(shared_dir, name):
    want_info, want_count = SHARED_MODELS[name]
    params, info = read_checkpoint(shared_dir / 'models' / name)
    assert info == want_info and info.overrides == {}
    net = build_net(info.arch, info.scale)
    assert load_weights(net, shared_dir / 'models' / name) == info
    assert sum(v.size for v in params.values()) == sum(p.size for p in net.get_parameters()) == want_count
    for pname, p in net.parameters_dict().items():
        np.testing.assert_array_equal(p.asnumpy(), params[pname])


def test_edsr_x4_matches_numpy_reference_on_raw_tensors(shared_dir):
    raw = load_torch_file(shared_dir / 'models' / 'edsr_baseline_x4.pt')
    np.testing.assert_array_equal(raw['sub_mean.weight'][:, :, 0, 0], np.eye(3))
    np.testing.assert_allclose(raw['sub_mean.bias'], -255 * MEAN, rtol=1e-6)
    net = build_net('edsr_baseline', 4)
    load_weights(net, shared_dir / 'models' / 'edsr_baseline_x4.pt', arch='edsr_baseline', scale=4)
    x = np.random.default_rng(0).uniform(0, 1, (3, 6, 7))
    ref = edsr_forward(raw, conv(x * 255, raw['sub_mean.weight'], raw['sub_mean.bias']), PYTORCH_NAMES)
    want = conv(ref, raw['add_mean.weight'], raw['add_mean.bias']) / 255
    assert_close_relative(run_net(net, x), want)


def test_mismatches_and_truncation_name_the_fix(shared_dir, tmp_path):
    x2 = shared_dir / 'models' / 'edsr_baseline_x2.pt'
    with pytest.raises(UserError, match=r'EDSR-baseline ×2 but --scale 4 was given: pass --scale 2 or a ×4'):
        load_weights(build_net('edsr_baseline', 4), x2, scale=4)
    with pytest.raises(UserError, match=r'EDSR-baseline ×2 but --scale 4'):  # the net's scale is checked too
        load_weights(build_net('edsr_baseline', 4), x2)
    with pytest.raises(UserError, match=r'but --arch msrresnet was given: pass --arch edsr_baseline'):
        load_weights(build_net('msrresnet', 2), x2, arch='msrresnet')
    with pytest.raises(UserError, match=r'does not fit the network \(missing: conv_after_body'):
        load_weights(build_net('edsr_baseline', 2), shared_dir / 'models' / 'MSRResNet_x2_f64b16.pth')
    (tmp_path / 'half.pt').write_bytes(x2.read_bytes()[:x2.stat().st_size // 2])
    with pytest.raises(UserError, match='damaged or truncated zip'):
        read_checkpoint(tmp_path / 'half.pt')


def test_convert_script_round_trip(shared_dir, tmp_path):
    src, out = shared_dir / 'models' / 'edsr_baseline_x2.pt', tmp_path / 'x2.ckpt'
    script = str(REPO / 'scripts' / 'convert_checkpoint.py')
    done = subprocess.run([sys.executable, script, '--input', str(src), '--output', str(out), '--scale', '2'],
                          cwd=tmp_path, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith('EDSR-baseline ×2, 1,369,859 parameters')
    (want, info), (got, info_back) = read_checkpoint(src), read_checkpoint(out)
    assert info_back == CheckpointInfo('edsr_baseline', 2, 64, 16, 'mindspore') and info.fmt == 'edsr_pytorch'
    assert list(got) == list(want)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name])
    meta = ms.load_checkpoint(str(out))
    assert meta['source_sha256'] == hashlib.sha256(src.read_bytes()).hexdigest() and meta['arch'] == 'edsr_baseline'
    bad = subprocess.run([sys.executable, script, '--input', str(tmp_path / 'nope.pt'), '--output', str(out)],
                         cwd=tmp_path, capture_output=True, text=True, check=False)
    lines = [line for line in bad.stderr.splitlines() if not line.startswith('[WARNING]')]
    assert bad.returncode == 2 and len(lines) == 1 and lines[0].startswith('error: checkpoint not found')
