"""The indexed formulas of a stack's layers, and the flipped-filter picture of a conv layer's input gradient.

Formulas use one generic notation per layer (x its input, z its output, w/b its parameters, indices from 1):
the numbers shown next to them carry the layer's own symbols (m^A, z^P, ...).
"""

from __future__ import annotations

import numpy as np
import sympy

from ..engine.algebra import plus, times
from ..errors import VerificationError
from .layout import heatmap
from .model import Figure, Formula

i, j, k, c, r, q, u, v, n, o = sympy.symbols("i j k c r q u v n o", integer=True, positive=True)


def _bases(N):
    x, z = sympy.IndexedBase(N("input", None)), sympy.IndexedBase(N("conv", None))
    w, b = sympy.IndexedBase(N("filter", None)), sympy.IndexedBase(N("filter_bias", None))
    dx, dz = sympy.IndexedBase(N.grad("input", None)), sympy.IndexedBase(N.grad("conv", None))
    return x, z, w, b, dx, dz


def _position(outer, inner, s: int, p: int):
    """s (outer - 1) + inner - p, written as simply as the numbers allow."""
    if s == 1:
        return plus(outer, inner, sympy.Integer(-1 - p))
    return plus(times(sympy.Integer(s), plus(outer, sympy.Integer(-1))), inner, sympy.Integer(-p))


def conv_forward(N, layer, channels: int) -> Formula:
    """z_{k,i,j} = sum_c sum_u sum_v w_{k,c,u,v} x_{c, s(i-1)+u-p, s(j-1)+v-p} + b_k."""
    x, z, w, b, _, _ = _bases(N)
    kh, kw = layer.kernel_shape
    s, p = layer.stride, layer.padding
    term = times(w[k, c, u, v], x[c, _position(i, u, s, p), _position(j, v, s, p)])
    return Formula(z[k, i, j], plus(sympy.Sum(term, (c, 1, channels), (u, 1, kh), (v, 1, kw)), b[k]))


def conv_input_gradient(N, layer, out_shape: tuple) -> tuple[Formula, Formula]:
    """dL/dx_{c,r,q} = sum_k sum_i sum_j dL/dz_{k,i,j} w_{k,c, r-s(i-1)+p, q-s(j-1)+p} (terms whose filter index
    falls outside the filter dropped), and the same sum as a correlation of the dilated, padded dL/dz with
    the filter rotated by 180 degrees."""
    _, _, w, _, dx, dz = _bases(N)
    kh, kw = layer.kernel_shape
    s, p = layer.stride, layer.padding
    K, H, W = out_shape

    def back(outer, cell):
        if s == 1:
            return plus(cell, sympy.Integer(1 + p), -outer)
        return plus(cell, sympy.Integer(s + p), times(sympy.Integer(-s), outer))

    scatter = sympy.Sum(times(dz[k, i, j], w[k, c, back(i, r), back(j, q)]), (k, 1, K), (i, 1, H), (j, 1, W))
    padded = sympy.IndexedBase(sympy.Symbol("delta"))
    rotated = times(
        padded[k, plus(r, u, sympy.Integer(-1)), plus(q, v, sympy.Integer(-1))],
        w[k, c, plus(sympy.Integer(kh + 1), -u), plus(sympy.Integer(kw + 1), -v)],
    )
    flipped = sympy.Sum(rotated, (k, 1, K), (u, 1, kh), (v, 1, kw))
    return Formula(dx[c, r, q], scatter), Formula(dx[c, r, q], flipped)


def dense_backward(N) -> tuple[Formula, Formula]:
    """dL/da_n = sum_o W_{o,n} dL/dh_o (into a hidden layer), then dL/dh_n = dL/da_n f'(h_n)."""
    W = sympy.IndexedBase(N("weight", None))
    da, dh = sympy.IndexedBase(N.grad("activated", None)), sympy.IndexedBase(N.grad("hidden", None))
    h = sympy.IndexedBase(N("hidden", None))
    f = sympy.Function("f")
    into = Formula(da[n], sympy.Sum(times(W[o, n], dh[o]), (o, 1, sympy.Symbol("O", integer=True, positive=True))))
    through = Formula(dh[n], times(da[n], sympy.Derivative(f(h[n]), h[n])))
    return into, through


