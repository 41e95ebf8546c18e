"""Real process data shipped inside PyPI packages, with sustained faults injected, for the
model tests; and scikit-learn's PCA with Hotelling's T² as the baseline at equal false alarms.

Data sets (read from the installed packages' files; nothing is downloaded):
- bibmon (Petrobras, Apache-2.0): `real_process_data.csv`, 108 standardised tags of a real
  plant every 5 minutes for 11 days; historian status texts ("Bad", "Scan Timeout") are missing
  values.
- NN4MSP (GPL-3.0, data only): `HVAC_data.csv`, the 24 temperatures (outdoor, interior, set
  point, supply of six coaches) of the train with the most rows, its first 4000 in time order.

Neither has fault labels, so faults are injected into the later parts of the real series (the
usual semi-real benchmark): `bias` (a sensor offset of 2 training standard deviations),
`drift` (a ramp to 5 standard deviations) and `stuck` (the sensor freezes at its value), each on
a variable strongly correlated with others, one episode in the validation part and two in the
test part (60/20/20 by time, as `train` splits). One machine per (data set, fault kind).

    process_data.py prepare OUT          # OUT/<machine>.csv, OUT/lots.csv, OUT/<machine>.npz
    process_data.py baseline OUT REPORT  # JSON: per machine, PCA T² detection at our false alarms
"""

import csv
import datetime as dt
import importlib.util
import json
import pathlib
import sys

import numpy as np

KINDS = ("bias", "drift", "stuck")
TRAIN, VAL = 0.6, 0.2


def package_file(package, rel):
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        sys.exit(f"package {package} is not installed (see .ci/run)")
    return pathlib.Path(list(spec.submodule_search_locations)[0]) / rel


def number(text):
    try:
        return float(text)
    except ValueError:
        return float("nan")


def load_bibmon():
    path = package_file("bibmon", "real_process_data/real_process_data.csv")
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    names = rows[0][1:]
    times = [dt.datetime.fromisoformat(r[0]).replace(tzinfo=dt.timezone.utc) for r in rows[1:]]
    x = np.array([[number(v) for v in r[1:]] for r in rows[1:]], dtype=float)
    return names, times, x


def load_hvac():
    path = package_file("NN4MSP", "data/HVAC_data.csv")
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header = rows[0]
    cols = [i for i, h in enumerate(header) if h.startswith("coach_")]
    by_train = {}
    for r in rows[1:]:
        by_train.setdefault(r[1], []).append(r)
    # The train with the most rows, its first 4000 (enough for a test on two cores).
    train = max(by_train.values(), key=len)
    stamp = lambda r: dt.datetime.strptime("2023-" + r[0], "%Y-%m-%d %H:%M:%S").replace(tzinfo=dt.timezone.utc)
    train.sort(key=stamp)
    times, seen, kept = [], set(), []
    for r in train:
        t = stamp(r)
        if t not in seen:
            seen.add(t)
            times.append(t)
            kept.append(r)
    kept, times = kept[:4000], times[:4000]
    x = np.array([[number(r[i]) for i in cols] for r in kept], dtype=float)
    return [header[i] for i in cols], times, x


DATASETS = {"bibmon": load_bibmon, "hvac": load_hvac}


def correlated_variables(x, n_train, top=8):
    """Variables ranked by their largest |correlation| with another one on the training part."""
    t = x[:n_train]
    t = np.where(np.isnan(t), np.nanmean(t, axis=0), t)
    sd = t.std(axis=0)
    ok = np.where(sd > 1e-9)[0]
    c = np.abs(np.corrcoef(t[:, ok], rowvar=False))
    np.fill_diagonal(c, 0)
    order = np.argsort(-c.max(axis=0))
    return [int(ok[i]) for i in order[:top]], sd


def episodes(n):
    length = max(30, int(0.04 * n))
    starts = [int(0.65 * n), int(0.83 * n), int(0.92 * n)]
    return [(s, min(s + length, n)) for s in starts]


def inject(x, kind, var, start, end, sd):
    if kind == "bias":
        x[start:end, var] += 2.0 * sd
    elif kind == "drift":
        x[start:end, var] += np.linspace(0.0, 5.0 * sd, end - start)
    else:
        x[start:end, var] = x[start, var] if not np.isnan(x[start, var]) else np.nanmean(x[:start, var])


