"""DiffCoder (arXiv 2601.07946): a ResNet encoder with a conditional diffusion decoder predicting v.

The second model family next to GCDTC (:mod:`xdiffc.neural`): the network and its VAE baseline
(:mod:`.model`), the sigmoid schedule and DDIM (:mod:`.schedule`), training (:mod:`.train`), and
the codec seam (:func:`~xdiffc.diffcoder.model.seam_network`: a codec DiffCoder's file loads with
:func:`xdiffc.neural.load_model` and works as ``xdiffc.compress(x, ..., model=PATH)``).
"""

from ..neural.config import parameter_count
from ..neural.modelfile import save
from .model import BlockNet, DiffCoder, DiffCoderConfig
from .schedule import sigmoid_alpha_bar
from .train import periodic_shifts, train

__all__ = ["BlockNet", "DiffCoder", "DiffCoderConfig", "parameter_count",
           "periodic_shifts", "save", "sigmoid_alpha_bar", "train"]
