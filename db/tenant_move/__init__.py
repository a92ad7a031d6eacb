"""Moving a tenant to another logical shard online (`beep tenants move`): plan, sync, mover."""

from db.tenant_move.mover import MoveReport, TenantMover
from db.tenant_move.plan import MoveError, MovePlan, TablePlan, check_target, plan_tables

__all__ = ["MoveError", "MovePlan", "MoveReport", "TablePlan", "TenantMover", "check_target", "plan_tables"]