def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def prepare(out):
    out.mkdir(parents=True, exist_ok=True)
    lots = [("machine_id", "from_ts", "to_ts", "defect_ratio")]
    for name, load in DATASETS.items():
        names, times, x0 = load()
        n = len(times)
        candidates, sd = correlated_variables(x0, int(TRAIN * n))
        for k, kind in enumerate(KINDS):
            machine = f"{name}-{kind}"
            x = x0.copy()
            label = np.zeros(n, dtype=int)
            for e, (start, end) in enumerate(episodes(n)):
                var = candidates[(3 * k + e) % len(candidates)]
                inject(x, kind, var, start, end, sd[var])
                label[start:end] = 1
            with open(out / f"{machine}.csv", "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["_time", *names])
                for t, row in zip(times, x):
                    w.writerow([iso(t), *("" if np.isnan(v) else repr(float(v)) for v in row)])
            np.savez(out / f"{machine}.npz", x=x, label=label)
            # Lots that do not overlap: each run of equal labels is one lot.
            i = 0
            while i < n:
                j = i
                while j + 1 < n and label[j + 1] == label[i]:
                    j += 1
                lots.append((machine, iso(times[i]), iso(times[j]), f"{float(label[i]):.1f}"))
                i = j + 1
    with open(out / "lots.csv", "w", newline="") as f:
        csv.writer(f).writerows(lots)
    print(json.dumps(sorted(p.stem for p in out.glob("*.npz"))))


def t2_baseline(x, label, false_alarm):
    """scikit-learn PCA (90 % of the variance) with Hotelling's T² on the training part's rows;
    the threshold gives `false_alarm` on the test part's good rows; detection on its faults."""
    from sklearn.decomposition import PCA

    n = len(x)
    n_train, n_val = int(round(TRAIN * n)), int(round((TRAIN + VAL) * n))
    train = x[:n_train]
    mean = np.nanmean(train, axis=0)
    x = np.where(np.isnan(x), mean, x)
    sd = x[:n_train].std(axis=0)
    keep = sd > 1e-9 * np.maximum(1.0, np.abs(mean))
    z = (x[:, keep] - mean[keep]) / sd[keep]
    pca = PCA(n_components=0.9, svd_solver="full").fit(z[:n_train])
    t2 = ((pca.transform(z) ** 2) / pca.explained_variance_).sum(axis=1)
    test, lab = t2[n_val:], label[n_val:]
    good = np.sort(test[lab == 0])
    # The smallest threshold whose false-alarm rate on good test rows is at most ours.
    allowed = int(np.floor(false_alarm * len(good)))
    threshold = good[len(good) - allowed - 1] if allowed < len(good) else -np.inf
    return {
        "components": int(pca.n_components_),
        "false_alarm": float((good > threshold).mean()),
        "detection": float((test[lab == 1] > threshold).mean()),
    }


def baseline(out, report_path):
    report = json.load(open(report_path))
    result = {}
    for key in report["keys"]:
        machine = key["key"]["machine_id"]
        if key.get("skipped"):
            continue
        chosen = key["selection"]["kind"]
        ours = key[chosen]
        fa = ours["false_alarms"]["test_rate"]["value"]
        data = np.load(out / f"{machine}.npz")
        result[machine] = {
            "family": chosen,
            "ours_detection": ours["test"]["recall"]["value"],
            "ours_false_alarm": fa,
            "target": ours["false_alarms"]["target"],
            "pca_t2": t2_baseline(data["x"], data["label"], fa),
        }
        # The families' combination, measured beside the selection (train reports, never ships it).
        combined = key.get("combined")
        if combined:
            cfa = combined["false_alarms"]["test_rate"]["value"]
            result[machine]["combined"] = {
                "detection": combined["test"]["recall"]["value"],
                "false_alarm": cfa,
                "pca_t2": t2_baseline(data["x"], data["label"], cfa),
            }
    print(json.dumps(result))


if __name__ == "__main__":
    if sys.argv[1] == "prepare":
        prepare(pathlib.Path(sys.argv[2]))
    else:
        baseline(pathlib.Path(sys.argv[2]), sys.argv[3])
