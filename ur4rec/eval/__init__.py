"""Evaluation: pure ranking metrics (`metrics`), paired significance tests (`significance`), and the
evaluation stage that scores a trained run on the test split (`run`)."""
