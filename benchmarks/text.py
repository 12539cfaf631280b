"""Real text: tunesmith's from-scratch default against TF-IDF + logistic regression on Linux man pages.

    python benchmarks/text.py                       # at most 400 pages per section (859 in all), seed 0
    python benchmarks/text.py --per-section 150 --seeds 0 1 2

The set (docs/text.md): the Linux man-pages project's pages that Debian's `manpages` and `manpages-dev`
packages install under /usr/share/man (the `.TH` line names "Linux man-pages"; other packages' pages,
`.so` redirects and alias symlinks are skipped), labelled by section: 2 system calls, 3 library functions,
4 devices, 5 file formats, 7 overviews; a section contributes at most `--per-section` pages (a seeded
sample). A page's text is its NAME and DESCRIPTION sections, read from the gzip'd troff without `man`:
comment lines and requests without text dropped, font and escape macros stripped, the first MAX_WORDS
words kept.
Sections 2 and 3 both document C interfaces: the hard pair.

Both contenders see the same rows: tunesmith's own loader (`load_data`) makes the test split and the
development rows; TF-IDF + LogisticRegressionCV (scikit-learn, on the raw text, word unigrams and bigrams)
trains on all development rows, and again on the network's training rows alone; `tunesmith fit` (the
defaults: bag of words and word pairs) trains on its train split of them, with validation for early
stopping. Printed: test accuracy of each and the gap (issue 13: the from-scratch default within 2 points
of TF-IDF + LR).
"""

from __future__ import annotations

import argparse
import gzip
import re
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

MAN = Path("/usr/share/man")
SECTIONS = ("2", "3", "4", "5", "7")
MAX_WORDS = 300
_FONT = re.compile(r"\\f(\[[^]]*\]|\(..|.)")  # \fB, \f(CW, \f[I]
_ESCAPES = re.compile(r"\\(\(..|\[[^]]*\]|[*n]\(?..|.)")  # \(em, \[aq], \*(lq, \-, \&, ...
_KEEP = ("SH", "SS", "B", "I", "BR", "BI", "IR", "IB", "RB", "RI", "TP", "IP", "PP", "P", "LP", "HP")


def page_text(path: Path) -> tuple[str, str] | None:
    """(NAME + DESCRIPTION text, .TH line) of a man-pages page, or None (another project's page, a redirect)."""
    try:
        with gzip.open(path, "rt", encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return None
    title = next((line for line in lines if line.startswith(".TH")), "")
    if "Linux man-pages" not in title:
        return None
    words: list[str] = []
    keep = False
    for line in lines:
        if line.startswith(('.\\"', "'\\\"")):
            continue
        if line.startswith(".SH"):
            keep = line[3:].strip().strip('"').upper() in ("NAME", "DESCRIPTION")
            continue
        if not keep:
            continue
        if line.startswith((".", "'")):
            macro, _, rest = line[1:].partition(" ")
            if macro not in _KEEP:
                continue
            line = rest.replace('"', "")
        text = _ESCAPES.sub(" ", _FONT.sub("", line))
        words.extend(text.split())
        if len(words) >= MAX_WORDS:
            break
    return (" ".join(words[:MAX_WORDS]), title) if len(words) >= 5 else None


def man_pages(per_section: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for section in SECTIONS:
        files = sorted(p for p in (MAN / f"man{section}").glob("*.gz") if not p.is_symlink())  # aliases: links
        pages = [(p, page_text(p)) for p in files]
        found = [(p.name, t[0]) for p, t in pages if t is not None]
        for i in rng.permutation(len(found))[:per_section]:
            rows.append({"page": found[i][0], "text": found[i][1], "section": f"man{section}"})
    return pd.DataFrame(rows)


def tfidf_lr(train: pd.DataFrame, test: pd.DataFrame) -> float:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.pipeline import make_pipeline

    model = make_pipeline(
        TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=2),
        LogisticRegressionCV(Cs=[0.1, 1, 10, 100], max_iter=1000),
    )
    model.fit(train["text"], train["section"])
    return float((model.predict(test["text"]) == test["section"]).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-section", type=int, default=400)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args()

    import tunesmith as ts
    from tunesmith.data import load_data
    from tunesmith.recipe import DataConfig

    scores: dict[str, list[float]] = {"tfidf": [], "same": [], "ours": []}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            frame = man_pages(args.per_section, seed)
            counts = frame["section"].value_counts().sort_index().to_dict()
            path = Path(tmp) / f"man-{seed}.csv"
            frame[["text", "section"]].to_csv(path, index=False)
            loaded = load_data(DataConfig(source=str(path), target="section", text="text"), seed=seed)
            dev = pd.DataFrame({"text": loaded.raw.x["text"], "section": loaded.raw.y})
            test = pd.DataFrame({"text": loaded.x_test["text"], "section": loaded.y_test})
            started = time.perf_counter()
            baseline = tfidf_lr(dev, test)
            seconds_lr = time.perf_counter() - started
            same_rows = tfidf_lr(dev.iloc[loaded.folds[0].train], test)  # the rows the network trains on
            started = time.perf_counter()
            result = ts.fit(
                data=str(path), target="section", seed=seed, out=Path(tmp) / f"run-{seed}", progress=False, report=False
            )
            seconds_ts = time.perf_counter() - started
            ours = result.metrics["test"]["accuracy"]
            print(f"seed {seed}: {len(frame)} pages {counts}, test rows {len(test)}")
            print(f"  TF-IDF + LogisticRegressionCV   test accuracy {baseline:.4f}  ({seconds_lr:.1f} s, all dev rows)")
            print(f"  TF-IDF + LogisticRegressionCV   test accuracy {same_rows:.4f}  (the network's training rows)")
            print(
                f"  tunesmith fit (default: {result.recipe.model.family}) test accuracy {ours:.4f}  "
                f"({seconds_ts:.1f} s, {result.metrics['epochs']} epochs)"
            )
            print(f"  gap (TF-IDF + LR - tunesmith): {100 * (baseline - ours):+.1f} points")
            for key, value in (("tfidf", baseline), ("same", same_rows), ("ours", ours)):
                scores[key].append(value)
    mean = {key: float(np.mean(values)) for key, values in scores.items()}
    print(
        f"mean over {len(args.seeds)} seed(s): TF-IDF + LR {mean['tfidf']:.4f} (all dev rows), {mean['same']:.4f} "
        f"(the network's rows); tunesmith {mean['ours']:.4f}; gap {100 * (mean['tfidf'] - mean['ours']):+.1f} points"
    )


if __name__ == "__main__":
    main()
