"""How a completion reads for one tokenizer and chat template: where the thinking ends, what the answer is, how
many tokens each part took, whether it was cut at the length limit.

A reasoning completion is ``[<think>] thinking </think> answer [EOS]``. What that looks like in token ids depends
on the model family, and every figure lcrl reports rests on reading it right:

- the markers ``<think>`` / ``</think>`` may be one special token (DeepSeek-R1-Distill, Qwen3: TRL decodes with
  ``skip_special_tokens=True``, so they vanish from the decoded text), one ordinary added token (lcrl's embedded
  tokenizer), or several BPE tokens (Qwen2.5(-Math) base, Llama-3, Gemma, SmolLM2: ``</think>`` is ``</``,
  ``think``, ``>``), and then the marker's last token may merge with the text after it (``>\\n\\n`` is one token
  in some vocabularies);
- the chat template may open the thinking itself (R1-Distill's generation prompt ends with
  ``<｜Assistant｜><think>\\n``, Qwen3's thinking templates too): the completion then holds ``</think>`` but never
  ``<think>``;
- a completion that ended by end-of-sequence holds an EOS id at its end (TRL's ``completion_ids``; lcrl's engines
  drop it and set ``Generation.finished``); one cut at the token limit does not (TRL's convention for
  ``mask_truncated_completions``).

``CompletionFormat.from_tokenizer(tokenizer)`` reads all of that once; rewards, the eval report, prune validation,
the refresh trainer and the inference controls ask it instead of looking for one token id.

Token counting with a multi-token marker is decode based, so it is robust to merges: the close marker ends at
the first token ``i`` such that ``decode(ids[:i])`` contains the marker (binary search over prefixes; the count
of markers in a prefix's decoding never decreases as the prefix grows). Lengths:

    thinking_tokens(ids) = i_close            (tokens up to and including the first close marker's last token;
                                               the whole content when the thinking never closes)
    answer_tokens(ids)   = content - i_close  (content = ids without a trailing EOS id)
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from data.format import THINK_CLOSE, THINK_OPEN, completion_text

logger = logging.getLogger(__name__)

_PROBE = [{"role": "user", "content": "What is 1+1?"}]


@dataclass(frozen=True)
class CompletionFormat:
    """The reading of completions for one tokenizer and chat template (see the module docstring).

    Attributes:
        open_text, close_text: the thinking markers as text.
        open_ids, close_ids: their token ids (one id for a special or added token, several for BPE pieces).
        close_special: the close marker is a special token (TRL's decoded text does not hold it).
        opened_by_template: the rendered generation prompt ends with ``open_text`` (whitespace allowed), so
            completions start inside the thinking.
        eos_ids: the end-of-sequence ids (empty: truncation cannot be told from the ids).
        tokenizer: the tokenizer, for decode-based marker search and for decoding ids with markers kept; ``None``
            reads ids by exact matching of ``close_ids`` only.
    """

    open_text: str = THINK_OPEN
    close_text: str = THINK_CLOSE
    open_ids: tuple[int, ...] = ()
    close_ids: tuple[int, ...] = ()
    close_special: bool = False
    opened_by_template: bool = False
    eos_ids: frozenset[int] = frozenset()
    tokenizer: Any = field(default=None, repr=False, compare=False, hash=False)

    # ------------------------------------------------------------------------------------------ construction
    @classmethod
    def from_tokenizer(
        cls,
        tokenizer: Any,
        chat_template: str | None = None,
        open_text: str = THINK_OPEN,
        close_text: str = THINK_CLOSE,
        eos_ids: Iterable[int] | None = None,
    ) -> CompletionFormat:
        """Read the markers, the template's generation prompt and the EOS ids from ``tokenizer`` (once per model).

        ``chat_template``: the template to render (default: the tokenizer's own). ``eos_ids``: default the
        tokenizer's ``eos_token_id`` (pass the generation config's list when it has several).
        """
        open_ids = tuple(tokenizer.encode(open_text, add_special_tokens=False))
        close_ids = tuple(tokenizer.encode(close_text, add_special_tokens=False))
        special = set(getattr(tokenizer, "all_special_tokens", []) or [])
        if eos_ids is None:
            eos = tokenizer.eos_token_id
            eos_ids = [] if eos is None else (list(eos) if isinstance(eos, list | tuple) else [eos])
        fmt = cls(
            open_text=open_text, close_text=close_text, open_ids=open_ids, close_ids=close_ids,
            close_special=close_text in special, opened_by_template=template_opens(tokenizer, open_text, chat_template),
            eos_ids=frozenset(int(i) for i in eos_ids), tokenizer=tokenizer,
        )
        logger.debug("completion format: %s", fmt)
        return fmt

    @classmethod
    def from_ids(cls, close_ids: Sequence[int], eos_ids: Iterable[int] = (), opened_by_template: bool = False,
                 open_ids: Sequence[int] = ()) -> CompletionFormat:
        """A format without a tokenizer (tests, synthetic ids): exact matching of ``close_ids`` only."""
        return cls(open_ids=tuple(open_ids), close_ids=tuple(close_ids), eos_ids=frozenset(eos_ids),
                   opened_by_template=opened_by_template)

    # -------------------------------------------------------------------------------------------- properties
    @property
    def close_id(self) -> int | None:
        """The id of the close marker when it is exactly one token (what a stop token or a logit needs), else None."""
        return self.close_ids[0] if len(self.close_ids) == 1 else None

    def prompt_opens(self, prompt: str) -> bool:
        """Whether a rendered prompt already opens the thinking (ends with the open marker, whitespace allowed)."""
        return prompt.rstrip().endswith(self.open_text)

    def thinking_prefill(self, prompt: str, thinking: str = "") -> str:
        """What to append to ``prompt`` for a given (possibly empty) thinking, closed, ready for the answer:
        ``<think>\\n{thinking}\\n</think>\\n\\n``, without ``<think>`` when the prompt already opened it."""
        head = "" if self.prompt_opens(prompt) else f"{self.open_text}\n"
        body = f"{thinking}\n" if thinking else ""
        return f"{head}{body}{self.close_text}\n\n"

    # ------------------------------------------------------------------------------------------- token ids
    def content(self, ids: Sequence[int]) -> list[int]:
        """``ids`` without a trailing end-of-sequence id."""
        ids = list(ids)
        return ids[:-1] if ids and ids[-1] in self.eos_ids else ids

    def decode(self, ids: Sequence[int]) -> str:
        """The text of ``ids`` with the markers kept (special tokens too), without a trailing EOS."""
        if self.tokenizer is None:
            raise ValueError("this CompletionFormat has no tokenizer to decode with")
        return self.tokenizer.decode(self.content(ids), skip_special_tokens=False)

    def close_ends(self, ids: Sequence[int]) -> list[int]:
        """For each close marker in ``ids``, the index just past its last token (``ids[:end]`` holds it)."""
        ids = self.content(ids)
        if not self.close_ids:
            return []
        if len(self.close_ids) == 1 or self.tokenizer is None:
            n = len(self.close_ids)
            return [i + n for i in range(len(ids) - n + 1) if tuple(ids[i : i + n]) == self.close_ids]
        total = self.decode(ids).count(self.close_text)
        ends, lo = [], 0
        for k in range(1, total + 1):  # smallest prefix whose decoding holds k markers
            a, b = lo, len(ids)
            while a < b:
                mid = (a + b) // 2
                if self.tokenizer.decode(ids[:mid], skip_special_tokens=False).count(self.close_text) >= k:
                    b = mid
                else:
                    a = mid + 1
            ends.append(a)
            lo = a
        return ends

    def close_start(self, ids: Sequence[int], end: int) -> int:
        """Index of the first token of the close marker that ends at ``end`` (for cutting it off): the largest
        ``s`` such that ``decode(ids[s:end])`` still holds the marker."""
        if self.tokenizer is None or len(self.close_ids) == 1:
            return max(0, end - len(self.close_ids))
        ids = list(ids)
        for s in range(end - 1, -1, -1):
            if self.close_text in self.tokenizer.decode(ids[s:end], skip_special_tokens=False):
                return s
        return 0

    def closes(self, ids: Sequence[int]) -> int:
        """How many close markers the completion holds (credit needs exactly one: ``rewards.correctness``)."""
        return len(self.close_ends(ids))

    def is_closed(self, ids: Sequence[int]) -> bool:
        return bool(self.close_ends(ids))

    def thinking_tokens(self, ids: Sequence[int]) -> int:
        """Tokens up to and including the first close marker; the whole content when the thinking never closes."""
        ends = self.close_ends(ids)
        return ends[0] if ends else len(self.content(ids))

    def skips_thinking(self, ids: Sequence[int]) -> bool:
        """The completion closes the thinking with nothing in it (AdaptThink's no-thinking mode): before the first
        close marker only the open marker and whitespace. Without a tokenizer: only the open marker's ids."""
        ends = self.close_ends(ids)
        if not ends:
            return False
        head = list(ids)[: self.close_start(ids, ends[0])]
        if self.tokenizer is None:
            return head in ([], list(self.open_ids))
        text = self.tokenizer.decode(head, skip_special_tokens=False).strip()
        return text in ("", self.open_text)

    def answer_tokens(self, ids: Sequence[int]) -> int:
        """Tokens after the first close marker, without a trailing EOS (0 when the thinking never closes)."""
        return len(self.content(ids)) - self.thinking_tokens(ids)

    def is_truncated(self, ids: Sequence[int], max_length: int | None = None) -> bool:
        """True when the completion did not end by end-of-sequence (TRL's convention: no EOS id at its end) or
        filled ``max_length``. Without known EOS ids only ``max_length`` can tell."""
        ids = list(ids)
        if max_length is not None and len(ids) >= max_length and not (ids and ids[-1] in self.eos_ids):
            return True
        return bool(self.eos_ids) and (not ids or ids[-1] not in self.eos_ids)

    # ------------------------------------------------------------------------------------------------ text
    def texts(self, completions: Sequence[Any], completion_ids: Sequence[Sequence[int]] | None = None) -> list[str]:
        """The text of each completion with the markers kept: decoded from ``completion_ids`` when the close marker
        is a special token (TRL's decoded text lost it) and a tokenizer is known, else the given text."""
        if completion_ids is not None and self.close_special and self.tokenizer is not None:
            return [self.decode(ids) for ids in completion_ids]
        return [completion_text(c) for c in completions]

    def opens_in(self, text: str) -> bool:
        """The completion text opens the thinking itself."""
        return self.open_text in text


def template_opens(tokenizer: Any, open_text: str = THINK_OPEN, chat_template: str | None = None) -> bool:
    """Whether the rendered generation prompt ends with ``open_text`` (whitespace allowed); False without a template."""
    if chat_template is None and not getattr(tokenizer, "chat_template", None):
        return False
    try:
        prompt = tokenizer.apply_chat_template(_PROBE, tokenize=False, add_generation_prompt=True,
                                               chat_template=chat_template)
    except Exception as exc:  # a template that needs other inputs: say so, assume it does not open
        logger.warning("could not render the chat template to look for %r: %s", open_text, exc)
        return False
    return str(prompt).rstrip().endswith(open_text)
