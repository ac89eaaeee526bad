"""Data parallelism over the workers that ``msrun`` starts: which rank handles which item, and the
collectives that put the parts back together so that the result equals a single process's.

Library code takes a ``World``. ``LOCAL`` (one process, rank 0 of 1) makes every collective an identity,
so a single-process run goes through the same code as a distributed one and the two agree by construction.
Collectives used, because they work on every MindSpore backend including CPU (2.10): ``all_gather_object``
for Python objects and ``ops.AllReduce`` (sum of float32) for gradients. On CPU, ``barrier`` returned
before the other rank arrived, ``gather_object`` / ``broadcast_object_list`` failed and AllReduce has no max/min.
"""
import os

from src.errors import UserError

_JOINED = []  # the CollectiveWorld of this process, once joined
LAUNCH_HINT = ('launch it with msrun --worker_num N --local_worker_num N eval.py|calibrate.py …, '
               'or bash scripts/run_distribute_eval_<device>.sh N …, or drop --run_distribute')


def shard(count, rank, size):
    """The indices of ``count`` items that ``rank`` of ``size`` handles: item i goes to rank i % size.

    >>> list(shard(5, 1, 2))
    [1, 3]
    """
    return range(rank, count, size)


def merge_indexed(parts):
    """The items of every rank's ``[(index, item), …]`` list in index order (each index 0..n-1 exactly once).

    >>> merge_indexed([[(0, 'a'), (2, 'c')], [(1, 'b')]])
    ['a', 'b', 'c']
    """
    pairs = sorted((pair for part in parts for pair in part), key=lambda pair: pair[0])
    indices = [i for i, _ in pairs]
    if indices != list(range(len(pairs))):
        raise RuntimeError(f'ranks returned indices {indices}: expected each of 0..{len(pairs) - 1} once')
    return [item for _, item in pairs]


def check_even_split(batch_size, size):
    """Equal shares make the mean over ranks of the per-rank mean losses (and of their gradients) the mean
    over the whole batch, so PaC's batch must split evenly over the workers."""
    if batch_size % size:
        raise UserError(f'--pac_batch_size {batch_size} cannot be split evenly over {size} workers: '
                        f'use a worker count that divides it, or a --pac_batch_size that is a multiple of {size}')


def batch_share(batch, rank, size):
    """This rank's contiguous slice of ``batch`` (first axis), which must split evenly.

    >>> batch_share([10, 11, 12, 13], 1, 2)
    [12, 13]
    """
    check_even_split(len(batch), size)
    step = len(batch) // size
    return batch[rank * step:(rank + 1) * step]


class World:
    """One process: rank 0 of 1; the collectives return their input."""
    rank = 0
    size = 1

    @property
    def is_main(self):
        """Rank 0, which alone writes results files, checkpoints and reports."""
        return self.rank == 0

    def log(self, message):
        """Print on rank 0 only: msrun shows every worker's output, and the ranks' messages are the same."""
        if self.is_main:
            print(message, flush=True)

    def all_gather(self, obj):
        """[rank 0's ``obj``, rank 1's ``obj``, …] on every rank."""
        return [obj]

    def average(self, grads, losses):
        """``(grads, losses)`` (tuples of Tensors) averaged over the ranks: PaC's ``reduce``."""
        return grads, losses


LOCAL = World()


class CollectiveWorld(World):
    """The msrun cluster this process joined (``mindspore.communication.init()`` done)."""

    def __init__(self):
        from mindspore import ops
        from mindspore.communication import get_group_size, get_rank
        self.rank, self.size = get_rank(), get_group_size()
        self._sum = ops.AllReduce()  # sum: the only reduction MindSpore's CPU backend offers

    def all_gather(self, obj):
        from mindspore.mint.distributed import all_gather_object
        out = [None] * self.size
        all_gather_object(out, obj)
        return out

    def average(self, grads, losses):
        import mindspore as ms
        from mindspore import ops
        tensors = list(grads) + list(losses)
        # one collective per step rather than one per tensor: PaC has ~150 bound tensors
        flat = self._sum(ops.cat([t.astype(ms.float32).reshape(-1) for t in tensors])) / self.size
        out, start = [], 0
        for t in tensors:
            out.append(flat[start:start + t.size].reshape(t.shape).astype(t.dtype))
            start += t.size
        return tuple(out[:len(grads)]), tuple(out[len(grads):])


def check_launcher(run_distribute):
    """--run_distribute True only means something inside msrun, which sets MS_ROLE for every process it starts."""
    if run_distribute and not os.environ.get('MS_ROLE'):
        raise UserError(f'--run_distribute True needs the msrun launcher (MS_ROLE is not set): {LAUNCH_HINT}')


def workers_here():
    """How many workers msrun started; the scripts start all of them on this machine, so they share its cores."""
    return max(1, int(os.environ.get('MS_WORKER_NUM', '1')))


def join_world(run_distribute):
    """``LOCAL``, or this process's place in the msrun cluster (the device must already be set); joined
    once per process, so that main() may run again.

    msrun also runs the script once as the scheduler, whose ``init()`` serves the cluster and never
    returns: whatever comes before this call runs there too, so it must stay light.
    """
    if not run_distribute:
        return LOCAL
    if not _JOINED:
        from mindspore.communication import init
        init()
        _JOINED.append(CollectiveWorld())
    return _JOINED[0]
