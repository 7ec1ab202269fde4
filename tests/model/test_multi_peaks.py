"""Multi-peak detection: local maxima above a threshold, suppression within a radius, locref refinement."""

from __future__ import annotations

import numpy as np
import torch

from posecluster.model.multi_peaks import PeakParams, find_peaks, local_maxima

RAW = PeakParams(threshold=0.5, nms_radius=2, smoothing_sigma=0.0)


def _logits(cells: dict[tuple[int, int], float], shape=(12, 16)) -> torch.Tensor:
    maps = torch.full((1, 1, *shape), -8.0)
    for (row, col), value in cells.items():
        maps[0, 0, row, col] = value
    return maps


def _cells(peaks) -> list[tuple[int, int]]:
    return list(zip(peaks.row.tolist(), peaks.col.tolist()))


def test_a_weaker_peak_within_the_radius_is_suppressed_and_one_beyond_it_is_kept():
    peaks = find_peaks(_logits({(5, 5): 4.0, (6, 7): 3.0, (5, 8): 2.0}), None, 8.0, 7.2801, RAW)
    # (6,7) is 2 cells from (5,5): suppressed. (5,8) is 3 cells from (5,5) but lower than (6,7) next to
    # it, so it is no window maximum either (max-pool suppression, as DeepLabCut's).
    assert _cells(peaks) == [(5, 5)]
    peaks = find_peaks(_logits({(5, 5): 4.0, (5, 8): 2.0}), None, 8.0, 7.2801, RAW)
    assert _cells(peaks) == [(5, 5), (5, 8)]


def test_peaks_below_the_threshold_are_not_detected():
    peaks = find_peaks(_logits({(2, 2): 4.0, (9, 12): -1.0}), None, 8.0, 7.2801, RAW)  # sigmoid(-1) = 0.27
    assert _cells(peaks) == [(2, 2)]
    np.testing.assert_allclose(peaks.likelihood.numpy(), [1 / (1 + np.exp(-4.0))], rtol=1e-6)


def test_a_plateau_keeps_its_first_cell_in_row_major_order():
    plateau = {(4, 6): 3.0, (4, 7): 3.0, (5, 6): 3.0}
    maps = _logits(plateau)
    assert local_maxima(maps, maps > 0, 2)[0, 0].nonzero().tolist() == [[4, 6]]


def test_two_plateaus_whose_first_cells_are_beyond_the_radius_stay_two_peaks():
    # Two 2x2 flat tops one empty column apart: their nearest cells are 2 apart, their first cells 3.
    maps = _logits({(4, 4): 3.0, (4, 5): 3.0, (5, 4): 3.0, (5, 5): 3.0,
                    (4, 7): 3.0, (4, 8): 3.0, (5, 7): 3.0, (5, 8): 3.0})
    assert local_maxima(maps, maps > 0, 2)[0, 0].nonzero().tolist() == [[4, 4], [4, 7]]


def test_position_is_cell_centre_plus_scaled_locref_per_peak_and_channel():
    logits = torch.cat([_logits({(1, 2): 5.0, (8, 10): 5.0}), _logits({(3, 3): 5.0})], dim=1)
    locref = torch.zeros(1, 4, 12, 16)
    locref[0, 0:2, 8, 10] = torch.tensor([0.5, -1.0])
    locref[0, 2:4, 3, 3] = torch.tensor([-0.25, 0.75])
    peaks = find_peaks(logits, locref, 8.0, 7.2801, RAW)
    assert peaks.part.tolist() == [0, 0, 1]
    expected = [[2 * 8 + 4, 1 * 8 + 4], [10 * 8 + 4 + 0.5 * 7.2801, 8 * 8 + 4 - 7.2801],
                [3 * 8 + 4 - 0.25 * 7.2801, 3 * 8 + 4 + 0.75 * 7.2801]]
    np.testing.assert_allclose(peaks.xy.numpy(), expected, rtol=1e-6)


def test_smoothing_moves_a_disk_plateau_peak_to_its_centre():
    rows, cols = torch.meshgrid(torch.arange(12), torch.arange(16), indexing="ij")
    disk = ((rows - 6) ** 2 + (cols - 9) ** 2 <= 4).float() * 16 - 8  # radius 2 cells around (6, 9)
    peaks = find_peaks(disk[None, None], None, 8.0, 7.2801, PeakParams(threshold=0.5, nms_radius=2, smoothing_sigma=1.0))
    assert _cells(peaks) == [(6, 9)]
