"""Continuous ML: the loop, staged rollouts with canary analysis, and emergency actions."""
