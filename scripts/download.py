"""Download the official EDSR checkpoints, DIV2K and the benchmark sets: verified, resumable, laid out for eval.py.

    python scripts/download.py {models,div2k,benchmark,all} --root DIR [--only edsr_baseline_x4] [--url-base URL]
    python scripts/download.py div2k --root ../official --only DIV2K_valid_HR,DIV2K_valid_LR_bicubic_X4

Layout under --root: ``models/<name>.pt``, ``benchmark/<Set>/{HR,LR_bicubic/X<s>}`` (--data_path
<root>/benchmark), ``DIV2K/DIV2K_{train,valid}_HR`` and ``DIV2K/DIV2K_{train,valid}_LR_bicubic/X<s>``
(--data_path <root> --dataset DIV2K; --calib_path <root>/DIV2K). Each file goes to ``<file>.part``
(resumed by HTTP Range, or by seeking for file://), is checked, then renamed; ``<file>.sha256``
(sha256sum format) marks it verified and ``<archive>.extracted`` extracted, so a second run skips it.
Archives are deleted after extraction unless --keep-archives. Errors: one line on stderr, exit status 2.
"""
import argparse
import dataclasses
import hashlib
import http.client
import os
import shutil
import sys
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile

from tqdm import tqdm

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from src.errors import UserError  # noqa: E402  (needs the repo root on sys.path)
from src.files import atomic_output  # noqa: E402

EDSR = 'https://cv.snu.ac.kr/research/EDSR/'  # EDSR-PyTorch src/model/edsr.py `url`, README benchmark link
DIV2K = 'https://data.vision.ee.ethz.ch/cvl/DIV2K/'  # the DIV2K page (ETH Zurich, CVL)
CHUNK = 1 << 20


@dataclasses.dataclass(frozen=True)
class Item:
    """One file. ``sha256``: full hex, ``prefix…suffix`` or a prefix ('' = unknown). An archive must hold
    the folder ``anchor``; the folder containing it is moved into ``<root>/<target>``."""
    name: str
    group: str
    url: str
    dest: str
    sha256: str = ''
    size: int = None
    anchor: str = None
    target: str = None


def _catalog():
    # Full hashes are not published; the EDSR-PyTorch file names carry the first 8 hex digits (torch.hub
    # convention) and SPEC §2 gives the last 4 and one size, so that much is what can be checked.
    known = {'edsr_baseline_x2': ('1bc95232', '1bc95232…e171', 5490680),
             'edsr_baseline_x3': ('abf2a44e', 'abf2a44e…9240', None),
             'edsr_baseline_x4': ('6b446fab', '6b446fab…1723', None),
             'edsr_x2': ('0edfb8a3', '0edfb8a3', None), 'edsr_x3': ('ea3ef2c6', 'ea3ef2c6', None),
             'edsr_x4': ('4f62e9ef', '4f62e9ef', None)}
    items = [Item(name, 'models', f'{EDSR}models/{name}-{tag}.pt', f'models/{name}.pt', digest, size)
             for name, (tag, digest, size) in known.items()]
    items.append(Item('benchmark', 'benchmark', f'{EDSR}benchmark.tar', 'benchmark.tar',
                      anchor='Set5/HR', target='benchmark'))
    for split in ('train', 'valid'):
        name = f'DIV2K_{split}_HR'
        items.append(Item(name, 'div2k', f'{DIV2K}{name}.zip', f'DIV2K/{name}.zip', anchor=name, target='DIV2K'))
        for scale in (2, 3, 4):
            name = f'DIV2K_{split}_LR_bicubic_X{scale}'
            items.append(Item(name, 'div2k', f'{DIV2K}{name}.zip', f'DIV2K/{name}.zip',
                              anchor=f'DIV2K_{split}_LR_bicubic/X{scale}', target='DIV2K'))
    return items


CATALOG = _catalog()


def hash_matches(spec, digest):
    """True when ``digest`` fits ``spec``: full hex, ``prefix…suffix`` (or ``prefix...suffix``), prefix, or ''."""
    prefix, _, suffix = spec.lower().replace('...', '…').partition('…')
    return digest.startswith(prefix) and digest.endswith(suffix)


