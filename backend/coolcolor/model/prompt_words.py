"""Which words of a prompt a model cannot use: unknown to its tokenizer, or cut by its token limit.

The tiny models read prompts with a word-level tokenizer: a word outside its vocabulary becomes
``[UNK]`` and carries no meaning ("an astronaut in a white suit" loses "astronaut" and "suit").
A real CLIP tokenizer (SD-1.5) spells any word in sub-word pieces, so nothing is unknown there, but
everything past its 77-token window is silently dropped. Both are reported here, word by word as the
user wrote them, so the CLI, the daemon and the plugins can show them beside the prompt.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

# A "word" as the user sees it: a run of non-space characters; punctuation around it is not part of it.
_CHUNK = re.compile(r"\S+")
_EDGE_PUNCTUATION = ".,;:!?\"'()[]{}"
NO_PROMPT_WARNING = ("the prompt is empty: the job runs unconditionally (no text guidance: the colors the model "
                     "finds most likely); describe the colors with --prompt")


@dataclass(frozen=True)
class PromptWords:
    """What the model will not read of one prompt (each list in prompt order, without repeats)."""

    words: list[str] = field(default_factory=list)  # every word of the prompt, punctuation stripped
    unknown: list[str] = field(default_factory=list)  # outside the tokenizer's vocabulary ([UNK])
    truncated: list[str] = field(default_factory=list)  # past the text encoder's token limit
    max_tokens: int = 0  # the limit, special tokens included
    words_read: int = 0  # word occurrences the text encoder does read (known and inside the limit)

    @property
    def ignored(self) -> list[str]:
        """Unknown and cut words together: everything of the prompt the model never sees."""
        return _unique(self.unknown + self.truncated)

    @property
    def all_unknown(self) -> bool:
        """True when the prompt has words and the model knows none of them: it runs as unconditional."""
        return bool(self.words) and self.words_read == 0

    def warning(self) -> str | None:
        """The one-line message a user should see, or None when every word is read."""
        if not self.words:
            return NO_PROMPT_WARNING
        if not self.ignored:
            return None
        parts = []
        if self.unknown:
            parts.append(f"the model does not know the word(s) {', '.join(self.unknown)}")
        if self.truncated:
            parts.append(f"the word(s) {', '.join(self.truncated)} lie past its {self.max_tokens}-token limit")
        text = "; ".join(parts)
        if self.all_unknown:
            return f"{text}: no word of the prompt is known, so it runs as unconditional (no prompt)"
        return f"{text}: they are ignored"


def known_words(tokenizer: Any) -> list[str] | None:
    """The words a word-level tokenizer knows, sorted (special tokens and bare punctuation left out); None
    for a sub-word tokenizer (CLIP's BPE), which spells any word, so that no word is unknown to it."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or type(backend.model).__name__ != "WordLevel":
        return None
    special = set(tokenizer.all_special_tokens)
    return sorted(w for w in tokenizer.get_vocab() if w not in special and any(ch.isalnum() for ch in w))


def known_word_count(tokenizer: Any) -> int | None:
    """``len(known_words(tokenizer))``, None for a sub-word tokenizer: ``hello_reply.model.known_words``."""
    words = known_words(tokenizer)
    return None if words is None else len(words)


def ignored_words_warning(prompt: str, ignored: list[str]) -> str | None:
    """The warning for ``prompt`` when only the words the model ignores are known, not why (a daemon's
    job summary, a Ray pool): the same cases as ``PromptWords.warning``, or None when every word is read."""
    words = user_words(prompt)
    if not words:
        return NO_PROMPT_WARNING
    if not ignored:
        return None
    return f"the model ignores the word(s) {', '.join(ignored)} (unknown to it, or past its token limit)"


def user_words(prompt: str) -> list[str]:
    """The prompt's words as the user sees them: whitespace-separated, edge punctuation stripped."""
    return [w for w in (chunk.strip(_EDGE_PUNCTUATION) for chunk in _CHUNK.findall(prompt)) if w]


def _unique(words: list[str]) -> list[str]:
    seen: set[str] = set()
    return [w for w in words if not (w in seen or seen.add(w))]  # type: ignore[func-returns-value]


def unknown_words_of(model: Any, prompt: str) -> list[str]:
    """``model.unknown_words(prompt)`` for a model or daemon executor that can tell; [] for one that cannot
    (a stand-in without a tokenizer). The daemon's board asks it once per job (its checked job keeps it)."""
    find = getattr(model, "unknown_words", None)
    return list(find(prompt)) if callable(find) else []


def _count(tokenizer: Any, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False).input_ids) if text else 0


