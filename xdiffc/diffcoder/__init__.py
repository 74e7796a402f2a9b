"""DiffCoder (arXiv 2601.07946): a ResNet encoder with a conditional diffusion decoder predicting v.

The second model family next to GCDTC (:mod:`xdiffc.model`): the network and its VAE baseline
(:mod:`.model`), the sigmoid schedule and DDIM (:mod:`.schedule`), training (:mod:`.train`), and
the codec seam (:func:`load_diffcoder`, usable as ``xdiffc.compress(x, ..., model=...)``).
"""

from .model import DiffCoder, DiffCoderConfig, parameter_count
from .modelfile import save
from .predictor import DiffCoderPredictor, load_diffcoder
from .schedule import sigmoid_alpha_bar
from .train import periodic_shifts, train

__all__ = ["DiffCoder", "DiffCoderConfig", "DiffCoderPredictor", "load_diffcoder", "parameter_count",
           "periodic_shifts", "save", "sigmoid_alpha_bar", "train"]
