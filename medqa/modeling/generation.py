"""Free-text answers from a model (`medqa.inference` keeps the original design's import path).

    pipe = InferencePipeline(model, tokenizer)
    pipe.generate("What is the first-line drug for type 2 diabetes?", temperature=0.7, max_length=100)
    pipe.generate_batch(prompts=[chat.render(tokenizer, messages)])   # a ready prompt (a conversation)
    pipe.stream(prompt, print)                                          # text as it is generated

A thin wrapper over `model.generate` on `medqa.data.prompts.open_question_prompt`,
shared by the serving deployment, the UI and the explanation metrics. Safety
checks are not applied here: they belong to the caller (serving applies them).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Optional, Sequence

from medqa.data.prompts import open_question_prompt
from medqa.modeling.modes import ensure_pad_token, eval_mode, model_device, pad_token_id

# The template's own markers: an answer that reaches one has started a new question.
DEFAULT_STOP = ("\nQuestion:", "\nChoices:")


@dataclass
class GenerationOptions:
    max_new_tokens: int = 100
    min_new_tokens: int = 1
    """Small instruct models often end at once on a bare prompt; this forbids an empty answer."""
    temperature: float = 0.7
    """0 means greedy decoding."""
    top_p: float = 0.95
    repetition_penalty: float = 1.1
    num_beams: int = 1
    length_penalty: float = 1.0
    """Beam-search length exponent (>1 favours longer answers); used only when num_beams > 1."""
    concise: bool = False
    """Ask for a one- or two-sentence answer in the prompt."""
    stop: tuple[str, ...] = field(default=DEFAULT_STOP)
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError("max_new_tokens (max_length) must be at least 1")
        if self.temperature < 0:
            raise ValueError("temperature must be >= 0")
        if not 0 < self.top_p <= 1:
            raise ValueError("top_p must be in (0, 1]")
        if self.num_beams < 1:
            raise ValueError("num_beams must be at least 1")


def cut_at_stop_index(text: str, stop: Sequence[str]) -> Optional[int]:
    """Where the first stop sequence in `text` begins (None: there is none)."""
    found = [i for i in (text.find(s) for s in stop if s) if i != -1]
    return min(found) if found else None


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    """The text before the first stop sequence, stripped."""
    at = cut_at_stop_index(text, stop)
    return (text if at is None else text[:at]).strip()


def held_back(text: str, stop: Sequence[str]) -> int:
    """How many characters at the end of `text` could be the start of a stop sequence (and so
    must not be shown yet while streaming)."""
    longest = 0
    for s in filter(None, stop):
        for n in range(min(len(s) - 1, len(text)), longest, -1):
            if s.startswith(text[-n:]):
                longest = n
                break
    return longest


class StopGate:
    """Streamed text in, the part that may be shown out: nothing from a stop sequence on, and a
    tail that could be the start of one held until more text settles it. Leading whitespace is
    dropped, as the unstreamed answer is stripped."""

    def __init__(self, stop: Sequence[str]):
        self.stop, self.pending, self.started, self.hit = tuple(stop), "", False, False

    def feed(self, text: str, final: bool = False) -> str:
        """What of `text` (after what was held) can be shown now; `final`: no more is coming."""
        if self.hit:
            return ""
        buffer = self.pending + text
        cut = cut_at_stop_index(buffer, self.stop)
        if cut is not None:
            buffer, self.hit = buffer[:cut], True
        keep = 0 if (final or self.hit) else held_back(buffer, self.stop)
        out, self.pending = buffer[:len(buffer) - keep], buffer[len(buffer) - keep:]
        if not self.started:
            out = out.lstrip()
            self.started = bool(out)
        return out


@dataclass
class StreamSummary:
    """How a streamed generation ended."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    """"stop" (end of sequence, a stop sequence, or asked to stop) or "length" (max_length reached)."""


def generate_kwargs(options: GenerationOptions, pad_token_id: int) -> dict:
    """`model.generate` arguments for these options (pure, testable)."""
    kwargs = dict(
        max_new_tokens=options.max_new_tokens,
        min_new_tokens=min(options.min_new_tokens, options.max_new_tokens),
        repetition_penalty=options.repetition_penalty,
        num_beams=options.num_beams,
        pad_token_id=pad_token_id,
        use_cache=True,
    )
    if options.temperature == 0:
        kwargs.update(do_sample=False)
    else:
        kwargs.update(do_sample=True, temperature=options.temperature, top_p=options.top_p)
    if options.num_beams > 1:
        kwargs.update(length_penalty=options.length_penalty, early_stopping=True)
    return kwargs


