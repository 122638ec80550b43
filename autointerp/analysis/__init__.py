"""Questions asked of several SAEs or models at once: feature splitting, universality."""
