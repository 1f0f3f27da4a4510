"""Long-running services: N replicas of an image kept running, health-checked, rolled and routed."""