class InferencePipeline:
    """Generate answers to open medical questions with a (base or adapted) causal LM."""

    def __init__(self, model, tokenizer, options: GenerationOptions | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.options = options or GenerationOptions()
        ensure_pad_token(tokenizer)

    def prompt_text(self, question: str, concise: bool = False) -> str:
        """The prompt `generate` builds for a question."""
        return open_question_prompt(question, concise=concise)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def prompt_tokens(self, question: str, concise: bool = False) -> int:
        """Tokens of the prompt `generate` builds for this question."""
        return self.count_tokens(self.prompt_text(question, concise))

    def generate(self, question: str, temperature: float = 0.7, max_length: int = 100, **overrides) -> str:
        """The answer text (prompt and anything after a stop sequence removed).

        `max_length` counts generated tokens; `overrides` are `GenerationOptions` fields.
        """
        return self.generate_batch([question], temperature=temperature, max_length=max_length, **overrides)[0]

    def generate_batch(self, questions: Sequence[str] = (), temperature: float = 0.7, max_length: int = 100,
                       should_stop: Callable[[], bool] | None = None, prompts: Optional[Sequence[str]] = None,
                       **overrides) -> list[str]:
        """Answers to several questions (or ready `prompts`, e.g. rendered conversations) in one
        `generate` call (left-padded).

        `should_stop`, checked after every new token, ends generation early (serving:
        every caller of the batch has left, so the rest would be computed for nobody).
        """
        import torch

        options = replace(self.options, temperature=temperature, max_new_tokens=max_length, **overrides)
        if prompts is None:
            if not questions or any(not q or not q.strip() for q in questions):
                raise ValueError("every question must be a non-empty string")
            prompts = [open_question_prompt(q, concise=options.concise) for q in questions]
        elif not prompts or questions:
            raise ValueError("give questions or prompts, not both (and not neither)")
        # Decoder-only models continue from the last position: pad on the left.
        enc = self.tokenizer(prompts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
        device = model_device(self.model)
        if options.seed is not None:
            torch.manual_seed(options.seed)
        with eval_mode(self.model), torch.inference_mode():
            out = self.model.generate(
                input_ids=enc["input_ids"].to(device),
                attention_mask=enc["attention_mask"].to(device),
                stopping_criteria=_stop_when(should_stop),
                **generate_kwargs(options, pad_token_id(self.tokenizer)),
            )
        new_tokens = out[:, enc["input_ids"].shape[1] :]
        texts = self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        return [cut_at_stop(t, options.stop) for t in texts]

    def stream(self, prompt: str, on_text: Callable[[str], None], temperature: float = 0.7, max_length: int = 100,
               should_stop: Callable[[], bool] | None = None, **overrides) -> StreamSummary:
        """Generate from a ready `prompt` in the calling thread, handing `on_text` each piece of
        the answer as soon as it is decoded (transformers' streamer: about a word at a time).

        Stop sequences hold: a piece never contains one or anything after it, text that may
        be the start of one waits until it is known not to be, and generation ends when one
        appears. The pieces joined and stripped equal `generate_batch(prompts=[prompt])`'s
        answer under greedy decoding. Beam search cannot stream: `num_beams` must be 1.
        """
        import torch
        from transformers import TextStreamer

        options = replace(self.options, temperature=temperature, max_new_tokens=max_length, **overrides)
        if options.num_beams != 1:
            raise ValueError("streaming needs num_beams=1 (beam search picks its answer at the end)")
        gate, shown = StopGate(options.stop), []

        class Streamer(TextStreamer):
            def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
                if piece := gate.feed(text, final=stream_end):
                    shown.append(piece)
                    on_text(piece)

        enc = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        device = model_device(self.model)
        if options.seed is not None:
            torch.manual_seed(options.seed)
        asked = should_stop or (lambda: False)
        with eval_mode(self.model), torch.inference_mode():
            out = self.model.generate(
                input_ids=enc["input_ids"].to(device), attention_mask=enc["attention_mask"].to(device),
                streamer=Streamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True),
                stopping_criteria=_stop_when(lambda: gate.hit or asked()),
                **generate_kwargs(options, pad_token_id(self.tokenizer)),
            )
        completion = int(out.shape[1] - enc["input_ids"].shape[1])
        ended = gate.hit or asked() or completion < options.max_new_tokens
        return StreamSummary(text="".join(shown), prompt_tokens=int(enc["input_ids"].shape[1]),
                             completion_tokens=completion, finish_reason="stop" if ended else "length")


def _stop_when(should_stop: Callable[[], bool] | None):
    """transformers' stopping criteria for a callable (none when there is nothing to ask)."""
    if should_stop is None:
        return None
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class Asked(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            return torch.full((input_ids.shape[0],), should_stop(), dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([Asked()])
