"""The model's components seen on their own: each is a view of a
:class:`~grapheme_multimodal.model.LearnableMultiModal` (``model.encoder``,
``model.fusion``, ...) or, built standalone, owns a fresh model of the given
config."""

from __future__ import annotations

__all__ = ["ModalityEncoder", "ProjectionHead", "FusionNetwork", "CrossModalBinder", "ModalityAttention"]

from collections import OrderedDict
from typing import Any, Optional

import numpy as np

from ._validation import call_taking_no_mask, renamed
from .config import LearnableMultiModalConfig
from .exceptions import GraphemeError
from .model import LearnableMultiModal, ModalityKey
from .types import Modality


class _ComponentView:
    """A component of a model, seen on its own. Built standalone it owns a
    fresh model of the given config; ``model.encoder`` etc. share the model's weights."""

    _prefix = ""

    def __init__(self, config: Optional[LearnableMultiModalConfig] = None, **overrides: Any) -> None:
        self._model = LearnableMultiModal(config, **overrides)

    @classmethod
    def _view(cls, model: LearnableMultiModal) -> Any:
        view = cls.__new__(cls)
        view._model = model
        return view

    @property
    def config(self) -> LearnableMultiModalConfig:
        """The config of the model this component belongs to."""
        return self._model.config

    def parameters(self) -> "OrderedDict[str, np.ndarray]":
        """Copies of this component's tensors, by their model-wide names."""
        return OrderedDict((k, v) for k, v in self._model._parameters().items() if k.startswith(self._prefix))

    def num_parameters(self) -> int:
        """Number of scalars in this component."""
        return sum(int(np.prod(s)) for k, s in self._model.parameter_shapes().items() if k.startswith(self._prefix))

    def __eq__(self, other: object) -> bool:
        """Views are equal when they are the same component of the same model
        (``model.encoder == model.encoder``: each access makes a new view,
        and they compared unequal)."""
        if type(other) is not type(self):
            return NotImplemented
        return self._model is other._model  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), id(self._model)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(parameters={self.num_parameters():,})"


class ModalityEncoder(_ComponentView):
    """Per-modality encoders: ``l2norm(leaky(W_m x + b_m))``, ``W_m [E, d_m]``
    (the original); with ``config.encoder_hidden`` hidden layers come first,
    and with ``config.shared_head`` the shared :class:`ProjectionHead`
    follows each encoder (its tensors are counted there, not here)."""

    _prefix = "encoder."

    def encode(self, modality: ModalityKey, x: Any) -> np.ndarray:
        """Unit embeddings ``[N, E]`` of ``x [N, d_m]`` (or a list of graphs)."""
        m = Modality.parse(modality)
        try:  # this method takes no mask: its refusals say nothing of one ("a row marked present", "mask=")
            emb = call_taking_no_mask(self._model.encode, {m: x})
        except (GraphemeError, TypeError) as err:  # the model's name for x, inputs['visual'], is not this call's
            raise renamed(err, {f"inputs[{str(m)!r}]": "x", "inputs": "x"}) from None
        return np.ascontiguousarray(emb[:, m.index])


class ProjectionHead(_ComponentView):
    """The projection head shared by all modalities (``config.shared_head``):
    ``head.{i}.weight``/``.bias``, LeakyReLU between layers, linear last layer,
    between every encoder's output and the L2 normalisation. No tensors when
    the config has no head."""

    _prefix = "head."


class FusionNetwork(_ComponentView):
    """Three LeakyReLU layers over the concatenated embeddings (plus, with
    ``config.fusion_residual`` c > 0, c × the mean of the present
    embeddings), then L2 norm."""

    _prefix = "fusion."

    def fuse(self, embeddings: Any, mask: Any = None) -> np.ndarray:
        """See :meth:`LearnableMultiModal.fuse`."""
        return self._model.fuse(embeddings, mask)


class CrossModalBinder(_ComponentView):
    """``strength(a, b) = sigmoid(w · [a; b] + c)`` (the original, additive), or with
    ``config.binder_kind="bilinear"`` ``sigmoid(aᵀ W b + c)``."""

    _prefix = "binder."

    def strength(self, a: Any, b: Any) -> np.ndarray:
        """See :meth:`LearnableMultiModal.bind`."""
        return self._model.bind(a, b)

    def pair_strengths(self, embeddings: Any, mask: Any = None) -> np.ndarray:
        """See :meth:`LearnableMultiModal.pair_strengths`."""
        return self._model.pair_strengths(embeddings, mask)


class ModalityAttention(_ComponentView):
    """Multi-head attention of a query over the modality embeddings of an event."""

    _prefix = "attention."

    def weights(self, query: Any, embeddings: Any, mask: Any = None, per_head: bool = False) -> np.ndarray:
        """See :meth:`LearnableMultiModal.attention_weights`."""
        return self._model.attention_weights(query, embeddings, mask, per_head)

    def attend(self, query: Any, embeddings: Any, mask: Any = None) -> np.ndarray:
        """See :meth:`LearnableMultiModal.attend`."""
        return self._model.attend(query, embeddings, mask)
