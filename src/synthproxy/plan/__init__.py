"""Planning a run before it starts: per-stage job counts, core-hours, GPU-hours and storage of a config.

:mod:`.costs` loads and validates the cost table (``benchmarks/costs.yaml``: measured per-item costs, each with
its unit and source); :mod:`.estimate` multiplies them out over a validated config, counting jobs as the
workflow's rules do, and gives wall-clock estimates for a cluster. ``python -m synthproxy plan`` prints both.
"""

from synthproxy.plan.costs import CostTable, load_cost_table, load_costs, validate_costs
from synthproxy.plan.estimate import Cluster, Plan, StageEstimate, estimate_plan, format_plan

__all__ = ["Cluster", "CostTable", "Plan", "StageEstimate", "estimate_plan", "format_plan", "load_cost_table",
           "load_costs", "validate_costs"]
