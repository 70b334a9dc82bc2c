"""Names the worked solutions use: activations, update modes, file-name keys."""

from __future__ import annotations

from ..escape import slug

ACTIVATION_NAMES = {
    "relu": "ReLU",
    "leaky_relu": "leaky ReLU",
    "sigmoid": "sigmoid",
    "tanh": "tanh",
    "none": "no activation",
}
UPDATE_NAMES = {
    "per_sample": "after every sample",
    "batch_mean": "once per pass, with the mean gradient",
    "batch_sum": "once per pass, with the summed gradient",
}
WIDE_CLASSES = 6  # more classes than this: the summary table names the predicted class instead


def unique_slugs(names) -> list[str]:
    """File-name-safe keys, unique even on case-insensitive disks: ['Cat', 'cat!'] -> ['Cat', 'cat-2']."""
    out: list[str] = []
    for name in names:
        base = key = slug(name)
        n = 1
        while key.lower() in (k.lower() for k in out):
            n += 1
            key = f"{base}-{n}"
        out.append(key)
    return out
