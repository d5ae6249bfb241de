"""Evaluation as pure functions: ranking metrics (`metrics`) and the statistics of a comparison (`stats`)."""
