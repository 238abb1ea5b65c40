"""The original design's import path for free-text generation (a kept contract):
`from medqa.inference import InferencePipeline`. The code lives in `medqa.modeling.generation`.

May import: modeling.
"""

from medqa.modeling.generation import DEFAULT_STOP, GenerationOptions, InferencePipeline  # noqa: F401

__all__ = ["DEFAULT_STOP", "GenerationOptions", "InferencePipeline"]
