"""HTTP request and response bodies of the Ray Serve application (pydantic).

The request models are strict where a silent coercion would hide a client bug
(a number where a question belongs, a string where a bool belongs) and forbid
unknown fields on the medqa endpoints so a typo (`temprature`) is a 422, not an
ignored setting. The OpenAI-compatible chat endpoint ignores unknown fields
because OpenAI clients send many we do not implement.

Sizes and counts are limits of the server, not of the schema: they live in
`ServingConfig` and are checked after authentication (`limits.py`); the body-size
limit bounds everything before parsing.
"""

from typing import Annotated, Literal, Optional, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    model_validator,
)

from medqa.safety.context import PatientContext  # the one schema: HTTP, Python API and CLI

MIN_TEMPERATURE = 0.01
"""Below this, sampling is decoded greedily: dividing logits by 1e-300 overflows to
inf and NaN probabilities, and the limit of sampling as T -> 0 is greedy anyway."""


def _not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("must contain text, not only whitespace")
    return text


def _greedy_when_tiny(t: float) -> float:
    return 0.0 if t < MIN_TEMPERATURE else float(t)


Text = Annotated[StrictStr, Field(min_length=1), AfterValidator(_not_blank)]
Number = Union[StrictInt, StrictFloat]
Temperature = Annotated[Number, Field(ge=0.0, le=2.0), AfterValidator(_greedy_when_tiny)]
TEMPERATURE_DOC = f"Sampling temperature; 0 (and anything below {MIN_TEMPERATURE}) is greedy decoding."


MODEL_DOC = ("The model to answer: the base model's id or `<base>:<adapter>` (GET /v1/models); unset, the "
             "served model. An unknown one gets 404.")


class GenerationControls(BaseModel):
    model_config = ConfigDict(extra="forbid")
    temperature: Temperature = Field(0.7, description=TEMPERATURE_DOC)
    max_length: StrictInt = Field(100, ge=1, description="New tokens generated at most (the server's cap: /health).")
    length_penalty: Number = Field(
        1.0, ge=0.0, le=5.0,
        description="Beam-search length exponent (>1 favours longer answers); used with num_beams > 1."
    )
    num_beams: StrictInt = Field(1, ge=1, le=4)
    concise: StrictBool = Field(False, description="Ask for a one- or two-sentence answer.")
    stop: list[StrictStr] = Field(
        default_factory=list, description="Extra stop sequences (the template's own always apply)."
    )
    seed: Optional[StrictInt] = Field(None, ge=0, le=2**31 - 1)


class GenerateRequest(GenerationControls):
    question: Text
    model: Optional[StrictStr] = Field(None, description=MODEL_DOC)
    use_safety: StrictBool = Field(True, description="false is honoured only where the operator allows it "
                                   "(`serving.allow_safety_opt_out`), else 403; "
                                   "emergencies and crises are always handled.")
    patient_context: Optional[PatientContext] = None


class SafetyReport(BaseModel):
    """The safety graph's verdict, always present in a response."""

    model_config = ConfigDict(extra="allow")
    checked: bool = True
    risk_level: int = Field(0, ge=0, le=3, description="0 none, 1 low, 2 high, 3 critical (emergency).")
    categories: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    blocked: bool = False
    actions: list[str] = Field(default_factory=list)


class GenerateResponse(BaseModel):
    response: str
    model: str = Field(..., description="The model that answered (its /v1/models id).")
    refused: bool = False
    emergency: bool = False
    safety_report: SafetyReport
    inference_time_ms: float
    request_id: str


