"""Reports on what the engine stored: ``cryptoarb report`` (:func:`cryptoarb.reporting.report.report`)."""

from cryptoarb.reporting.report import Report, build_report, load_report, report

__all__ = ["Report", "build_report", "load_report", "report"]
