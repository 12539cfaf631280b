"""An ordered series as a table: does the tuned network beat RidgeCV and a hand-written GRU on the same split?

    python benchmarks/tune_series.py                 # 3 seeds, --timeout 90 each
    python benchmarks/tune_series.py --seeds 1 --timeout 60

The data: an autoregressive process with a cycle, y_t = 0.6 y_{t-1} - 0.3 y_{t-2} + sin(2 pi t / 12) + noise,
written as 24 lag columns (lag_1 .. lag_24, oldest last), a time index `t` and the next value `y`, a few
hundred rows of CSV. `--time t` makes the last fifth of the series the test split; every contender takes
its development and test rows from tunesmith's own loader (`load_data`), so all see exactly the same rows.

Contenders, all on the same rows, in the same run:
- RidgeCV on the lags (scikit-learn, the linear model a user tries first);
- a hand-written GRU (hidden 32, Adam 1e-3, batches of 32, best validation epoch kept, on the last fifth
  of the development rows), trained for the same wall-clock budget as the tune;
- `tunesmith tune --timeout T` (the capacity stage may choose the family: the columns form an ordered
  series), whose test RMSE is its final model's (the refit ensemble). tunesmith finds the cycle in the time
  column `t` (data/season.py: period 12 on every seed) and gives every model the row's phase in it, sin and cos.
Printed: test RMSE per contender and seed, and tune / best-baseline ratios (issue 14: at most 1.0). Beside them,
for fairness, RidgeCV given the same phase columns tunesmith adds ("Ridge+phase": what the season alone buys a
linear model), and the floor: the RMSE of the process's own conditional mean, coefficients and the cycle's
phase known (`true_mean`).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

LAGS = 24
PHI = (0.6, -0.3)  # the autoregression
PERIOD = 12  # the cycle, sin(2 pi t / PERIOD)
BURN = 50  # steps dropped at the start


def cycle(t: np.ndarray) -> np.ndarray:
    return np.sin(2 * np.pi * t / PERIOD)


def series(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y = np.zeros(n + LAGS + BURN)
    for t in range(2, len(y)):
        y[t] = PHI[0] * y[t - 1] + PHI[1] * y[t - 2] + cycle(np.asarray(t)) + 0.4 * rng.normal()
    return y[BURN:]


def true_mean(path: Path, yt: np.ndarray) -> float:
    """The test RMSE of the process's own conditional mean (the coefficients and the cycle's phase known):
    the noise floor no model reaches. The test rows are the CSV's last rows (--time t: the most recent)."""
    import pandas as pd

    rows = pd.read_csv(path).sort_values("t").tail(len(yt))
    assert np.allclose(rows["y"].to_numpy(np.float32), yt)
    t = rows["t"].to_numpy() + LAGS + BURN  # the CSV's row r predicts the series' step r + LAGS
    return rmse(PHI[0] * rows["lag_1"] + PHI[1] * rows["lag_2"] + cycle(t), yt)


def windows(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, LAGS) lags (lag_1 first) and the next value."""
    x = np.stack([y[t - LAGS : t][::-1] for t in range(LAGS, len(y))])
    return x.astype(np.float32), y[LAGS:].astype(np.float32)


def rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(a).ravel() - np.asarray(b).ravel()) ** 2)))


def ridge(x: np.ndarray, y: np.ndarray, xt: np.ndarray, yt: np.ndarray) -> float:
    from sklearn.linear_model import RidgeCV

    return rmse(RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(x, y).predict(xt), yt)


class GRU(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(1, 32, batch_first=True)
        self.head = nn.Linear(32, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(x.flip(1).unsqueeze(-1))  # oldest lag first
        return self.head(out[:, -1]).squeeze(-1)


def hand_gru(x: np.ndarray, y: np.ndarray, xt: np.ndarray, yt: np.ndarray, seconds: float, seed: int) -> float:
    """A careful hand loop: standardized inputs and target, a validation fifth, the best epoch's weights."""
    torch.manual_seed(seed)
    cut = int(len(x) * 0.8)
    mx, sx, my, sy = x[:cut].mean(), x[:cut].std(), y[:cut].mean(), y[:cut].std()
    xs, ys = torch.tensor((x - mx) / sx), torch.tensor((y - my) / sy)
    model, best, best_state = GRU(), np.inf, None
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        model.train()
        for idx in torch.randperm(cut).split(32):
            opt.zero_grad()
            nn.functional.mse_loss(model(xs[idx]), ys[idx]).backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            val = float(nn.functional.mse_loss(model(xs[cut:]), ys[cut:]))
        if val < best:
            best, best_state = val, {k: v.clone() for k, v in model.state_dict().items()}
    assert best_state is not None
    model.load_state_dict(best_state)
    with torch.no_grad():
        pred = model(torch.tensor((xt - mx) / sx)).numpy() * sy + my
    return rmse(pred, yt)