def token_limit(tokenizer: Any, text_encoder: Any = None) -> int:
    """Tokens the text encoder reads, special tokens included: the tokenizer's maximum, capped by the
    encoder's position embeddings (the pipeline pads and truncates to this)."""
    limit = int(tokenizer.model_max_length)
    if text_encoder is not None:
        limit = min(limit, int(getattr(text_encoder.config, "max_position_embeddings", limit)))
    return limit


def prompt_words(tokenizer: Any, prompt: str, max_tokens: int | None = None) -> PromptWords:
    """Split ``prompt`` into words and find those the model cannot read.

    Each whitespace-separated chunk is tokenized alone (no special tokens): if any of its pieces is the
    tokenizer's unknown token, the word is unknown. Token counts add up in prompt order; a word whose
    pieces do not all fit into ``max_tokens`` minus the special tokens is truncated. Both word-level and
    CLIP's BPE tokenize word by word, so the counts match tokenizing the whole prompt.
    """
    limit = int(tokenizer.model_max_length if max_tokens is None else max_tokens)
    budget = limit - int(tokenizer.num_special_tokens_to_add(pair=False))
    unk_id = tokenizer.unk_token_id
    # CLIP's unknown token is its end-of-text token; BPE never produces it for a word, so checking is harmless.
    words: list[str] = []
    unknown: list[str] = []
    truncated: list[str] = []
    used = read = 0
    for match in _CHUNK.finditer(prompt):
        chunk = match.group(0)
        word = chunk.strip(_EDGE_PUNCTUATION)
        if not word:  # bare punctuation: nothing a user would call a word
            used += _count(tokenizer, chunk)
            continue
        lead, _, trail = chunk.partition(word)
        word_ids = tokenizer(word, add_special_tokens=False).input_ids
        used += _count(tokenizer, lead) + len(word_ids)
        words.append(word)
        # The word alone decides whether it is known (a "!" after it may be [UNK] without the word being so).
        if unk_id is not None and unk_id in word_ids:
            unknown.append(word)
        elif used > budget:
            truncated.append(word)
        else:
            read += 1
        used += _count(tokenizer, trail)
    return PromptWords(_unique(words), _unique(unknown), _unique(truncated), limit, read)


@dataclass(frozen=True)
class PromptReader:
    """What a model reads of a prompt — its tokenizer and token limit — without the model: small and
    picklable, so a Ray pool's driver, which holds no model, gets one from a worker and finds a job's
    ignored words itself (``coolcolor.video.run.unknown_words``), as a local run does."""

    tokenizer: Any
    max_tokens: int

    def ignored(self, prompt: str) -> list[str]:
        """``PromptWords.ignored``: the words the model never sees, as ``CoolColorPipeline.unknown_words``."""
        return prompt_words(self.tokenizer, prompt, self.max_tokens).ignored


def prompt_reader(model: Any) -> PromptReader | None:
    """The ``PromptReader`` of a pipeline; None for a stand-in without a tokenizer (it cannot tell)."""
    tokenizer = getattr(model, "tokenizer", None)
    if tokenizer is None:
        return None
    return PromptReader(tokenizer, token_limit(tokenizer, getattr(model, "text_encoder", None)))
