"""Versioned prompt templates (`<name>_v<N>.txt`); installed as autointerp.prompt_templates."""
