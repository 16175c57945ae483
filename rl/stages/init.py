"""``--stage init``: build the embedded tiny model and tokenizer (no network)."""

from __future__ import annotations

import logging

from rl.distributed import is_main, log_world, wait_for_everyone
from rl.recipes import ParsedRun, dump_run
from rl.tiny_model import init_tiny
from rl.tracking import start_wandb_run

logger = logging.getLogger(__name__)


def run(run: ParsedRun) -> None:
    (init_args,) = run.stage_args
    log_world("init")
    if run.lcrl.dry_run:
        logger.info("dry run: would build a tiny model in %s", init_args.output_dir)
        return
    if not is_main():  # one process builds the model; the others wait for it (a later stage may follow)
        wait_for_everyone()
        return
    wb = start_wandb_run(run)
    out, n_params = init_tiny(init_args)
    dump_run(run, out)
    if wb is not None:
        wb.summary.update({"parameters": n_params})
        wb.finish()
    wait_for_everyone()
