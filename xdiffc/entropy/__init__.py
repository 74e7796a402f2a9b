"""Entropy stage shared by every coder: the interpolation coder, the L2/PCA sections and the model latents.

- :mod:`.codes`     zigzag codes and byte planes (one convention for every coder)
- :mod:`.zstd`      length-prefixed zstd frames, with the size checked before inflating
- :mod:`.rans`      rANS (``constriction``) under static histograms or frozen integer tables
- :mod:`.ints`      a block of small non-negative integers: the smaller of rANS and zstd planes
- :mod:`.estimate`  fast size estimates (entropy of counts plus the cost of the stored histogram)

Each part writes and reads its own bytes; decoders check every count before allocating.
"""
