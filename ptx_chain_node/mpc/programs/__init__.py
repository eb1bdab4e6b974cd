"""The built-in catalogue programs, grouped by what they compute on.

- :mod:`.moments`: count, sum, mean, variance, stddev, weighted_mean (decomposable);
- :mod:`.order`: histogram, min, max (decomposable), median, quantile (row-level);
- :mod:`.intersection`: psi_cardinality (row-level);
- :mod:`.arithmetic`: the secure building blocks they share (division, square root).
"""
