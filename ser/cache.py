"""The feature cache: each clip's features (and augmented variants) computed once, on all
cores, and kept outside the repository as plain ``.npy`` arrays (never pickles)."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from .audio import with_noise
from .errors import SERError, TrainingStopped
from .features import FeatureConfig
from .options import Augmentation, Progress, ProgressFn


def default_cache_dir() -> Path:
    """Outside the repository: ``SER_CACHE_DIR`` or ``~/.cache/ser``."""
    env = os.environ.get("SER_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "ser"


def _file_key(path: Path, augmentation: str) -> str:
    stat = path.stat()
    identity = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{augmentation}"
    return hashlib.sha1(identity.encode("utf-8", "surrogateescape")).hexdigest()  # any file name


def _augment(
    samples: np.ndarray, augmentation: str, *, sample_rate_hz: int, seed: int
) -> np.ndarray:
    """A deterministic variant of a clip (same file, same variant), for training only."""
    if not augmentation:
        return samples
    rng = np.random.default_rng(seed)
    if augmentation == Augmentation.NOISE.value:
        return with_noise(samples, snr_db=rng.uniform(15, 30), rng=rng)
    if augmentation == Augmentation.CHANNEL.value:
        from .augment import channel_variant

        return channel_variant(samples, sample_rate_hz=sample_rate_hz, seed=seed)
    import librosa

    if augmentation == Augmentation.PITCH.value:
        steps = rng.choice([-2.0, -1.0, 1.0, 2.0])
        return librosa.effects.pitch_shift(samples, sr=sample_rate_hz, n_steps=steps)
    return librosa.effects.time_stretch(samples, rate=rng.uniform(0.85, 1.15))


def _cache_path(cache_root: str | Path, cfg: FeatureConfig, key: str) -> Path:
    return Path(cache_root) / cfg.cache_key() / key[:2] / f"{key}.npy"


def is_cached(cache_root: str | Path, cfg: FeatureConfig, path: Path, augmentation: str) -> bool:
    """Whether a clip's features for ``cfg`` are in the cache (a combined kind's: both parts)."""
    from . import features as feats

    if cfg.kind is feats.FeatureKind.COMPARE_STATISTICS:
        return all(is_cached(cache_root, p, path, augmentation) for p in feats.parts(cfg))
    return _cache_path(cache_root, cfg, _file_key(path, augmentation)).is_file()


def _clip_features(
    path: str, config: dict[str, Any], augmentation: str, cache_root: str
) -> np.ndarray | str:
    """Worker: one clip's features (from the cache when there), or the reason it failed."""
    from . import features as feats
    from .audio import load_audio

    clip_path = Path(path)
    cfg = FeatureConfig.from_dict(config)
    if cfg.kind is feats.FeatureKind.COMPARE_STATISTICS:  # from its parts' own cache entries
        computed = [
            _clip_features(path, p.to_dict(), augmentation, cache_root) for p in feats.parts(cfg)
        ]
        failed = [c for c in computed if isinstance(c, str)]
        return failed[0] if failed else feats.combine_parts(*computed, config=cfg)
    key = _file_key(clip_path, augmentation)
    cached = _cache_path(cache_root, cfg, key)
    if cached.is_file():
        try:
            return np.load(cached)
        except (OSError, ValueError):
            pass  # a damaged cache entry is recomputed
    try:
        audio = load_audio(clip_path, sample_rate_hz=cfg.sample_rate_hz)
    except SERError as error:
        return str(error)
    seed = int(key[:8], 16)
    samples = _augment(audio.samples, augmentation, sample_rate_hz=cfg.sample_rate_hz, seed=seed)
    result = feats.extract(samples.astype(np.float32), config=cfg)
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(f".{os.getpid()}.tmp.npy")
    np.save(tmp, result)
    os.replace(tmp, cached)
    return result


def _clip_batch(jobs: list[tuple[str, str]], config: dict[str, Any], cache_root: str) -> list[Any]:
    return [_clip_features(path, config, aug, cache_root) for path, aug in jobs]


def extract_features(
    jobs: Sequence[tuple[Path, str]],
    *,
    config: FeatureConfig,
    cache_dir: Path | None = None,
    workers: int | None = None,
    progress: ProgressFn | None = None,
    stop: threading.Event | None = None,
) -> list[np.ndarray | str]:
    """Features for each (path, augmentation) job, on all cores; failures as reason strings."""
    cache_root = str(cache_dir or default_cache_dir())
    todo = [(str(path), aug) for path, aug in jobs]
    chunks = [todo[i : i + 32] for i in range(0, len(todo), 32)]
    workers = workers or os.cpu_count() or 1
    results: list[Any] = []
    started = time.monotonic()
    report = progress or (lambda _p: None)
    report(Progress("features", 0, len(todo), 0.0))
    # Threads, not processes: decoding, FFTs and matrix products release the GIL, and
    # threads need no re-import of the caller's __main__ (scripts, Streamlit) per worker.
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [
            pool.submit(_clip_batch, chunk, config.to_dict(), cache_root) for chunk in chunks
        ]
        for future in futures:
            if stop is not None and stop.is_set():
                for pending in futures:
                    pending.cancel()
                raise TrainingStopped("Stopped during feature extraction; nothing was saved.")
            results.extend(future.result())
            report(Progress("features", len(results), len(todo), time.monotonic() - started))
    return results
