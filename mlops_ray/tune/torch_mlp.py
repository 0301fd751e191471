"""A PyTorch MLP for tabular data with the scikit-learn estimator interface.

``fit``/``predict``/``predict_proba``/``get_params``; the fitted weights are kept as a state dict of
numpy arrays (what pickling stores), so a fitted model loads on a machine with or without a GPU.
It trains on CUDA when one is visible (Ray sets ``CUDA_VISIBLE_DEVICES`` to the GPUs a trial was
assigned, so a trial without a GPU sees none) and on the CPU otherwise: the same code either way.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin


def _torch() -> Any:
    import torch

    return torch


INT_PARAMS = ("epochs", "width", "depth", "batch_size")
FLOAT_PARAMS = ("lr", "dropout", "weight_decay")


def resolve_device(device: str = "auto") -> str:
    """``auto`` -> ``cuda`` when a GPU is visible to this process, else ``cpu``."""
    torch = _torch()
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


class _TorchMLPBase(BaseEstimator):
    """Shared by the classifier and the regressor: architecture, training loop, state dict."""

    supports_epoch_callback = True

    def __init__(self, epochs: int = 20, lr: float = 1e-3, width: int = 64, depth: int = 2, dropout: float = 0.0,
                 batch_size: int = 64, weight_decay: float = 0.0, random_state: int | None = None,
                 device: str = "auto") -> None:
        self.epochs = epochs
        self.lr = lr
        self.width = width
        self.depth = depth
        self.dropout = dropout
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.random_state = random_state
        self.device = device

    # ------------------------------------------------------------------ model

    def _build(self, n_in: int, n_out: int) -> Any:
        nn = _torch().nn
        layers: list[Any] = []
        width_in = n_in
        for _ in range(int(self.depth)):
            layers += [nn.Linear(width_in, int(self.width)), nn.ReLU()]
            if self.dropout > 0:
                layers.append(nn.Dropout(float(self.dropout)))
            width_in = int(self.width)
        layers.append(nn.Linear(width_in, n_out))
        return nn.Sequential(*layers)

    def check_params(self) -> None:
        """ValueError naming the first parameter of the wrong type or out of range (and what it must be)."""
        for name in INT_PARAMS + FLOAT_PARAMS:
            v = getattr(self, name)
            number = isinstance(v, numbers.Real) and not isinstance(v, bool)
            if name in INT_PARAMS and not (number and float(v).is_integer()):
                # int() would quietly train 2 epochs for 2.5; a uniform range gives fractions: use randint
                raise ValueError(f"TorchMLP parameter {name}={v!r} must be a whole number (in a search space: "
                                 "grid/choice of integers, or randint)")
            if not number:
                hint = ""
                if isinstance(v, str):
                    try:
                        float(v)
                        hint = " (YAML reads 1e-3 as text: write 1.0e-3)"
                    except ValueError:
                        pass
                raise ValueError(f"TorchMLP parameter {name}={v!r} must be a number{hint}")
            if not math.isfinite(v):  # inf lr or weight decay trains to NaN
                raise ValueError(f"TorchMLP parameter {name}={v!r} must be finite")
        checks = {"epochs": (self.epochs >= 1, ">= 1"), "lr": (self.lr > 0, "> 0"), "width": (self.width >= 1, ">= 1"),
                  "depth": (self.depth >= 0, ">= 0"), "dropout": (0 <= self.dropout < 1, "in [0, 1)"),
                  "batch_size": (self.batch_size >= 1, ">= 1"), "weight_decay": (self.weight_decay >= 0, ">= 0")}
        bad = [k for k, (ok, _) in checks.items() if not ok]
        if bad:
            raise ValueError(f"TorchMLP parameter {bad[0]}={getattr(self, bad[0])!r} is out of range "
                             f"(must be {checks[bad[0]][1]})")
        if not (self.device in ("auto", "cpu", "cuda") or
                (isinstance(self.device, str) and re.fullmatch(r"cuda:\d+", self.device))):
            raise ValueError(f"TorchMLP parameter device={self.device!r} must be auto, cpu or cuda")

    def _n_out(self, y: np.ndarray) -> int:
        raise NotImplementedError

    def _targets(self, y: np.ndarray) -> Any:
        raise NotImplementedError

    def _loss(self) -> Any:
        raise NotImplementedError

    def fit(self, X: np.ndarray, y: np.ndarray,
            epoch_callback: Callable[[int, Any], None] | None = None) -> _TorchMLPBase:
        """Train for ``epochs``; ``epoch_callback(epoch, self)`` runs after each epoch (for per-epoch reports)."""
        torch = _torch()
        self.check_params()
        X = np.asarray(X, dtype=np.float32)
        y = np.asarray(y)
        self.n_features_in_ = X.shape[1]
        n_out = self._n_out(y)
        self.device_ = resolve_device(self.device)
        gen = torch.Generator().manual_seed(int(self.random_state or 0))
        torch.manual_seed(int(self.random_state or 0))
        model = self._build(X.shape[1], n_out).to(self.device_)
        opt = torch.optim.AdamW(model.parameters(), lr=float(self.lr), weight_decay=float(self.weight_decay))
        loss_fn = self._loss()
        xt = torch.from_numpy(X).to(self.device_)
        yt = self._targets(y).to(self.device_)
        n, bs = len(xt), int(self.batch_size)
        self.model_ = model
        self.loss_curve_: list[float] = []
        for epoch in range(int(self.epochs)):
            model.train()
            order = torch.randperm(n, generator=gen).to(self.device_)
            total = 0.0
            for start in range(0, n, bs):
                idx = order[start:start + bs]
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model(xt[idx]), yt[idx])
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
            self.loss_curve_.append(total / max(n, 1))
            if epoch_callback is not None:
                epoch_callback(epoch, self)
        return self

    def _forward(self, X: np.ndarray) -> np.ndarray:
        torch = _torch()
        if not hasattr(self, "model_"):
            raise ValueError(f"this {type(self).__name__} is not fitted yet; call fit first")
        self.model_.eval()
        with torch.no_grad():
            out = self.model_(torch.from_numpy(np.asarray(X, dtype=np.float32)).to(self.device_))
        return out.cpu().numpy()

    # ------------------------------------------------------------------ pickling: a state dict, not a module

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        model = state.pop("model_", None)
        if model is not None:
            state["state_dict_"] = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        weights = state.pop("state_dict_", None)
        self.__dict__.update(state)
        if weights is not None:
            torch = _torch()
            first = weights[next(iter(weights))]
            last_bias = weights[[k for k in weights if k.endswith("bias")][-1]]
            model = self._build(int(first.shape[1]), int(last_bias.shape[0]))
            model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in weights.items()})
            self.device_ = resolve_device(self.device)
            self.model_ = model.to(self.device_)

    def state_dict(self) -> dict[str, np.ndarray]:
        """The fitted weights as numpy arrays."""
        return self.__getstate__()["state_dict_"]


class TorchMLPClassifier(ClassifierMixin, _TorchMLPBase):
    """MLP classifier over class indices 0..K-1 (cross-entropy, AdamW)."""

    def _n_out(self, y: np.ndarray) -> int:
        self.classes_ = np.arange(int(y.max()) + 1 if len(y) else 0)
        return max(len(self.classes_), 2)

    def _targets(self, y: np.ndarray) -> Any:
        return _torch().from_numpy(y.astype(np.int64))

    def _loss(self) -> Any:
        return _torch().nn.CrossEntropyLoss()

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        logits = self._forward(X)
        logits = logits[:, : len(self.classes_)]
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def predict(self, X: np.ndarray) -> np.ndarray:
        proba = self.predict_proba(X)
        return self.classes_[proba.argmax(axis=1)]


class TorchMLPRegressor(RegressorMixin, _TorchMLPBase):
    """MLP regressor (MSE on a standardised target, AdamW)."""

    def _n_out(self, y: np.ndarray) -> int:
        self.y_mean_ = float(np.mean(y))
        self.y_scale_ = float(np.std(y)) or 1.0
        return 1

    def _targets(self, y: np.ndarray) -> Any:
        return _torch().from_numpy(((y.astype(np.float64) - self.y_mean_) / self.y_scale_).astype(np.float32)
                                   .reshape(-1, 1))

    def _loss(self) -> Any:
        return _torch().nn.MSELoss()

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self._forward(X).reshape(-1) * self.y_scale_ + self.y_mean_
