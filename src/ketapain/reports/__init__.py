"""ketapain.reports: plots and printable reports (matplotlib, headless)."""