def write_csv(y_series: np.ndarray, path: Path) -> None:
    import pandas as pd

    x, y = windows(y_series)
    frame = pd.DataFrame(x, columns=[f"lag_{k}" for k in range(1, LAGS + 1)])
    frame.insert(0, "t", np.arange(len(frame)))
    frame["y"] = y
    frame.to_csv(path, index=False)


def split_rows(path: Path, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """tunesmith's own development and test rows of the CSV (time-ordered: the test rows come last): lags, target,
    test lags, test target, and the sin and cos of the season tunesmith finds (data/season.py) for both."""
    from tunesmith.data import load_data
    from tunesmith.data.season import season_terms
    from tunesmith.recipe import make_recipe

    loaded = load_data(make_recipe(data=str(path), target="y", time="t").data, seed=seed)
    assert loaded.season is not None and loaded.season["period"] == PERIOD, loaded.season
    phase, phase_test = (season_terms(loaded.season, t) for t in (loaded.raw.time, loaded.time_test))
    as_array = lambda a: np.asarray(a, dtype=np.float32)  # noqa: E731
    x, xt = as_array(loaded.raw.x), as_array(loaded.x_test)
    return x, as_array(loaded.raw.y), xt, as_array(loaded.y_test), phase, phase_test


def tuned(path: Path, folder: Path, timeout: float, seed: int) -> float:
    from tunesmith.tuning.study import tune

    result = tune(
        out=folder / f"tune_{seed}",
        data=str(path),
        target="y",
        time="t",
        timeout=timeout,
        progress=False,
        overrides={"train.seed": seed},
    )
    return float(result.metrics["test"]["rmse"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=90.0)
    parser.add_argument("--rows", type=int, default=500)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; {args.rows} rows, {LAGS} lags")
    heads = ("RidgeCV", "GRU", "tuned", "tuned/best", "Ridge+phase", "tuned/R+ph", "floor", "floor/best")
    print(f"{'seed':>4s} " + " ".join(f"{h:>10s}" for h in heads))
    ratios = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            path = Path(tmp) / f"series_{seed}.csv"
            write_csv(series(args.rows, seed), path)
            x, y, xt, yt, phase, phase_test = split_rows(path, seed)
            lin = ridge(x, y, xt, yt)
            gru = hand_gru(x, y, xt, yt, seconds=args.timeout, seed=seed)
            ours = tuned(path, Path(tmp), args.timeout, seed)
            ratios.append(ours / min(lin, gru))
            floor = true_mean(path, yt)
            seasonal = ridge(np.hstack([x, phase]), y, np.hstack([xt, phase_test]), yt)
            values = (lin, gru, ours, ratios[-1], seasonal, ours / seasonal, floor, floor / min(lin, gru))
            print(f"{seed:4d} " + " ".join(f"{v:10.4f}" for v in values))
    print(f"tuned / better baseline: mean {np.mean(ratios):.3f}, worst {max(ratios):.3f} (issue 14: at most 1.0)")


if __name__ == "__main__":
    main()
