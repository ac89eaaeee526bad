"""scripts/download.py against local mirrors only (file:// folders and a localhost HTTP server): hash checks,
atomic renames, resume by seek and by HTTP Range, skipping verified files, archive layout as eval.py reads it."""
import dataclasses
import hashlib
import http.server
import importlib.util
import io
import os
import socket
import subprocess
import sys
import tarfile
import threading
import zipfile

import numpy as np
import pytest
from PIL import Image

from conftest import message_line
from src.dataset import calibration_folder, set_folders

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, 'scripts', 'download.py')
_spec = importlib.util.spec_from_file_location('download', SCRIPT)
download = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(download)

CKPT_NAME = 'edsr_baseline_x4-6b446fab.pt'  # the official file name; the fake bytes are not the official file
CKPT_BYTES = np.random.RandomState(0).bytes(300_000)


def png_bytes(h, w, seed):
    buf = io.BytesIO()
    Image.fromarray(np.random.RandomState(seed).randint(0, 256, (h, w, 3)).astype(np.uint8)).save(buf, 'PNG')
    return buf.getvalue()


def write_tar(path, files):
    with tarfile.open(path, 'w') as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def write_zip(path, files):
    with zipfile.ZipFile(path, 'w') as z:
        for name, data in files.items():
            z.writestr(name, data)


@pytest.fixture
def mirror(tmp_path):
    """A folder laid out like the real servers: checkpoint, benchmark.tar and DIV2K zips (tiny PNGs)."""
    folder = tmp_path / 'mirror'
    folder.mkdir()
    (folder / CKPT_NAME).write_bytes(CKPT_BYTES)
    write_tar(folder / 'benchmark.tar', {
        'benchmark/Set5/HR/baby.png': png_bytes(8, 8, 1), 'benchmark/Set5/LR_bicubic/X2/babyx2.png': png_bytes(4, 4, 2),
        'benchmark/Set14/HR/lenna.png': png_bytes(8, 8, 3)})
    write_zip(folder / 'DIV2K_valid_HR.zip', {'DIV2K_valid_HR/0801.png': png_bytes(8, 8, 4)})
    for split, image in (('valid', '0801'), ('train', '0001')):
        for scale in (2, 3):
            write_zip(folder / f'DIV2K_{split}_LR_bicubic_X{scale}.zip',
                      {f'DIV2K_{split}_LR_bicubic/X{scale}/{image}x{scale}.png': png_bytes(4, 4, scale)})
    write_zip(folder / 'DIV2K_train_HR.zip', {'README.txt': b'not the HR images'})
    return folder


@pytest.fixture
def known_hash(monkeypatch):
    """Make the catalogue expect the fake checkpoint (as SPEC gives the real one: prefix…suffix and size)."""
    def expect(sha256, size=None):
        items = [dataclasses.replace(i, sha256=sha256, size=size) if i.name == 'edsr_baseline_x4' else i
                 for i in download.CATALOG]
        monkeypatch.setattr(download, 'CATALOG', items)
    return expect


def run(root, mirror, *args):
    return download.main([*args, '--root', str(root), '--url-base', mirror.as_uri()])


def run_process(root, mirror_url, *args):
    return subprocess.run([sys.executable, SCRIPT, *args, '--root', str(root), '--url-base', mirror_url],
                          capture_output=True, text=True, timeout=60)


DIGEST = hashlib.sha256(CKPT_BYTES).hexdigest()


def test_hash_matches_full_prefix_suffix_and_prefix():
    assert download.hash_matches(DIGEST, DIGEST)
    assert download.hash_matches(f'{DIGEST[:8]}…{DIGEST[-4:]}', DIGEST)
    assert download.hash_matches(f'{DIGEST[:8].upper()}...{DIGEST[-4:]}', DIGEST)
    assert download.hash_matches(DIGEST[:8], DIGEST) and download.hash_matches('', DIGEST)
    assert not download.hash_matches(f'{DIGEST[:8]}…0000', DIGEST)
    assert not download.hash_matches('0' * 64, DIGEST)


def test_catalog_names_the_official_files():
    models = {i.name: i for i in download.CATALOG if i.group == 'models'}
    assert sorted(models) == [f'edsr{v}_x{s}' for v in ('_baseline', '') for s in (2, 3, 4)]
    for item in models.values():  # torch.hub convention: the name carries the first 8 hex digits of sha256
        assert item.url.startswith('https://cv.snu.ac.kr/research/EDSR/models/')
        assert item.url.endswith(f'-{item.sha256[:8]}.pt')
    assert models['edsr_baseline_x2'].sha256 == '1bc95232…e171' and models['edsr_baseline_x2'].size == 5490680
    div2k = [i.name for i in download.CATALOG if i.group == 'div2k']
    assert len(div2k) == 8 and 'DIV2K_valid_LR_bicubic_X4' in div2k


