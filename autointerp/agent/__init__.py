"""The interpretability agent: hypotheses tested on new inputs through the subject model."""
