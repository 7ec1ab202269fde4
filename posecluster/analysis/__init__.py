"""Working on pose tracks after inference: filtering and outlier detection (pure numpy/scipy/statsmodels)."""