def fits(item, digest, size):
    return hash_matches(item.sha256, digest) and item.size in (None, size)


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(CHUNK), b''):
            digest.update(block)
    return digest.hexdigest()


def _open(url, offset):
    """(stream, total size or None, offset actually honoured) for ``url`` from byte ``offset``."""
    if url.startswith('file://'):
        path = urllib.request.url2pathname(urllib.parse.urlparse(url).path)
        stream = open(path, 'rb')  # OSError (missing file) is reported by the caller
        stream.seek(offset)
        return stream, os.path.getsize(path), offset
    headers = {'User-Agent': 'ptq4sr-download/1.0', **({'Range': f'bytes={offset}-'} if offset else {})}
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=60)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:  # the .part already holds the whole file
            return None, offset, offset
        raise
    if offset and response.status != 206:  # the server ignored Range: start again
        offset = 0
    length = response.headers.get('Content-Length')
    return response, (offset + int(length)) if length else None, offset


def fetch(url, part):
    """Append the missing bytes of ``url`` to ``part`` (resuming where it stops)."""
    offset = os.path.getsize(part) if os.path.exists(part) else 0
    try:
        stream, total, offset = _open(url, offset)
        if stream is None:
            return
        with stream, open(part, 'r+b' if offset else 'wb') as out, \
                tqdm(total=total, initial=offset, unit='B', unit_scale=True, desc=os.path.basename(part)[:-5],
                     leave=False, disable=None) as bar:  # no bar when stderr is not a terminal
            out.seek(offset)
            out.truncate()
            for block in iter(lambda: stream.read(CHUNK), b''):
                out.write(block)
                bar.update(len(block))
            received = out.tell()
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:  # incl. cut-offs
        reason = getattr(e, 'reason', None) or getattr(e, 'strerror', None) or str(e)
        raise UserError(f'cannot download {url} ({reason}): check the connection or pass --url-base '
                        f'with a mirror; run again to resume') from None
    if total is not None and received < total:  # http.client returns b'' when a server hangs up early
        raise UserError(f'cannot download {url} (connection closed after {received:,} of {total:,} bytes): '
                        f'run again to resume')


def verify(item, path):
    """sha256 of ``path`` if it fits the item's known hash and size; else the file is deleted and it raises."""
    digest, size = sha256_of(path), os.path.getsize(path)
    if fits(item, digest, size):
        return digest
    os.remove(path)
    want = f"sha256 {item.sha256 or 'any'}" + (f', {item.size:,} bytes' if item.size else '')
    raise UserError(f'{item.name}: downloaded file has sha256 {digest[:8]}…{digest[-4:]}, {size:,} bytes but '
                    f'{want} is expected: the download or the mirror is corrupt; it was deleted, run again')


def is_verified(item, path):
    """A previous run verified ``path`` (its record exists and fits the catalogue's hash)."""
    if not (os.path.isfile(path) and os.path.isfile(path + '.sha256')):
        return False
    with open(path + '.sha256', encoding='utf-8') as f:
        digest = f.read().split(' ')[0]
    return fits(item, digest, os.path.getsize(path))


def download(item, path, url):
    """Fetch ``url`` to ``path`` unless already verified; returns 'skipped' or 'downloaded'."""
    if is_verified(item, path):
        return 'skipped'
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fetch(url, part := path + '.part')
    digest = verify(item, part)
    os.replace(part, path)
    with atomic_output(path + '.sha256') as f:
        f.write(f'{digest}  {os.path.basename(path)}\n')
    return 'downloaded'


def unpack(archive, folder):
    """Extract a zip or tar; nothing lands outside ``folder`` (zipfile strips '..', the tar 'data' filter refuses)."""
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                z.extractall(folder)
        else:
            with tarfile.open(archive) as t:
                t.extractall(folder, filter='data')
    except (zipfile.BadZipFile, tarfile.TarError, EOFError) as e:
        raise UserError(f'{os.path.basename(archive)} is not a readable zip/tar archive ({e})') from None


