"""``--stage init``: build the embedded tiny model and tokenizer (no network)."""

from __future__ import annotations

import logging

from rl.recipes import ParsedRun, dump_run
from rl.tiny_model import init_tiny
from rl.tracking import start_wandb_run

logger = logging.getLogger(__name__)


def run(run: ParsedRun) -> None:
    (init_args,) = run.stage_args
    if run.lcrl.dry_run:
        logger.info("dry run: would build a tiny model in %s", init_args.output_dir)
        return
    wb = start_wandb_run(run)
    out, n_params = init_tiny(init_args)
    dump_run(run, out)
    if wb is not None:
        wb.summary.update({"parameters": n_params})
        wb.finish()
