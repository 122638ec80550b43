"""Questions asked of several SAEs or models at once: feature splitting across sizes, universality."""