def find_anchor(folder, anchor):
    """The folder under ``folder`` (itself or a descendant) that holds the ``anchor`` path."""
    for parent, dirs, _ in os.walk(folder):
        if os.path.isdir(os.path.join(parent, anchor)):
            return parent
        dirs.sort()
    return None


def merge_move(src, dst):
    """Move the tree ``src`` onto ``dst``, merging folders that exist (X2 and X3 zips share a parent)."""
    if os.path.isdir(src) and os.path.isdir(dst):
        for name in sorted(os.listdir(src)):
            merge_move(os.path.join(src, name), os.path.join(dst, name))
        os.rmdir(src)
    else:
        os.replace(src, dst)


def stage(item, archive, staging):
    """Unpack ``archive`` into ``staging``; the folder holding ``item.anchor``. A bad archive is forgotten."""
    try:
        unpack(archive, staging)
        base = find_anchor(staging, item.anchor)
        if base is None:
            raise UserError(f'{os.path.basename(archive)} does not hold {item.anchor}: not the expected archive')
        return base
    except UserError as e:
        for name in (archive, archive + '.sha256'):  # the next run downloads it anew, not trusting the record
            os.remove(name)
        raise UserError(f'{e}; it was deleted: run again, or check --url-base') from None


def extract(item, archive, root, keep):
    """Unpack ``archive`` and move the folder holding ``item.anchor`` into ``root/item.target``."""
    staging = os.path.join(root, f'.staging-{item.name}')
    shutil.rmtree(staging, ignore_errors=True)
    try:
        base = stage(item, archive, staging)
        target = os.path.join(root, item.target)
        os.makedirs(target, exist_ok=True)
        for name in sorted(os.listdir(base)):
            merge_move(os.path.join(base, name), os.path.join(target, name))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    with atomic_output(archive + '.extracted') as f:
        f.write(f'{item.target}/{item.anchor}\n')
    if not keep:
        os.remove(archive)


def process(item, root, url_base=None, keep=False):
    """Download, verify and (for archives) lay out one item; returns what happened, for the summary line."""
    url = url_base.rstrip('/') + '/' + os.path.basename(item.url) if url_base else item.url
    path = os.path.join(root, item.dest)
    if item.anchor and os.path.isfile(path + '.extracted'):
        return 'already extracted'
    state = download(item, path, url)
    if item.anchor:
        extract(item, path, root, keep)
        state += ' and extracted'
    return state


def check_note(item):
    """How much the hash check proved: only a full published sha256 is a complete check."""
    if len(item.sha256) == 64:
        return ', sha256 verified'
    if not item.sha256:
        return ' (no published sha256: unverified; the archive layout was checked)'
    part = 'prefix…suffix' if '…' in item.sha256 else f'{len(item.sha256)}-digit prefix'
    return f" (sha256 {part}{' and size' if item.size else ''} verified; the full hash is not published)"


def select(group, only):
    items = [i for i in CATALOG if group == 'all' or i.group == group]
    if not only:
        return items
    names = [n.strip() for n in only.split(',') if n.strip()]
    unknown = [n for n in names if n not in {i.name for i in items}]
    if unknown:
        raise UserError(f"--only {', '.join(unknown)} is not in '{group}': choose from "
                        f"{', '.join(i.name for i in items)}")
    return [i for i in items if i.name in names]


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('what', choices=('models', 'div2k', 'benchmark', 'all'))
    p.add_argument('--root', required=True, help='folder that receives models/, benchmark/ and DIV2K/')
    p.add_argument('--only', default='', help='comma-separated item names, e.g. edsr_baseline_x4,DIV2K_valid_HR')
    p.add_argument('--url-base', default=None, help='mirror holding the same file names (http(s):// or file://)')
    p.add_argument('--keep-archives', action='store_true', help='keep zip/tar files after extracting them')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        for item in select(args.what, args.only):
            state = process(item, os.path.abspath(args.root), args.url_base, args.keep_archives)
            print(f'{item.name}: {state}{check_note(item) if state.startswith("downloaded") else ""}', flush=True)
    except UserError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print('interrupted: partial downloads are kept as .part files; run again to resume', file=sys.stderr)
        return 130
    return 0


if __name__ == '__main__':
    sys.exit(main())
