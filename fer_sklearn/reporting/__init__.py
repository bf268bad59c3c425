"""Turn benchmark results into Markdown tables and PNG figures."""

from . import figures
from .markdown import register_section, render_report, table

__all__ = ["figures", "register_section", "render_report", "table"]
