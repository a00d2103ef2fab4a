"""UrbanMoE model components (Section 2 of the paper, Eq. 1-7).

* ``layout``   -- ``ExpertLayout`` (Eq. 3 pool order, eligibility) and Table 5 presets
* ``experts``  -- ``ExpertShape``, ``StackedExperts`` / ``LoopExperts`` (Eq. 2)
* ``router``   -- ``SparseRouter`` (Eq. 4-5)
* ``sme``      -- ``SparseMultiExpert`` (Eq. 3, 6)
* ``region``   -- region embeddings r of Eq. 1 (lookup / grid / Fourier)
* ``urbanmoe`` -- ``UrbanMoE`` (Eq. 1, 7), ``build_single_task``, ``count_parameters``
"""

from urbanmoe.runtime.efficiency import count_parameters

from .experts import (
    DEFAULT_EXPERT_HIDDEN,
    DEFAULT_EXPERT_OUT,
    ExpertShape,
    LoopExperts,
    StackedExperts,
    build_experts,
)
from .layout import PAPER_LAYOUT, TABLE5_PRESETS, ExpertLayout, layout_from_preset
from .region import (
    REGION_EMBEDDING_KINDS,
    FourierRegionEmbedding,
    GridRegionEmbedding,
    LookupRegionEmbedding,
    build_region_embedding,
)
from .router import SparseRouter, sparse_threshold
from .sme import SMEOutput, SparseMultiExpert
from .urbanmoe import (
    DEFAULT_HEAD_HIDDEN,
    TaskHeads,
    UrbanMoE,
    UrbanMoEOutput,
    build_single_task,
)

__all__ = [
    "DEFAULT_EXPERT_HIDDEN",
    "DEFAULT_EXPERT_OUT",
    "DEFAULT_HEAD_HIDDEN",
    "PAPER_LAYOUT",
    "REGION_EMBEDDING_KINDS",
    "TABLE5_PRESETS",
    "ExpertLayout",
    "ExpertShape",
    "FourierRegionEmbedding",
    "GridRegionEmbedding",
    "LookupRegionEmbedding",
    "LoopExperts",
    "SMEOutput",
    "SparseMultiExpert",
    "SparseRouter",
    "StackedExperts",
    "TaskHeads",
    "UrbanMoE",
    "UrbanMoEOutput",
    "build_experts",
    "build_region_embedding",
    "build_single_task",
    "count_parameters",
    "layout_from_preset",
    "sparse_threshold",
]
