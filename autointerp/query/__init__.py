"""Asking a built catalog questions: which units fire on a text (inspect), which explanations are about
a topic (search), and labels made by other tools brought into the store (importers)."""
