"""Custom Rasa graph components of this project, referenced from config.yml by module path."""

import os

# Idle OpenMP workers spin by default; on a CPU shared with other processes they then take turns at the cores with
# the threads doing the work. Measured on 2 shared cores: MiniLM single-message latency p50 ~100-190 ms spinning,
# ~12 ms sleeping. Set here, before any component imports torch (its OpenMP runtime reads this once, when it loads);
# an OMP_WAIT_POLICY already in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
