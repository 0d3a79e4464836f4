"""Inference on images and videos with a trained model directory.

The names below load on first use (PEP 562): ``vidpose predict`` reads its ledger through
``vidpose.predict.batch`` first, and a batch whose videos are all done needs neither torch nor
the model.
"""

from typing import TYPE_CHECKING, Any

__all__ = ["PoseModel", "PredictStats", "load_model"]

if TYPE_CHECKING:
    from vidpose.predict.predictor import PoseModel, PredictStats, load_model


def __getattr__(name: str) -> Any:
    if name in __all__:
        from vidpose.predict import predictor

        return getattr(predictor, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
