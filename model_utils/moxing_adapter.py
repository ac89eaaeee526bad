"""ModelArts support: sync data in and outputs out through moxing around ``main``.

A no-op unless ``config.enable_modelarts`` is True, so local runs never import moxing.
"""
import functools
import os

# ModelArts sets the same DEVICE_ID / RANK_SIZE / RANK_ID variables as the local launch scripts.
from model_utils.local_adapter import get_device_id, get_device_num, get_rank_id  # noqa: F401
from src.errors import UserError


def get_job_id():
    return os.getenv('JOB_ID', 'default')


def _sync(src, dst):
    import moxing as mox  # only present on ModelArts
    mox.file.copy_parallel(src, dst)


def moxing_wrapper(config):
    """Decorator: copy ``data_url`` to ``data_path`` before and ``output_path`` to ``train_url`` after."""
    def decorator(run):
        @functools.wraps(run)
        def wrapped(*args, **kwargs):
            if not config.enable_modelarts:
                return run(*args, **kwargs)
            try:
                if config.data_url:
                    _sync(config.data_url, config.data_path)
                result = run(*args, **kwargs)
                if config.train_url:
                    _sync(config.output_path, config.train_url)
                return result
            except ImportError:
                raise UserError('enable_modelarts is set but moxing is not installed: '
                                'run on ModelArts or pass --enable_modelarts False') from None
        return wrapped
    return decorator
