"""The super-resolution networks (BasicSR cell names and arithmetic) and building them from checkpoints."""
