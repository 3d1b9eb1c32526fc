"""The objective that stylization minimizes: pure loss terms (content, style, regions, total
variation, range, temporal, photorealism), one file each, summed by :class:`Objective`; the exact
window-by-window evaluation of the same objective for frames too large for one network pass
(:mod:`.windowed`); the matting Laplacian (:mod:`.matting`)."""

from .objective import TERMS, Objective
from .regions import Regions, build_regions
from .temporal import Temporal
from .term import ScaleInputs, Term
from .windowed import Windows

__all__ = ["TERMS", "Objective", "Regions", "build_regions", "Temporal", "ScaleInputs", "Term", "Windows"]
