"""lcrl command line: parse the recipe and overrides, then run one stage.

    accelerate launch train.py --stage init
    accelerate launch train.py --stage sft
    accelerate launch train.py --stage grpo --budget medium
    accelerate launch train.py --stage eval
    accelerate launch train.py --stage grpo --config configs/tiny/grpo.yaml --learning_rate 1e-5

Several processes: ``torchrun --nproc_per_node N train.py ...`` (add ``--use_cpu true`` on a CPU for sft/grpo) or
``accelerate launch --config_file configs/accelerate/<name>.yaml train.py ...``; only the main process logs at INFO.

Without --config a stage reads configs/tiny/<stage>.yaml, the embedded default that needs no network.
"""

from __future__ import annotations

import logging
import os
import sys


def main(argv: list[str] | None = None) -> int:
    main_process = os.environ.get("RANK", "0") == "0"  # set by torchrun / accelerate launch; logs from one process
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        level=logging.INFO if main_process else logging.WARNING)
    from data.prune_io import SettingsMismatch
    from data.writer_lock import OutputInUse
    from rl.config import ConfigError
    from rl.distributed import close
    from rl.recipes import parse_args
    from rl.stages import run_stage, stage_types

    try:
        run = parse_args(argv, stage_types())
        run_stage(run)
        close()  # several processes: the process group ends after the stage's objects (rl.distributed.close)
    except (ConfigError, SettingsMismatch, OutputInUse) as exc:  # a resume into a folder of other settings, or one
        # that another live run writes, is a configuration error
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
