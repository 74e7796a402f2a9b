"""The neural predictor (GCDTC-style): block layout, networks, entropy coding, model files.

The core talks to it only through :func:`load_model` and :class:`ModelPredictor`.
"""

try:
    import torch  # noqa: F401  (every module of this package needs it)
except ImportError as err:  # PyTorch is the optional extra "models": model-free use never comes here
    raise ImportError("xdiffc's learned models need PyTorch, the optional extra 'models': "
                      "pip install 'xdiffc[models]' (model-free compression and every model-free store need "
                      "nothing more)") from err

from .predictor import Analysis, ModelPredictor, load_model  # noqa: E402

__all__ = ["Analysis", "ModelPredictor", "load_model"]