@pytest.mark.parametrize('spec, size, note', [
    (DIGEST, None, 'sha256 verified'),
    (f'{DIGEST[:8]}…{DIGEST[-4:]}', len(CKPT_BYTES), 'prefix…suffix and size verified')])
def test_download_and_verify(tmp_path, mirror, known_hash, capsys, spec, size, note):
    known_hash(spec, size)
    assert run(tmp_path / 'root', mirror, 'models', '--only', 'edsr_baseline_x4') == 0
    final = tmp_path / 'root' / 'models' / 'edsr_baseline_x4.pt'
    assert final.read_bytes() == CKPT_BYTES
    assert (tmp_path / 'root' / 'models' / 'edsr_baseline_x4.pt.sha256').read_text() == \
        f'{DIGEST}  edsr_baseline_x4.pt\n'  # sha256sum -c format
    assert sorted(os.listdir(tmp_path / 'root' / 'models')) == ['edsr_baseline_x4.pt', 'edsr_baseline_x4.pt.sha256']
    assert note in capsys.readouterr().out


def test_hash_mismatch_is_one_line_and_leaves_no_file(tmp_path, mirror):
    # the real catalogue hash (6b446fab…1723) does not fit the fake bytes
    result = run_process(tmp_path / 'root', mirror.as_uri(), 'models', '--only', 'edsr_baseline_x4')
    assert result.returncode == 2
    assert result.stderr.count('\n') == 1 and result.stderr.startswith(
        f'error: edsr_baseline_x4: downloaded file has sha256 {DIGEST[:8]}…{DIGEST[-4:]}, 300,000 bytes but '
        'sha256 6b446fab…1723 is expected'), result.stderr
    assert os.listdir(tmp_path / 'root' / 'models') == []


def test_size_mismatch_fails_even_when_the_hash_ends_match(tmp_path, mirror, known_hash):
    known_hash(f'{DIGEST[:8]}…{DIGEST[-4:]}', len(CKPT_BYTES) + 1)
    assert run(tmp_path / 'root', mirror, 'models', '--only', 'edsr_baseline_x4') == 2
    assert os.listdir(tmp_path / 'root' / 'models') == []


def test_unreachable_urls_exit_2(tmp_path, mirror):
    result = run_process(tmp_path / 'a', (mirror / 'absent').as_uri(), 'models', '--only', 'edsr_x2')
    assert result.returncode == 2 and result.stderr.count('\n') == 1
    assert result.stderr.startswith('error: cannot download file://') and 'No such file' in result.stderr
    with socket.socket() as s:  # a port nobody listens on
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    result = run_process(tmp_path / 'b', f'http://127.0.0.1:{port}', 'models', '--only', 'edsr_x2')
    assert result.returncode == 2 and result.stderr.count('\n') == 1
    assert result.stderr.startswith(f'error: cannot download http://127.0.0.1:{port}/edsr_x2-0edfb8a3.pt')
    result = run_process(tmp_path / 'c', mirror.as_uri(), 'models', '--only', 'edsr_x5')
    assert result.returncode == 2 and "--only edsr_x5 is not in 'models'" in result.stderr


