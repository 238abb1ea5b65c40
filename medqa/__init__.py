"""medqa: Ray-based QLoRA training, evaluation and safety-guarded serving for medical QA.

Not for clinical use: answers are produced by a language model and may be wrong.
"""

__version__ = "0.1.0"
