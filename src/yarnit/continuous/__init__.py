"""Continuous ML: the loop, staged rollouts with canary analysis, emergency actions."""
