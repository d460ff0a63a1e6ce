"""The serving side of the evaluation: a LLaMA decode step in plain torch (its GPU time is
measured by ``bench/gpu_step_time.py``) and the measured step-time table the replay and the
serving model read."""
