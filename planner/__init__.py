"""Logical plan of PromQL queries (the GreptimeDB RFC's nodes), optimizer rules and execution."""
