"""Training shared by every model: batches (`batch`), the loop (`loop.fit`, `loop.predict`), whole runs given
a model factory (`run.run_training`), safetensors checkpoints and epoch-level resume."""
