"""Losses: pure functions of tensors with shapes in their docstrings.

The training module only weighs and sums them. Supervised losses: :mod:`vidpose.losses.supervised`;
unsupervised ones: :mod:`vidpose.losses.unsupervised` (the functions),
:mod:`vidpose.losses.builtin` (each registered with its parameters and default weight),
:mod:`vidpose.losses.registry` (how to add one); pose subspaces: :mod:`vidpose.losses.pca`.
"""

from vidpose.losses.pca import (
    MultiviewPCA,
    PosePCA,
    fit_multiview_pca,
    fit_pose_pca,
    multiview_reconstruction_error,
    pca_reconstruction_error,
)
from vidpose.losses.registry import (
    UNSUPERVISED_LOSSES,
    LossSetup,
    UnsupervisedInputs,
    UnsupervisedLoss,
    UnsupervisedLossSpec,
    WeightedLoss,
    build_unsupervised_losses,
    ramp_weight,
    register_unsupervised_loss,
)
from vidpose.losses.supervised import (
    SUPERVISED_LOSSES,
    SupervisedInputs,
    SupervisedLoss,
    check_supervised_loss,
    heatmap_loss,
    pixel_error,
    register_supervised_loss,
    regression_loss,
)
from vidpose.losses.unsupervised import (
    LossTerms,
    multiview_pca_loss,
    pca_loss,
    temporal_loss,
    temporal_norm,
    unimodal_loss,
)

__all__ = [
    "SUPERVISED_LOSSES",
    "UNSUPERVISED_LOSSES",
    "LossSetup",
    "LossTerms",
    "MultiviewPCA",
    "PosePCA",
    "SupervisedInputs",
    "SupervisedLoss",
    "UnsupervisedInputs",
    "UnsupervisedLoss",
    "UnsupervisedLossSpec",
    "WeightedLoss",
    "build_unsupervised_losses",
    "check_supervised_loss",
    "fit_multiview_pca",
    "fit_pose_pca",
    "heatmap_loss",
    "multiview_pca_loss",
    "multiview_reconstruction_error",
    "pca_loss",
    "pca_reconstruction_error",
    "pixel_error",
    "ramp_weight",
    "register_supervised_loss",
    "register_unsupervised_loss",
    "regression_loss",
    "temporal_loss",
    "temporal_norm",
    "unimodal_loss",
]
