"""The evaluation data: human-labelled sentences that ship inside public packages (``make eval``).

Nothing here is committed: :func:`fetch` downloads two packages into a cache directory with their
ordinary clients, and :func:`load_sets` reads the labelled files they contain.

* ``vaderSentiment==3.3.2`` source distribution (PyPI, MIT licence): ``additional_resources/
  hutto_ICWSM_2014.tar.gz`` holds the ground truth of Hutto & Gilbert (ICWSM 2014): tweets,
  Amazon product-review snippets, movie-review snippets and New York Times editorial snippets,
  each rated -4..+4 by 20 independent raters. Three classes from the mean rating rounded to the
  nearest scale point: mean <= -0.5 negative, mean >= 0.5 positive, otherwise neutral. The same
  archive keeps every rater's rating (``*_anonDataRatings.txt``): :func:`load_ratings` reads them,
  so ``make eval`` can show how well one human rater agrees with the others (the data's ceiling).
* ``sentiment@5.0.2`` npm package (MIT licence): ``test/fixtures/{amazon,yelp,imdb}.json``, the
  "Sentiment Labelled Sentences" of Kotzias et al. (KDD 2015), 0/1 labels (binary).

Split: within each set, identical texts are kept once; a text belongs to the *tune* split when
the first 8 hex digits of SHA-256(text) mod 100 are below 50, else to the *report* split. Only the
tune split is used to fit anything; results are reported on the report split.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from pipeline.errors import ConfigError

VADER_SDIST = "vaderSentiment==3.3.2"
NPM_PACKAGE = "sentiment@5.0.2"
VADER_SETS = {"vader-tweets": "tweets", "vader-amazon": "amazonReviewSnippets",
              "vader-movies": "movieReviewSnippets", "vader-nyt": "nytEditorialSnippets"}
NPM_SETS = {"npm-amazon": "amazon", "npm-yelp": "yelp", "npm-imdb": "imdb"}
Rows = list[tuple[str, str]]


def fetch(cache: Path) -> Path:
    """Download the two packages into ``cache`` (once) and unpack the labelled files; returns ``cache``."""
    cache.mkdir(parents=True, exist_ok=True)
    marker = cache / "READY"
    if marker.exists() and all((cache / f"{stem}_anonDataRatings.txt").exists() for stem in VADER_SETS.values()):
        return cache
    sdists = list(cache.glob("vaderSentiment-*.tar.gz"))
    if not sdists:
        _run([sys.executable, "-m", "pip", "download", "--quiet", "--no-binary", ":all:", "--no-deps",
              "-d", str(cache), VADER_SDIST], "pip")
        sdists = list(cache.glob("vaderSentiment-*.tar.gz"))
    with tarfile.open(sdists[0]) as outer:
        inner = next(m for m in outer.getmembers() if m.name.endswith("hutto_ICWSM_2014.tar.gz"))
        data = outer.extractfile(inner)
        assert data is not None
        with tarfile.open(fileobj=io.BytesIO(data.read())) as tf:
            for m in tf.getmembers():
                if m.name.endswith(("_GroundTruth.txt", "_anonDataRatings.txt")):
                    f = tf.extractfile(m)
                    assert f is not None
                    (cache / Path(m.name).name).write_bytes(f.read())
    if shutil.which("npm") is None:
        raise ConfigError("make eval needs npm (Debian: apt-get install npm) to fetch the npm 'sentiment' package")
    tgz = list(cache.glob("sentiment-*.tgz"))
    if not tgz:
        _run(["npm", "pack", "--silent", NPM_PACKAGE], "npm", cwd=cache)
        tgz = list(cache.glob("sentiment-*.tgz"))
    with tarfile.open(tgz[0]) as tf:
        for name in NPM_SETS.values():
            f = tf.extractfile(f"package/test/fixtures/{name}.json")
            assert f is not None
            (cache / f"npm-{name}.json").write_bytes(f.read())
    marker.write_text("ok\n")
    return cache


def _run(argv: list[str], tool: str, cwd: Path | None = None) -> None:
    try:
        subprocess.run(argv, check=True, cwd=cwd, stdout=subprocess.DEVNULL, timeout=600)
    except (OSError, subprocess.SubprocessError) as exc:
        raise ConfigError(f"{tool} could not download the evaluation data: {exc}") from exc


def vader_label(mean: float) -> str:
    """A mean rating on -4..+4, rounded to the nearest scale point: <0 negative, 0 neutral, >0 positive."""
    if mean <= -0.5:
        return "negative"
    return "positive" if mean >= 0.5 else "neutral"


def load_sets(cache: Path) -> dict[str, Rows]:
    """Every evaluation set as (text, label) rows, de-duplicated, in file order."""
    sets: dict[str, Rows] = {}
    for name, stem in VADER_SETS.items():
        sets[name] = _dedupe([(text, vader_label(mean)) for _, mean, text in _ground_truth(cache, stem)])
    for name, stem in NPM_SETS.items():
        items = json.loads((cache / f"npm-{stem}.json").read_text("utf-8"))
        sets[name] = _dedupe([(str(x["text"]).strip(), "positive" if int(x["class"]) == 1 else "negative")
                              for x in items if str(x["text"]).strip()])
    return sets


def _ground_truth(cache: Path, stem: str) -> list[tuple[str, float, str]]:
    """(item id, mean rating, text) of each line of a VADER set's ground-truth file, in file order."""
    out = []
    for line in (cache / f"{stem}_GroundTruth.txt").read_text("utf-8", errors="replace").splitlines():
        parts = line.split("\t")
        if len(parts) >= 3 and parts[2].strip():
            out.append((parts[0], float(parts[1]), parts[2].strip()))
    return out


def load_ratings(cache: Path) -> dict[str, dict[str, list[int]]]:
    """Every rater's rating behind each VADER set's label: set -> text -> ratings (-4..+4).

    Only items whose ratings average to the ground truth's mean are kept (the ratings behind the
    label). For 199 of the 200 tweets written to test VADER's rules, the archive holds about 95
    ratings from another collection whose mean is not the ground truth's; they are left out.
    """
    out: dict[str, dict[str, list[int]]] = {}
    for name, stem in VADER_SETS.items():
        truth = {item: (mean, text) for item, mean, text in _ground_truth(cache, stem)}
        ratings: dict[str, list[int]] = {}
        for line in (cache / f"{stem}_anonDataRatings.txt").read_text("utf-8", errors="replace").splitlines():
            parts = line.split("\t")
            if len(parts) < 4 or parts[0] not in truth:
                continue
            values = json.loads(parts[3])
            mean, text = truth[parts[0]]
            if values and abs(sum(values) / len(values) - mean) < 1e-3:
                ratings.setdefault(text, [int(v) for v in values])
        out[name] = ratings
    return out


def _dedupe(rows: Rows) -> Rows:
    seen: set[str] = set()
    out = []
    for text, label in rows:
        if text not in seen:
            seen.add(text)
            out.append((text, label))
    return out


def is_tune(text: str) -> bool:
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:8], 16) % 100 < 50


def split(rows: Rows) -> tuple[Rows, Rows]:
    """(tune, report) of one set (see the module docstring)."""
    tune = [r for r in rows if is_tune(r[0])]
    report = [r for r in rows if not is_tune(r[0])]
    return tune, report
