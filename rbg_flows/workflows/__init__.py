"""Temporal workflows: one entity workflow per RoleBasedGroup and one child workflow per operation."""
