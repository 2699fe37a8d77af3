"""Evaluation: victims per threat setting, metrics, result rows and the evaluation matrix."""
