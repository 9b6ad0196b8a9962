"""Plots logged with every model: PR and ROC curves, score distributions, importance, recall by typology."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
import polars as pl
from sklearn.metrics import precision_recall_curve, roc_curve


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def model_plots(test_scored: pl.DataFrame, importance: pl.DataFrame, per_typology: pl.DataFrame, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    y = test_scored.get_column("label").to_numpy()
    s = test_scored.get_column("score").to_numpy()
    paths = []
    if 0 < y.sum() < len(y):
        precision, recall, _ = precision_recall_curve(y, s)
        fig, ax = plt.subplots(figsize=(5, 4))
        ax.plot(recall, precision)
        ax.set(xlabel="recall", ylabel="precision", title="Precision-recall (test window)")
        paths.append(_save(fig, out / "pr_curve.png"))
        fpr, tpr, _ = roc_curve(y, s)
        fig, ax = plt.subplots(figsize=(5, 4))
        ax.plot(fpr, tpr)
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
        ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (test window)")
        paths.append(_save(fig, out / "roc_curve.png"))
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist(s[y == 0], bins=50, alpha=0.6, density=True, label="genuine")
    if y.sum():
        ax.hist(s[y == 1], bins=50, alpha=0.6, density=True, label="fraud")
    ax.set(xlabel="score", ylabel="density", title="Score distribution", yscale="log")
    ax.legend()
    paths.append(_save(fig, out / "score_distribution.png"))
    top = importance.head(20)
    fig, ax = plt.subplots(figsize=(6, max(3, 0.3 * top.height)))
    ax.barh(top.get_column("feature").to_list()[::-1], top.get_column("gain").to_list()[::-1])
    ax.set(xlabel="gain", title="Feature importance")
    paths.append(_save(fig, out / "feature_importance.png"))
    if per_typology.height:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.bar(per_typology.get_column("fraud_type").to_list(), per_typology.get_column("recall").to_list())
        ax.set(ylabel="recall at daily budget", ylim=(0, 1), title="Recall per fraud typology")
        ax.tick_params(axis="x", rotation=30)
        paths.append(_save(fig, out / "recall_per_typology.png"))
    return paths
