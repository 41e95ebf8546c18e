"""scikit-learn's scores for the classifier zoo's parity test (cloud/tests/cloud/evaluate.rs).

Exports scikit-learn's bundled breast-cancer data (label = sklearn's target, 1 = benign) and
wine data binarised as "class 0 vs the rest" (the Rust side is binary only), each with the test
indices of a StratifiedKFold(5, shuffle=True, random_state=0), and for each fixed parameter set
below the per-fold F1, average precision and balanced accuracy of
Pipeline([StandardScaler(), estimator]) on exactly those folds (scaler fitted per fold).

Parameter sets are written with the Rust side's JSON names (sklearn's parameter names plus a
"classifier" tag), so both sides read the same thing. Prints one JSON document on stdout.
"""

import json
import sys

import numpy as np
import sklearn
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.discriminant_analysis import QuadraticDiscriminantAnalysis
from sklearn.ensemble import AdaBoostClassifier, RandomForestClassifier
from sklearn.model_selection import StratifiedKFold, cross_validate
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier

CONFIGS = [
    {"classifier": "knn", "n_neighbors": 5, "weights": "uniform", "metric": "euclidean"},
    {"classifier": "knn", "n_neighbors": 9, "weights": "distance", "metric": "manhattan"},
    {"classifier": "svm", "C": 1.0, "gamma": 0.1},
    {"classifier": "svm", "C": 10.0, "gamma": 0.01},
    {"classifier": "tree", "criterion": "gini", "max_depth": 4, "max_features": "all", "ccp_alpha": 0.0},
    {"classifier": "tree", "criterion": "entropy", "max_depth": 6, "max_features": "all", "ccp_alpha": 0.01},
    {"classifier": "forest", "n_estimators": 100, "criterion": "gini", "max_depth": 6,
     "max_features": "sqrt", "ccp_alpha": 0.0},
    {"classifier": "mlp", "hidden_layer_sizes": 10, "alpha": 1.0, "max_iter": 3000},
    {"classifier": "adaboost", "n_estimators": 50, "learning_rate": 0.1},
    {"classifier": "adaboost", "n_estimators": 10, "learning_rate": 1.0},
    {"classifier": "nb", "var_smoothing": 1e-9},
    {"classifier": "nb", "var_smoothing": 1e-2},
    {"classifier": "qda", "reg_param": 0.1},
    {"classifier": "qda", "reg_param": 0.5},
]


def estimator(cfg):
    """The sklearn estimator for one of our parameter sets (also used by bench/evaluate_sklearn.py)."""
    p = {k: v for k, v in cfg.items() if k != "classifier"}
    if "max_features" in p and p["max_features"] == "all":
        p["max_features"] = None
    kind = cfg["classifier"]
    if kind == "knn":
        return KNeighborsClassifier(**p)
    if kind == "svm":
        return SVC(**p)
    if kind == "tree":
        return DecisionTreeClassifier(random_state=0, **p)
    if kind == "forest":
        return RandomForestClassifier(random_state=0, **p)
    if kind == "mlp":
        p["hidden_layer_sizes"] = (p["hidden_layer_sizes"],)
        return MLPClassifier(solver="lbfgs", random_state=0, **p)
    if kind == "adaboost":
        return AdaBoostClassifier(random_state=0, **p)
    if kind == "nb":
        return GaussianNB(**p)
    if kind == "qda":
        return QuadraticDiscriminantAnalysis(**p)
    raise ValueError(f"unknown classifier {kind!r}")


def dataset(name, x, y):
    folds = [test.tolist() for _, test in StratifiedKFold(5, shuffle=True, random_state=0).split(x, y)]
    cv = [(np.setdiff1d(np.arange(len(y)), t), np.array(t)) for t in folds]
    results = []
    for cfg in CONFIGS:
        pipe = Pipeline([("scale", StandardScaler()), ("clf", estimator(cfg))])
        s = cross_validate(pipe, x, y, cv=cv, scoring=["f1", "average_precision", "balanced_accuracy"])
        results.append({
            "params": cfg,
            "f1": s["test_f1"].tolist(),
            "pr_auc": s["test_average_precision"].tolist(),
            "balanced_accuracy": s["test_balanced_accuracy"].tolist(),
        })
    return {"name": name, "x": x.tolist(), "y": y.tolist(), "folds": folds, "results": results}


def main():
    bc = load_breast_cancer()
    wine = load_wine()
    out = {
        "sklearn": sklearn.__version__,
        "datasets": [
            dataset("breast_cancer", bc.data, bc.target.astype(int)),
            dataset("wine_class0_vs_rest", wine.data, (wine.target == 0).astype(int)),
        ],
    }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