def test_resume_from_half_written_part(tmp_path, mirror, known_hash, capsys):
    known_hash(DIGEST)
    part = tmp_path / 'root' / 'models' / 'edsr_baseline_x4.pt.part'
    part.parent.mkdir(parents=True)
    part.write_bytes(CKPT_BYTES[:120_000])
    assert run(tmp_path / 'root', mirror, 'models', '--only', 'edsr_baseline_x4') == 0
    assert (tmp_path / 'root' / 'models' / 'edsr_baseline_x4.pt').read_bytes() == CKPT_BYTES
    assert not part.exists()
    # resuming really seeks: a foreign prefix stays, only the missing tail is appended
    other = tmp_path / 'x.part'
    other.write_bytes(b'X' * 1000)
    download.fetch((mirror / CKPT_NAME).as_uri(), str(other))
    assert other.read_bytes() == b'X' * 1000 + CKPT_BYTES[1000:]


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the mirror with single 'bytes=N-' ranges (206), as web servers do; records the headers."""
    ranges = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        header = self.headers.get('Range')
        RangeHandler.ranges.append(header)
        if not self.server.cut_at and (not header or not self.server.honour_range):
            return super().do_GET()
        data = open(self.translate_path(self.path), 'rb').read()
        start = int(header.split('=')[1].rstrip('-')) if header else 0
        self.send_response(206 if header else 200)
        if header:
            self.send_header('Content-Range', f'bytes {start}-{len(data) - 1}/{len(data)}')
        self.send_header('Content-Length', str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:self.server.cut_at or None])  # cut_at: the connection drops mid-file


@pytest.fixture
def http_mirror(mirror):
    """Serve the mirror on localhost; ``server.cut_at`` / ``server.honour_range`` change its behaviour."""
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), lambda *a: RangeHandler(*a, directory=str(mirror)))
    server.honour_range, server.cut_at = True, None
    RangeHandler.ranges = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize('honour_range', [True, False])
def test_http_resume_with_range(tmp_path, http_mirror, honour_range):
    http_mirror.honour_range = honour_range
    part = tmp_path / 'ckpt.part'
    part.write_bytes(b'X' * 1000)  # foreign bytes: kept when the server honours Range, replaced when not
    download.fetch(f'http://127.0.0.1:{http_mirror.server_port}/{CKPT_NAME}', str(part))
    assert RangeHandler.ranges == ['bytes=1000-']
    assert part.read_bytes() == (b'X' * 1000 + CKPT_BYTES[1000:] if honour_range else CKPT_BYTES)


def test_dropped_connection_then_resume(tmp_path, http_mirror, known_hash, capsys):
    known_hash(DIGEST)
    root, base = tmp_path / 'root', f'http://127.0.0.1:{http_mirror.server_port}'
    http_mirror.cut_at = 100_000
    assert download.main(['models', '--only', 'edsr_baseline_x4', '--root', str(root), '--url-base', base]) == 2
    assert message_line(capsys.readouterr().err).startswith(f'error: cannot download {base}/{CKPT_NAME}')
    part = root / 'models' / 'edsr_baseline_x4.pt.part'
    assert part.read_bytes() == CKPT_BYTES[:100_000] and not (root / 'models' / 'edsr_baseline_x4.pt').exists()
    http_mirror.cut_at = None
    assert download.main(['models', '--only', 'edsr_baseline_x4', '--root', str(root), '--url-base', base]) == 0
    assert RangeHandler.ranges == [None, 'bytes=100000-']
    assert (root / 'models' / 'edsr_baseline_x4.pt').read_bytes() == CKPT_BYTES and not part.exists()


def test_rerun_skips_verified_files(tmp_path, mirror, known_hash, capsys):
    known_hash(DIGEST)
    root = tmp_path / 'root'
    assert run(root, mirror, 'all', '--only', 'edsr_baseline_x4,benchmark') == 0
    final = root / 'models' / 'edsr_baseline_x4.pt'
    stamp = final.stat().st_mtime_ns
    capsys.readouterr()
    for name in os.listdir(mirror):  # nothing can be fetched any more
        os.remove(mirror / name)
    assert run(root, mirror, 'all', '--only', 'edsr_baseline_x4,benchmark') == 0
    assert capsys.readouterr().out.splitlines() == ['edsr_baseline_x4: skipped', 'benchmark: already extracted']
    assert final.stat().st_mtime_ns == stamp


def test_archives_are_laid_out_as_eval_expects(tmp_path, mirror):
    root = tmp_path / 'root'
    names = 'DIV2K_valid_HR,DIV2K_valid_LR_bicubic_X2,DIV2K_valid_LR_bicubic_X3,DIV2K_train_LR_bicubic_X2'
    assert run(root, mirror, 'benchmark') == 0
    assert run(root, mirror, 'div2k', '--only', names, '--keep-archives') == 0
    hr, lr = set_folders(str(root / 'benchmark'), 'Set5', 2)
    assert os.listdir(hr) == ['baby.png'] and os.listdir(lr) == ['babyx2.png']
    assert os.listdir(set_folders(str(root / 'benchmark'), 'Set14', 2)[0]) == ['lenna.png']
    hr, lr = set_folders(str(root), 'DIV2K', 3)
    assert hr == str(root / 'DIV2K' / 'DIV2K_valid_HR') and os.listdir(lr) == ['0801x3.png']
    assert os.listdir(os.path.dirname(lr)) != ['X3']  # X2 and X3 zips merged into one parent
    assert calibration_folder(str(root), 2) == str(root / 'DIV2K' / 'DIV2K_train_LR_bicubic' / 'X2')
    assert not (root / 'benchmark.tar').exists() and (root / 'benchmark.tar.extracted').is_file()
    assert (root / 'DIV2K' / 'DIV2K_valid_HR.zip').is_file()  # --keep-archives
    assert not [n for n in os.listdir(root) if n.startswith('.staging')]


def test_archive_without_the_expected_folder_is_deleted(tmp_path, mirror, capsys):
    root = tmp_path / 'root'
    assert run(root, mirror, 'div2k', '--only', 'DIV2K_train_HR') == 2
    err = capsys.readouterr().err
    assert err.startswith('error: DIV2K_train_HR.zip does not hold DIV2K_train_HR: not the expected archive; '
                          'it was deleted') and err.count('\n') == 1
    assert os.listdir(root / 'DIV2K') == []
