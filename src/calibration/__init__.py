"""Calibration algorithms: weight/activation bound initialisation (MinMax, Percentile, DBDC) and PaC."""
