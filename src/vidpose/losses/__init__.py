"""Losses: pure functions of tensors with shapes in their docstrings.

The training module only weighs and sums them. Supervised losses: :mod:`vidpose.losses.supervised`;
unsupervised ones: :mod:`vidpose.losses.unsupervised`, their registry and prerequisites:
:mod:`vidpose.losses.registry`, pose subspaces: :mod:`vidpose.losses.pca`.
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
    UnsupervisedContext,
    UnsupervisedInputs,
    UnsupervisedLoss,
    available_unsupervised_losses,
    build_unsupervised_context,
    check_loss_prerequisites,
    get_unsupervised_loss,
    ramp_weight,
    register_unsupervised_loss,
)
from vidpose.losses.supervised import (
    SupervisedInputs,
    SupervisedLoss,
    check_supervised_loss,
    get_supervised_loss,
    heatmap_loss,
    list_supervised_losses,
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
    "LossTerms",
    "MultiviewPCA",
    "PosePCA",
    "SupervisedInputs",
    "SupervisedLoss",
    "UnsupervisedContext",
    "UnsupervisedInputs",
    "UnsupervisedLoss",
    "available_unsupervised_losses",
    "build_unsupervised_context",
    "check_loss_prerequisites",
    "check_supervised_loss",
    "fit_multiview_pca",
    "fit_pose_pca",
    "get_supervised_loss",
    "get_unsupervised_loss",
    "heatmap_loss",
    "list_supervised_losses",
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
