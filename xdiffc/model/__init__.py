"""The neural predictor (GCDTC-style): block layout, networks, entropy coding, model files.

The core talks to it only through :func:`load_model` and :class:`ModelPredictor`.
"""

from .predictor import Analysis, ModelPredictor, load_model

__all__ = ["Analysis", "ModelPredictor", "load_model"]
