"""Continuous ML: staged rollouts with canary analysis, emergency actions, the loop."""
