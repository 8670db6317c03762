"""Checkpoints of a training run: what makes a run resumable, and what makes resuming safe.

A checkpoint (``checkpoint.pt``, written atomically after every epoch) holds the model,
the optimiser, the RNG states (global torch CPU/CUDA and the run's own shuffling and
augmentation generator), the per-epoch history and a fingerprint of the configuration,
the data and the key. A run restarted in the same folder continues from it; a damaged
checkpoint or one of another configuration raises :class:`CheckpointError` naming the
file, never silent reuse.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from .files import atomic_write, remove_interrupted_writes

CHECKPOINT = "checkpoint.pt"
FORMAT = "ppdnn-train-checkpoint-v1"
REQUIRED = {"format", "fingerprint", "config", "epoch", "model", "optimizer", "schedule", "rng",
            "history"}


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: unreadable, not ours, or from another configuration."""


def fingerprint(config: dict, arrays: list[np.ndarray], cipher=None, image_shape=(32, 32)) -> str:
    """Hash of the configuration, the training/test data and (for client augmentation) the key."""
    h = hashlib.sha256(json.dumps(config, sort_keys=True).encode())
    for a in arrays:
        h.update(str((a.dtype.str, a.shape)).encode())
        h.update(hashlib.blake2b(np.ascontiguousarray(a).data, digest_size=32).digest())
    if cipher is not None:
        h.update(_key_probe(cipher, image_shape))
    return h.hexdigest()


def _key_probe(cipher, image_shape) -> bytes:
    """The encryption of a fixed image whose channels differ at every pixel identifies the key."""
    height, width = image_shape
    pixel = torch.arange(height * width).reshape(1, 1, height, width)
    probe = ((pixel + 85 * torch.arange(3).reshape(1, 3, 1, 1)) % 256).to(torch.uint8)
    return hashlib.sha256(cipher.encrypt(probe).cpu().numpy().tobytes()).digest()


def rng_state(generator: torch.Generator) -> dict:
    return {"torch": torch.get_rng_state(), "generator": generator.get_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def restore_rng_state(rng: dict, generator: torch.Generator) -> None:
    torch.set_rng_state(rng["torch"])
    generator.set_state(rng["generator"])
    if rng["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])


def save(path: Path, state: dict) -> None:
    atomic_write(path, lambda f: torch.save({"format": FORMAT, **state}, f))


def load(path: Path, expected_fingerprint: str, config: dict) -> dict | None:
    """The checkpoint at ``path`` (None if there is none), checked against this run.

    Temporary files left by a write that was killed are removed first. Read with
    ``weights_only=True``; corrupt files and other configurations raise CheckpointError.
    """
    path = Path(path)
    remove_interrupted_writes(path)
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for damaged files
        raise CheckpointError(f"{path}: unreadable checkpoint ({type(exc).__name__}: {str(exc)[:200]}); "
                              "it is corrupt or not a ppdnn checkpoint - delete it to start afresh") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT or not REQUIRED <= set(state):
        raise CheckpointError(f"{path}: not a {FORMAT} checkpoint; delete it to start afresh")
    if state["fingerprint"] != expected_fingerprint:
        saved = state["config"]
        diffs = [f"{k}: {saved.get(k)!r} -> {config.get(k)!r}" for k in sorted(set(saved) | set(config))
                 if saved.get(k) != config.get(k)]
        what = "; ".join(diffs) if diffs else "same settings but different data or key"
        raise CheckpointError(f"{path} belongs to another configuration ({what}); "
                              "use another out_dir or delete the checkpoint")
    epoch, epochs = state["epoch"], config.get("epochs")
    if not (isinstance(epoch, int) and not isinstance(epoch, bool) and 1 <= epoch <= epochs):
        raise CheckpointError(f"{path}: epoch {epoch!r} is not in 1..{epochs}; the checkpoint is damaged "
                              "- delete it to start afresh")
    if not isinstance(state["history"], list) or len(state["history"]) != epoch:
        raise CheckpointError(f"{path}: history of {len(state['history']) if isinstance(state['history'], list) else '?'} "
                              f"epochs does not match epoch {epoch}; delete it to start afresh")
    return state
