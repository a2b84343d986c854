"""An encrypted-weight estimator in a scikit-learn pipeline, and its three prediction modes.

    python examples/03_sklearn_pipeline.py                  # 128-bit CKKS
    python examples/03_sklearn_pipeline.py --scheme plain
"""
from __future__ import annotations

import argparse
import warnings

from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import cross_val_score, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from henn.sklearn import EncryptedMLPClassifier
from henn.training.fit import SinglePartyWarning


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scheme", default="ckks")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--folds", type=int, default=3)
    args = parser.parse_args()
    warnings.simplefilter("ignore", SinglePartyWarning)

    X, y = load_breast_cancer(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, random_state=0, stratify=y)
    pipe = Pipeline([("scale", StandardScaler()),
                     ("mlp", EncryptedMLPClassifier((8,), scheme=args.scheme, epochs=args.epochs, random_state=0))])
    if args.folds > 1:
        print("cross-validation accuracy", cross_val_score(pipe, Xtr, ytr, cv=args.folds).round(3))
    pipe.fit(Xtr, ytr)
    for fhe in ("disable", "simulate", "execute"):
        accuracy = (pipe.predict(Xte, fhe=fhe) == yte).mean()  # the pipeline passes fhe to the estimator
        print(f"fhe={fhe:8s} test accuracy {accuracy:.3f}")


if __name__ == "__main__":
    main()
