"""The arithmetic of the taggers' recurrent layers and CRF decoding in NumPy, for the forward pass
of a saved tagger (pipeline/model/forward.py): the LSTM over time-major batches, the bidirectional
LSTM of a FusedBiLSTM or Keras Bidirectional(LSTM) layer, and Viterbi decoding as
pipeline/model/crf.py decodes."""
from __future__ import annotations

from typing import Callable

import numpy as np


def lstm(step_input: Callable[[int, int], np.ndarray], time: int, recurrent: np.ndarray, lengths: np.ndarray
         ) -> np.ndarray:
    """`time` steps over rows of `lengths` (longest first, none longer than `time`), step t's
    input projections of the first `rows` rows, (directions, rows, 4 units), coming from
    `step_input(t, rows)`, with (directions, units, 4 units) recurrent kernels, both with the sigmoid
    gates' columns halved (`halve_sigmoid_gates`) -> (time, directions, batch, units) hidden states
    (0 past a row's end), zero initial state; Keras' gate order i, f, c, o.

    For speed: the directions run side by side (one matmul per step for both); step t computes
    only the rows still running (a prefix, as they are sorted), so padding costs nothing; and
    sigmoid(z) = tanh(z / 2) / 2 + 1 / 2, one tanh over all four gates, several times faster than
    NumPy's exp and division (or scipy's expit) on float32 (halving the weights beforehand halves
    z exactly: a power of two)."""
    directions, units = recurrent.shape[:2]
    batch = len(lengths)
    running = (lengths[None] > np.arange(time)[:, None]).sum(axis=1)
    h = np.zeros((directions, batch, units), np.float32)
    c = np.zeros((directions, batch, units), np.float32)
    out = np.zeros((time, directions, batch, units), np.float32)
    for t, rows in enumerate(running):
        z = h[:, :rows] @ recurrent
        z += step_input(t, rows)
        np.tanh(z, out=z)
        gate = z * np.float32(0.5)
        gate += np.float32(0.5)  # sigmoid, read for i, f and o only
        cell = c[:, :rows]
        cell *= gate[..., units:2 * units]
        cell += gate[..., :units] * z[..., 2 * units:3 * units]
        h = out[t]
        np.multiply(gate[..., 3 * units:], np.tanh(cell), out=h[:, :rows])
    return out


def halve_sigmoid_gates(weights: np.ndarray) -> np.ndarray:
    """The input, forget and output gates' columns (Keras' order i, f, c, o) times 0.5 (see lstm)."""
    units = weights.shape[-1] // 4
    scale = np.concatenate([np.full(2 * units, 0.5), np.ones(units), np.full(units, 0.5)]).astype(np.float32)
    return weights * scale


def reversed_each(x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """(time, batch, ...) with each row's first `length` steps reversed (right padding stays in
    place), as the backward direction of a masked bidirectional RNN reads a sentence."""
    steps = np.arange(x.shape[0])[:, None]
    order = np.where(steps < lengths[None], lengths[None] - 1 - steps, steps)
    return x[order, np.arange(x.shape[1])[None]]


class BiLSTM:
    """A FusedBiLSTM or Keras Bidirectional(LSTM) layer's weights (the same maths)."""

    def __init__(self, weights: list[np.ndarray]):
        """`weights`: the layer's, in the order both kinds keep them: the forward direction's
        kernel, recurrent kernel and bias, then the backward direction's."""
        kernel_f, recurrent_f, bias_f, kernel_b, recurrent_b, bias_b = map(halve_sigmoid_gates, weights)
        self.kernel = np.concatenate([kernel_f, kernel_b], axis=1)  # both directions' projections in one matmul
        self.bias = np.concatenate([bias_f, bias_b])
        self.recurrent = np.stack([recurrent_f, recurrent_b])
        self.units = recurrent_f.shape[0]

    def project(self, x: np.ndarray) -> np.ndarray:
        """(..., features) -> (..., 2 x 4 units): both directions' input projections."""
        return x @ self.kernel + self.bias

    def token_states(self, projections: np.ndarray, ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Tokens' projections kept as rows (`project`'s, both directions'), a batch of them as
        (time, batch) row numbers, rows longest first -> (time, 2, batch, units) states, the backward
        ones in each row's reversed order. Each step gathers just its rows, both directions' in one
        call: the batch's projections are never laid out whole (3.2 KB per token at 100 units)."""
        halves = projections.reshape(-1, projections.shape[1] // 2)  # row 2k: token k's forward half, 2k + 1 backward
        step_rows = np.stack([2 * ids, 2 * reversed_each(ids, lengths) + 1], axis=1)  # (time, 2, batch)
        return lstm(lambda t, rows: halves[step_rows[t, :, :rows]], len(ids), self.recurrent, lengths)

    def states(self, x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """(time, batch, features), rows longest first -> (time, 2, batch, units) states, the
        backward ones in each row's reversed order."""
        projected = self.project(x)
        units4 = projected.shape[-1] // 2
        both = np.stack([projected[..., :units4], reversed_each(projected[..., units4:], lengths)], axis=1)
        return lstm(lambda t, rows: both[t, :, :rows], len(x), self.recurrent, lengths)

    @staticmethod
    def sequences(states: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """`states`' states -> (time, batch, 2 units) outputs, padding positions 0."""
        out = np.concatenate([states[:, 0], reversed_each(states[:, 1], lengths)], axis=-1)
        out[np.arange(len(out))[:, None] >= lengths[None]] = 0
        return out

    def final(self, x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """(time, batch, features) -> (batch, 2 units): the forward and backward states after each
        row's last step."""
        longest_first = np.argsort(-lengths, kind="stable")
        states = self.states(x[:, longest_first], lengths[longest_first])
        last = states[np.maximum(lengths[longest_first] - 1, 0), :, np.arange(x.shape[1])]  # (batch, 2, units)
        return last.reshape(x.shape[1], -1)[np.argsort(longest_first)]


def viterbi(scores: np.ndarray, lengths: np.ndarray, transitions: np.ndarray, start: np.ndarray,
            end: np.ndarray) -> np.ndarray:
    """(time, batch, tags) scores -> (time, batch) best tag sequences of a linear-chain CRF, as
    pipeline/model/crf.py decodes them (the same sums, so the same ties)."""
    time, batch, n_tags = scores.shape
    best = start + scores[0]
    pointers = np.empty((time, batch, n_tags), np.int64)
    shortest = lengths.min()
    for t in range(1, time):
        candidates = best[:, :, None] + transitions  # (batch, from, to)
        pointers[t] = candidates.argmax(axis=1)
        advanced = candidates.max(axis=1) + scores[t]
        if t < shortest:
            best = advanced
        else:  # past a sentence's end its score stays and its tags point at themselves
            real = (t < lengths)[:, None]
            best = np.where(real, advanced, best)
            pointers[t] = np.where(real, pointers[t], np.arange(n_tags))
    path = np.empty((time, batch), np.int64)
    path[-1] = (best + end).argmax(axis=1)
    rows = np.arange(batch)
    for t in range(time - 1, 0, -1):
        path[t - 1] = pointers[t, rows, path[t]]
    return path