def dilated_padded(dz: np.ndarray, layer, in_shape: tuple) -> np.ndarray:
    """dL/dz with (stride - 1) zeros between cells, padded by (filter - 1 - padding) zeros (more at the far
    edge when the stride skipped input rows), so that dL/dx[c, r, q] = sum over k, u, v of
    out[k, r + u, q + v] * rot180(w)[k, c, u, v]."""
    kh, kw = layer.kernel_shape
    s, p = layer.stride, layer.padding
    K, H, W = dz.shape
    dil = np.zeros((K, (H - 1) * s + 1, (W - 1) * s + 1))
    dil[:, ::s, ::s] = dz
    full = np.zeros((K, in_shape[1] + kh - 1, in_shape[2] + kw - 1))
    top, left = kh - 1 - p, kw - 1 - p
    rows, cols = dil.shape[1:]
    # cells that fall outside the frame (padding wider than the filter) cannot reach x
    for a in range(rows):
        for b_ in range(cols):
            ra, cb = top + a, left + b_
            if 0 <= ra < full.shape[1] and 0 <= cb < full.shape[2]:
                full[:, ra, cb] = dil[:, a, b_]
    return full


SHOWN = 6  # a larger padded gradient map is shown around the window only (it must fit a slide)


def around(values: np.ndarray, window: tuple) -> tuple[np.ndarray, tuple[int, int]]:
    """``values`` cut to the window and a margin of one cell, when larger than SHOWN; and the cut's corner."""
    r, q, h, w = window
    corner = []
    for start, size, n in ((r, h, values.shape[0]), (q, w, values.shape[1])):
        corner.append(0 if n <= SHOWN else max(0, min(start - 1, n - min(n, size + 2))))
    rows = values.shape[0] if values.shape[0] <= SHOWN else h + 2
    cols = values.shape[1] if values.shape[1] <= SHOWN else w + 2
    top, left = corner
    return values[top : top + rows, left : left + cols], (top, left)


def flipped_figure(
    key: str,
    layer,
    dz: np.ndarray,
    w: np.ndarray,
    in_shape: tuple,
    cell: tuple,
    expected: float,
    precision: int,
    name: str,
) -> Figure:
    """The upstream-gradient window over the flipped filter for input cell ``cell`` = (c, r, q), checked:
    the window times rot180(w), summed over filters, must give ``expected``."""
    ch, r0, q0 = cell
    kh, kw = layer.kernel_shape
    full = dilated_padded(dz, layer, in_shape)
    rot = w[:, :, ::-1, ::-1]
    total = float(sum((full[kk, r0 : r0 + kh, q0 : q0 + kw] * rot[kk, ch]).sum() for kk in range(w.shape[0])))
    if not np.isclose(total, expected, rtol=1e-9, atol=1e-12):
        raise VerificationError(f"{name}: the flipped-filter correlation gives {total}, the gradient is {expected}")
    contributions = [abs((full[kk, r0 : r0 + kh, q0 : q0 + kw] * rot[kk, ch]).sum()) for kk in range(w.shape[0])]
    kk = int(np.argmax(contributions))
    flt = layer.filters[kk].name
    chan = f", channel {ch + 1}" if w.shape[1] > 1 else ""
    shown, (top, left) = around(full[kk], (r0, q0, kh, kw))
    part = "" if shown.shape == full[kk].shape else ", around the window"
    title = f"dL/dz of filter {flt}, dilated and padded{part}"
    panels = (
        heatmap(title, shown, "diverging", precision, window=(r0 - top, q0 - left, kh, kw)),
        heatmap(f"filter {flt}{chan} rotated by 180 degrees", rot[kk, ch], "diverging", precision),
    )
    caption = (
        f"dL/dx at ({r0 + 1}, {q0 + 1}) of {name}: window times flipped filter"
        + (", summed over filters" if w.shape[0] > 1 else "")
        + f" = {expected:.{precision}g}."
    )
    return Figure(key, caption, panels)
