"""Free-text answers from a model (`medqa.inference` keeps the original design's import path).

    pipe = InferencePipeline(model, tokenizer)
    pipe.generate("What is the first-line drug for type 2 diabetes?", temperature=0.7, max_length=100)

A thin wrapper over `model.generate` on `medqa.data.prompts.open_question_prompt`,
shared by the serving deployment, the UI and the explanation metrics. Safety
checks are not applied here: they belong to the caller (serving applies them).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

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


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    """The text before the first stop sequence, stripped."""
    end = len(text)
    for s in stop:
        found = text.find(s)
        if s and found != -1:
            end = min(end, found)
    return text[:end].strip()


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

    def prompt_tokens(self, question: str, concise: bool = False) -> int:
        """Tokens of the prompt `generate` builds for this question."""
        return len(self.tokenizer(open_question_prompt(question, concise=concise),
                                  add_special_tokens=False)["input_ids"])

    def generate(self, question: str, temperature: float = 0.7, max_length: int = 100, **overrides) -> str:
        """The answer text (prompt and anything after a stop sequence removed).

        `max_length` counts generated tokens; `overrides` are `GenerationOptions` fields.
        """
        return self.generate_batch([question], temperature=temperature, max_length=max_length, **overrides)[0]

    def generate_batch(self, questions: Sequence[str], temperature: float = 0.7, max_length: int = 100,
                       should_stop: Callable[[], bool] | None = None, **overrides) -> list[str]:
        """Answers to several questions in one `generate` call (left-padded).

        `should_stop`, checked after every new token, ends generation early (serving:
        every caller of the batch has left, so the rest would be computed for nobody).
        """
        import torch

        if not questions or any(not q or not q.strip() for q in questions):
            raise ValueError("every question must be a non-empty string")
        options = replace(self.options, temperature=temperature, max_new_tokens=max_length, **overrides)
        prompts = [open_question_prompt(q, concise=options.concise) for q in questions]
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
