"""Rewards TRL ships, wrapped (not rewritten): ``cosine``, ``overlong``, ``format``.

The wrappers add what the project needs around TRL's functions: token lengths of the thinking or of the whole
completion (TRL measures ``len(completion_ids)``; for thinking lengths the wrappers pass the ids up to
``</think>``), the project's correctness grader (answer after ``</think>``, hard time limit, parallel), and both
completion shapes (strings or chat messages).
"""

from __future__ import annotations

from collections.abc import Sequence

from trl.rewards import get_cosine_scaled_reward, get_soft_overlong_punishment, think_format_reward

from data.format import THINK_CLOSE, THINK_OPEN, completion_text, last_boxed, split_thinking
from rewards.correctness import context_correctness
from rewards.length import check_length_of, lengths_of
from rewards.registry import RewardContext, register

# Stand-ins that make TRL's own accuracy check return our verdict (see Cosine): a boxed 1 against gold 1 or 0.
_PROXY_COMPLETION = [{"role": "assistant", "content": "\\boxed{1}"}]
_PROXY_GOLD = {True: "$1$", False: "$0$"}


def _truncated(completion_ids: Sequence[Sequence[int]], lengths: Sequence[int]) -> list[list[int]]:
    """The ids TRL should measure: the first ``L`` tokens of each completion."""
    return [list(ids[:n]) for ids, n in zip(completion_ids, lengths, strict=True)]


@register("cosine")
class Cosine:
    """Cosine length scaling (Yeo et al. 2025, "Demystifying Long Chain-of-Thought Reasoning", arXiv 2502.03373).

    r = v_min + (v_max - v_min) * (1 + cos(pi * min(L, L_max) / L_max)) / 2, with (v_min, v_max) =
    (min_value_correct, max_value_correct) for a correct answer (shorter is better) and
    (max_value_wrong, min_value_wrong) for a wrong one (longer is less bad). Computed by TRL's
    ``get_cosine_scaled_reward``; defaults are TRL's. The paper's constants: correct 2 -> 1, wrong -10 -> 0,
    and -10 beyond L_max (``exceed_value=-10``; TRL instead holds the long-length bound there).

    Correctness is the project's grader: TRL's function grades with its own ``accuracy_reward``, so it is
    given stand-in completions (``\\boxed{1}`` against gold 1 when correct, 0 when wrong) and computes only
    the schedule. L: ``length_of``, by default the whole completion (EOS included), as in TRL; ``thinking`` is
    T + answer tokens beyond the allowance (``rewards.length``).
    """

    def __init__(
        self,
        ctx: RewardContext,
        max_len: int,
        min_value_wrong: float = -1.0,
        max_value_wrong: float = -0.5,
        min_value_correct: float = 0.5,
        max_value_correct: float = 1.0,
        exceed_value: float | None = None,
        length_of: str = "completion",
    ) -> None:
        if int(max_len) <= 0:
            raise ValueError(f"cosine: max_len must be a positive number of tokens, got {max_len!r}")
        self.ctx, self.max_len = ctx, int(max_len)
        self.exceed_value = None if exceed_value is None else float(exceed_value)
        self.length_of = check_length_of(length_of, ctx, "cosine")
        values = [float(v) for v in (min_value_wrong, max_value_wrong, min_value_correct, max_value_correct)]
        self.trl_reward = get_cosine_scaled_reward(self.max_len, *values)
        self.__name__ = "cosine"

    def __call__(self, prompts, completions, completion_ids=None, solution=None, **kwargs) -> list[float]:
        lengths = lengths_of(completion_ids, self.length_of, self.ctx)
        correct = context_correctness(self.ctx, completions, solution, completion_ids)
        rewards = self.trl_reward(
            completions=[_PROXY_COMPLETION] * len(correct),
            solution=[_PROXY_GOLD[bool(c)] for c in correct],
            completion_ids=_truncated(completion_ids, lengths),
        )
        if self.exceed_value is not None:
            rewards = [self.exceed_value if n > self.max_len else r for r, n in zip(rewards, lengths, strict=True)]
        return [float(r) for r in rewards]


