"""rbg_flows: RoleBasedGroup orchestration on Temporal."""