class MCQRequest(BaseModel):
    """Options as a list of four strings, or MedMCQA-style `opa`..`opd`."""

    model_config = ConfigDict(extra="forbid")
    question: Text
    model: Optional[StrictStr] = Field(None, description=MODEL_DOC)
    options: Optional[list[StrictStr]] = Field(None, min_length=4, max_length=4)
    opa: Optional[StrictStr] = None
    opb: Optional[StrictStr] = None
    opc: Optional[StrictStr] = None
    opd: Optional[StrictStr] = None
    use_safety: StrictBool = Field(True, description="As in /generate: false needs the operator's permission.")
    abstain_threshold: Optional[Number] = Field(
        None, ge=0.0, le=1.0,
        description="Abstain below this confidence (default: the server's). Not used when the server is "
                    "calibrated: there `abstained` means the answer set holds more than one option.")
    subject: Optional[StrictStr] = Field(
        None,
        description="The question's subject as in the calibration data (MedMCQA `subject_name`, e.g. "
                    "\"Pharmacology\"): a calibrated server uses that subject's answer-set threshold when it "
                    "has one, else the pooled one. Ignored by an uncalibrated server.")
    patient_context: Optional[PatientContext] = None

    @model_validator(mode="after")
    def _one_option_form(self) -> "MCQRequest":
        lettered = [self.opa, self.opb, self.opc, self.opd]
        if self.options is not None and any(o is not None for o in lettered):
            raise ValueError("give either `options` or `opa`..`opd`, not both")
        if self.options is None:
            if any(o is None for o in lettered):
                raise ValueError("four options are required: `options` (a list of 4) or all of `opa`..`opd`")
            self.options = list(lettered)
        for i, text in enumerate(self.options):
            if not text.strip():
                raise ValueError(f"option {'ABCD'[i]} is empty")
        return self


class MCQResponse(BaseModel):
    model: str = Field(..., description="The model that answered (its /v1/models id).")
    answer_index: Optional[int] = Field(None, description="Most likely option (None when refused or an emergency).")
    answer_letter: Optional[str] = None
    answer_text: Optional[str] = None
    probabilities: list[float] = Field(default_factory=list, description="One per option; calibrated (temperature "
                                       "scaling, averaged over option rotations) when the server is calibrated.")
    confidence: Optional[float] = Field(None, description="The answer's probability.")
    abstained: bool = Field(..., description="Treat the answer as no answer: the answer set holds more than one "
                                             "option (calibrated server), or the confidence is below the "
                                             "abstention threshold (uncalibrated); always true when no answer is "
                                             "given.")
    prediction_set: Optional[list[str]] = Field(
        None, description="Calibrated servers only (else null): the letters of the options that, together, hold "
                          "the right answer for `set_coverage` of questions (conformal prediction; never empty, "
                          "always holding `answer_letter`). Null when no answer is given.")
    set_coverage: Optional[float] = Field(
        None, description="Calibrated servers only (else null): the share of questions whose answer set holds "
                          "the right answer (1 - alpha of the calibration), e.g. 0.9.")
    refused: bool = False
    emergency: bool = False
    message: Optional[str] = Field(None,
                                   description="Emergency notice or refusal reason when no model answer is given.")
    safety_report: SafetyReport
    inference_time_ms: float
    request_id: str


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: StrictStr


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: StrictBool = Field(False, description="Send a last chunk with the usage (and no choices).")


class ChatCompletionRequest(BaseModel):
    """The OpenAI `chat.completions` subset we implement; other fields are ignored.

    Every message is read: the conversation is formatted with the model's chat template
    (a plain one when it has none), the oldest turns dropped when it does not fit the
    context, and every turn screened."""

    model_config = ConfigDict(extra="ignore")
    model: Optional[StrictStr] = Field(None, description=MODEL_DOC)
    messages: list[ChatMessage] = Field(..., min_length=1)
    temperature: Temperature = Field(0.7, description=TEMPERATURE_DOC)
    max_tokens: StrictInt = Field(100, ge=1)
    stop: Optional[Union[StrictStr, list[StrictStr]]] = None
    n: StrictInt = Field(1, ge=1, le=1, description="Only one choice is generated.")
    stream: StrictBool = Field(False, description="Server-sent events in OpenAI's `chat.completion.chunk` format; "
                                                  "each sentence is sent once the answer so far passed the safety "
                                                  "check.")
    stream_options: Optional[StreamOptions] = None
    seed: Optional[StrictInt] = Field(None, ge=0, le=2**31 - 1)

    @model_validator(mode="after")
    def _checks(self) -> "ChatCompletionRequest":
        if not any(m.role == "user" and m.content.strip() for m in self.messages):
            raise ValueError("messages need at least one non-empty user message")
        return self

    def stop_list(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])


class HealthResponse(BaseModel):
    model_config = ConfigDict(extra="allow")
    status: str
    model_loaded: bool
    gpu_available: bool


class OpenAIError(BaseModel):
    message: str
    type: str
    param: Optional[str] = None
    code: Optional[str] = None


class ErrorResponse(BaseModel):
    error: Union[str, OpenAIError] = Field(..., description="What went wrong (one line); OpenAI's error object "
                                                            "for errors OpenAI clients branch on (unknown model).")
    request_id: Optional[str] = None
    details: Optional[list] = None