@register("overlong")
class Overlong:
    """DAPO soft overlong punishment (Yu et al. 2025, arXiv 2503.14476, eq. 13), via TRL's implementation.

    r = 0 if L <= L_max - L_cache;  (L_max - L_cache - L) / L_cache if L_max - L_cache < L <= L_max;  -1 beyond.
    Computed by TRL's ``get_soft_overlong_punishment``. ``max_completion_len`` (L_max) should be the trainer's
    ``max_completion_length``; ``soft_punish_cache`` (L_cache) defaults to L_max / 5 (DAPO: 20480 and 4096).
    L: ``length_of``, by default the whole completion (what truncation cuts); ``thinking`` as in ``rewards.length``.
    """

    def __init__(
        self,
        ctx: RewardContext,
        max_completion_len: int,
        soft_punish_cache: int | None = None,
        length_of: str = "completion",
    ) -> None:
        max_completion_len = int(max_completion_len)
        cache = max_completion_len // 5 if soft_punish_cache is None else int(soft_punish_cache)
        if max_completion_len <= 0 or not 0 <= cache <= max_completion_len:
            raise ValueError(
                "overlong: need max_completion_len > 0 and 0 <= soft_punish_cache <= max_completion_len, "
                f"got {max_completion_len} and {cache}"
            )
        self.ctx = ctx
        self.length_of = check_length_of(length_of, ctx, "overlong")
        self.trl_reward = get_soft_overlong_punishment(max_completion_len, cache)
        self.__name__ = "overlong"

    def __call__(self, prompts, completions, completion_ids=None, **kwargs) -> list[float]:
        lengths = lengths_of(completion_ids, self.length_of, self.ctx)
        return [float(r) for r in self.trl_reward(completion_ids=_truncated(completion_ids, lengths))]


def well_formed(text: str, think_in_prompt: bool = False) -> bool:
    """``<think>...</think>`` (TRL's ``think_format_reward``), one ``</think>``, then exactly one ``\\boxed{...}``."""
    if think_in_prompt and not text.lstrip().startswith(THINK_OPEN):
        text = THINK_OPEN + text
    if not think_format_reward([[{"role": "assistant", "content": text}]])[0]:
        return False
    if text.count(THINK_CLOSE) != 1:
        return False
    _, answer = split_thinking(text)
    boxed = last_boxed(answer)
    return answer.count("\\boxed{") == 1 and boxed is not None and boxed.strip() != ""


@register("format")
class Format:
    """Format reward: r = 1 if the completion is ``<think> thinking </think> answer`` with one boxed answer, else 0.

    Source: DeepSeek-R1's format reward (Guo et al. 2025, arXiv 2501.12948). The thinking part is checked by
    TRL's ``think_format_reward`` (the completion starts with ``<think>``, has no second ``<think>``, and closes
    it); on top of it this requires a single ``</think>`` and exactly one non-empty, balanced ``\\boxed{...}``
    after it. ``think_in_prompt``: the chat template already opens the thinking (R1-distilled models' templates
    end the prompt with ``<think>``), so a completion that starts inside the thinking is accepted; default: read
    from ``RewardContext.completion_format``. Special-token markers are read from ``completion_ids`` (TRL's
    decoded text drops them).
    """

    def __init__(self, ctx: RewardContext, think_in_prompt: bool | None = None) -> None:
        if think_in_prompt is not None and not isinstance(think_in_prompt, bool):
            raise ValueError(f"format: think_in_prompt must be true or false, got {think_in_prompt!r}")
        fmt = ctx.reading()
        if think_in_prompt is None:
            think_in_prompt = bool(fmt is not None and fmt.opened_by_template)
        self.ctx, self.think_in_prompt = ctx, think_in_prompt
        self.__name__ = "format"

    def __call__(self, prompts, completions, completion_ids=None, **kwargs) -> list[float]:
        fmt = self.ctx.reading()
        texts = [completion_text(c) for c in completions] if fmt is None else fmt.texts(completions, completion_ids)
        return [float(well_formed(t, self.think_in_prompt)) for t in texts]
