"""Spectral clustering of voice embeddings with the speaker count read from the eigengap.

Follows the auto-tuning spectral clustering of Park et al. (2019, "NME-SC"): cosine affinities,
each row pruned to its strongest ``p`` neighbours (which removes the weak cross-speaker links
that blur the clusters), the normalised graph Laplacian's eigengap gives the count, and ``p``
is chosen where the gap is clearest. numpy only, deterministic (fixed seed).

An agglomerative clustering forced to two clusters was tried and failed on AMI (one outlier
window took a whole cluster); spectral clustering is robust to that.
"""

from __future__ import annotations

import numpy as np

__all__ = ["MAX_POINTS", "cluster_embeddings", "estimate_speakers"]

MAX_SPEAKERS = 8
# Above this many windows (~19 min of speech at 0.75 s hop) the spectral step runs on an even
# subsample and the rest join the nearest centroid: eigh is cubic, and the affinity matrix of a
# one-hour session (4,800 windows) alone would take 90 MB.
MAX_POINTS = 1500
# Two clusters whose centroids are this similar are one voice (typical: same speaker 0.85-0.95,
# different speakers 0.5-0.8 with this encoder). It lets the count fall to one speaker, which an
# eigengap alone cannot say.
SAME_SPEAKER_COSINE = 0.86
# Row pruning levels tried (share of neighbours kept). Keeping fewer than a handful of
# neighbours splits a short recording into many tiny "speakers" (seen on AMI: 8 found for 3).
PRUNING_FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5)
MIN_NEIGHBOURS = 4
# A "speaker" with fewer windows than this (about 2 s of speech, or 2% of a long session) is
# more likely a cough, laugh or an odd window than a person; it joins the nearest voice.
MIN_CLUSTER_WINDOWS = 3
MIN_CLUSTER_SHARE = 0.02
_SEED = 20261130


def _affinity(embeddings: np.ndarray) -> np.ndarray:
    affinity: np.ndarray = np.clip(embeddings @ embeddings.T, 0.0, 1.0).astype(np.float64)
    return affinity


def _pruned(affinity: np.ndarray, keep: int) -> np.ndarray:
    """Keep each row's ``keep`` largest affinities, zero the rest, then symmetrise."""
    n = affinity.shape[0]
    keep = min(max(keep, 1), n)
    threshold = np.partition(affinity, n - keep, axis=1)[:, n - keep][:, None]
    pruned = np.where(affinity >= threshold, affinity, 0.0)
    return (pruned + pruned.T) / 2.0


