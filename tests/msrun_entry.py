"""Started by msrun for tests/test_distributed.py: runs eval.py / calibrate.py ``main`` with each argument list
of a JSON file ([["eval" | "calibrate", [args…]], …]) one after the other, in one cluster, so the test pays
msrun's start-up (~15 s) once. Exits with the first non-zero exit code.

    msrun --worker_num 2 --local_worker_num 2 … tests/msrun_entry.py runs.json
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import calibrate  # noqa: E402  (after the path: the repository root is not the working directory's parent)
import eval as eval_cli  # noqa: E402

ENTRY_POINTS = {'eval': eval_cli.main, 'calibrate': calibrate.main}


def main(path):
    with open(path, encoding='utf-8') as f:
        runs = json.load(f)
    for name, args in runs:
        code = ENTRY_POINTS[name](args)
        if code:
            return code
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1]))