def _laplacian_eig(affinity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (ascending) and eigenvectors of the symmetric normalised Laplacian."""
    degree = affinity.sum(axis=1)
    inv_sqrt = 1.0 / np.sqrt(np.maximum(degree, 1e-12))
    laplacian = np.eye(affinity.shape[0]) - inv_sqrt[:, None] * affinity * inv_sqrt[None, :]
    values, vectors = np.linalg.eigh(laplacian)
    return values, vectors


def _count_from_gaps(values: np.ndarray, max_speakers: int) -> tuple[int, float]:
    """Speaker count at the largest eigengap among the first ``max_speakers`` + 1 values."""
    head = values[: max_speakers + 1]
    gaps = np.diff(head)
    if gaps.size == 0:
        return 1, 0.0
    k = int(np.argmax(gaps)) + 1
    return k, float(gaps[k - 1])


def _kmeans(points: np.ndarray, k: int, rng: np.random.Generator, n_init: int = 8) -> np.ndarray:
    """k-means++ with a few restarts; returns labels of the best (lowest inertia) run."""
    n = points.shape[0]
    best_labels = np.zeros(n, dtype=np.int64)
    best_inertia = np.inf
    for _ in range(n_init):
        centres = [points[rng.integers(n)]]
        for _ in range(1, k):
            d2 = np.min(((points[:, None, :] - np.array(centres)[None]) ** 2).sum(-1), axis=1)
            total = d2.sum()
            pick = rng.choice(n, p=d2 / total) if total > 0 else rng.integers(n)
            centres.append(points[pick])
        c = np.array(centres)
        labels = np.zeros(n, dtype=np.int64)
        for _ in range(100):
            d2 = ((points[:, None, :] - c[None]) ** 2).sum(-1)
            new = np.argmin(d2, axis=1)
            if np.array_equal(new, labels) and _ > 0:
                break
            labels = new
            for j in range(k):
                members = points[labels == j]
                if len(members):
                    c[j] = members.mean(axis=0)
        inertia = float(((points - c[labels]) ** 2).sum())
        if inertia < best_inertia:
            best_inertia, best_labels = inertia, labels.copy()
    return best_labels


def _spectral(embeddings: np.ndarray, num_speakers: int | None, max_speakers: int) -> np.ndarray:
    n = embeddings.shape[0]
    affinity = _affinity(embeddings)
    # NME-SC: try several pruning levels; the best makes the eigengap large for few neighbours.
    best: tuple[float, int, np.ndarray] | None = None
    for fraction in PRUNING_FRACTIONS:
        keep = max(MIN_NEIGHBOURS, int(round(fraction * n)))
        values, vectors = _laplacian_eig(_pruned(affinity, keep))
        k, gap = _count_from_gaps(values, min(max_speakers, n - 1))
        if num_speakers is not None:
            k = num_speakers
        ratio = keep / max(gap, 1e-9)
        if best is None or ratio < best[0]:
            best = (ratio, k, vectors)
    assert best is not None
    _, k, vectors = best
    if k <= 1:
        return np.zeros(n, dtype=np.int64)
    spectral = vectors[:, :k]
    spectral = spectral / np.maximum(np.linalg.norm(spectral, axis=1, keepdims=True), 1e-12)
    return _kmeans(spectral, k, np.random.default_rng(_SEED))


def _centroids(embeddings: np.ndarray, labels: np.ndarray) -> np.ndarray:
    ids = np.unique(labels)
    cents = np.stack([embeddings[labels == i].mean(axis=0) for i in ids])
    normed: np.ndarray = cents / np.maximum(np.linalg.norm(cents, axis=1, keepdims=True), 1e-12)
    return normed


def _merge_similar(embeddings: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Merge clusters whose centroids are so close they must be one voice."""
    labels = labels.copy()
    while len(np.unique(labels)) > 1:
        ids = np.unique(labels)
        cents = _centroids(embeddings, labels)
        sims = cents @ cents.T
        np.fill_diagonal(sims, -1.0)
        a, b = np.unravel_index(int(np.argmax(sims)), sims.shape)
        if sims[a, b] < SAME_SPEAKER_COSINE:
            break
        labels[labels == ids[b]] = ids[a]
    return labels


def _absorb_small(embeddings: np.ndarray, labels: np.ndarray, min_size: int) -> np.ndarray:
    """Give the windows of clusters smaller than ``min_size`` to the nearest larger cluster."""
    labels = labels.copy()
    ids, counts = np.unique(labels, return_counts=True)
    big = ids[counts >= min_size]
    if big.size == 0 or big.size == ids.size:
        return labels
    cents = np.stack([embeddings[labels == i].mean(axis=0) for i in big])
    small = ~np.isin(labels, big)
    labels[small] = big[np.argmax(embeddings[small] @ cents.T, axis=1)]
    return labels


def _relabel(labels: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... in order of first appearance."""
    order: dict[int, int] = {}
    for value in labels.tolist():
        order.setdefault(value, len(order))
    return np.array([order[v] for v in labels.tolist()], dtype=np.int64)


def cluster_embeddings(
    embeddings: np.ndarray, num_speakers: int | None = None, max_speakers: int = MAX_SPEAKERS
) -> np.ndarray:
    """Cluster L2-normalised embeddings (N, D) -> labels (N,), 0-based by first appearance.

    ``num_speakers`` forces the count; otherwise it is estimated (1 to ``max_speakers``).
    """
    n = embeddings.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if num_speakers is not None and num_speakers < 1:
        raise ValueError("The number of speakers must be at least 1.")
    if n < 3 or num_speakers == 1:
        return np.zeros(n, dtype=np.int64)
    if num_speakers is not None:
        num_speakers = min(num_speakers, n)
    emb = embeddings.astype(np.float64)
    if n > MAX_POINTS:
        index = np.linspace(0, n - 1, MAX_POINTS).round().astype(np.int64)
        sub_labels = _spectral(emb[index], num_speakers, max_speakers)
        cents = _centroids(emb[index], sub_labels)
        labels = np.argmax(emb @ cents.T, axis=1)
        # One refinement pass with centroids from all windows.
        cents = _centroids(emb, labels)
        labels = np.unique(labels)[np.argmax(emb @ cents.T, axis=1)]
    else:
        labels = _spectral(emb, num_speakers, max_speakers)
    if num_speakers is None:
        labels = _absorb_small(emb, labels, max(MIN_CLUSTER_WINDOWS, int(MIN_CLUSTER_SHARE * n)))
        labels = _merge_similar(emb, labels)
    return _relabel(labels)


def estimate_speakers(embeddings: np.ndarray, max_speakers: int = MAX_SPEAKERS) -> int:
    """How many voices the embeddings hold (the count ``cluster_embeddings`` would use)."""
    return int(len(np.unique(cluster_embeddings(embeddings, None, max_speakers))))
